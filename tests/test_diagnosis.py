"""diagnosis.py on written rows whose answer is known: a diagnostic that separates the shortcut models
perfectly, one that points the wrong way, and pools too small for an AUROC."""
import numpy as np
import pytest
from scipy import stats

import diagnosis
import results


def write_runs(path, n_seeds=6, methods=("baseline", "rrr", "gradmask", "actdiff")):
    """Per seed: baseline and rrr read the box (swing 0.9), the others the crosses (swing 0.05). IoU is low
    exactly for the box readers; mask_effect is the reverse of what it should be; each run has two probes."""
    rng = np.random.default_rng(0)
    for seed in range(1, n_seeds + 1):
        for method in methods:
            box = method in ("baseline", "rrr")
            run_id = f"{method}-s{seed}"
            common = dict(run_id=run_id, dataset="synthetic", method=method, mask_fill="shuffle", seed=seed,
                          status="ok", valid_loss=rng.uniform(0, 1), valid_auc=rng.uniform(), valid_id_auc=1.0,
                          outside_mass=rng.uniform(), box_mass=rng.uniform(), pointing=rng.uniform(),
                          iop=rng.uniform(), iot=rng.uniform())
            for epoch in (1, 2):
                results.append_row(path, dict(common, kind="probe", epoch=epoch, test_auc=0.5,
                                              test_auc_train_rule=0.5 + 0.4 * (epoch == 1), box_effect=0.3,
                                              iou=0.2 if epoch == 1 else 0.6, mask_effect=0.1))
            results.append_row(path, dict(common, kind="final", epoch=50, test_auc=0.1 if box else 0.9,
                                          test_auc_train_rule=1.0 if box else 0.95, box_effect=0.8 if box else 0.01,
                                          iou=rng.uniform(0.1, 0.3) if box else rng.uniform(0.5, 0.7),
                                          mask_effect=0.01 if box else 0.2))


def test_a_perfect_diagnostic_has_auroc_1_and_a_reversed_one_0(tmp_path):
    path = str(tmp_path / "r.csv")
    write_runs(path)
    tables = diagnosis.pools(results.read_rows(path))
    assert len(tables["final"]["swing"]) == 24 and len(tables["probe"]["swing"]) == 48
    out = diagnosis.analyse(tables["final"], n_boot=50)
    assert out["IoU (grad)"]["auroc"][:3] == (1.0, 1.0, 1.0)       # low IoU <=> shortcut, in every resample
    assert out["mask effect"]["auroc"][:3] == (0.0, 0.0, 0.0)      # points the wrong way here
    assert out["IoU (grad)"]["d_auroc"][0] == 1.0
    assert out["IoU (grad)"]["rho_swing"][0] < -0.8 and out["IoU (grad)"]["rho_test_auc"][0] > 0.8
    assert np.isnan(out["mask effect"]["d_auroc"][0])               # the reference is not compared with itself
    # In the probe pool, IoU is low exactly at epoch 1, where the swing is 0.4 (under the threshold): no
    # probe is labelled, so there is no AUROC but rho still says IoU tracks the swing.
    probes = diagnosis.analyse(tables["probe"], n_boot=20)
    assert np.isnan(probes["IoU (grad)"]["auroc"][0]) and probes["IoU (grad)"]["rho_swing"][0] == pytest.approx(-1)


def test_the_report_says_not_estimable_when_a_class_has_fewer_than_five_models(tmp_path):
    path = str(tmp_path / "r.csv")
    write_runs(path, n_seeds=2)  # 4 shortcut models
    text = diagnosis.report(diagnosis.pools(results.read_rows(path)), n_boot=10)
    assert "not estimable" in text and "8 models from 2 seeds (1, 2)" in text
    assert "label: swing >= 0.5 (4 of 8 use the shortcut)" in text


def test_a_diagnostic_scored_on_some_seeds_only_needs_five_models_of_each_class_among_them(tmp_path):
    """The pool has 12 shortcut models of 24, but a diagnostic scored on seeds 1-2 only (as IG and occlusion
    are) has 4 of them: its AUROC is not estimable, while the diagnostics scored everywhere keep theirs."""
    path = str(tmp_path / "r.csv")
    write_runs(path)
    tables = diagnosis.pools(results.read_rows(path))
    tables["final"]["iop"][tables["final"]["seed"] > 2] = np.nan
    final = diagnosis.report(tables, n_boot=10).split("## Pool: probe")[0]
    rows = {r.split(" | ")[0]: r.split(" | ") for r in final.splitlines() if r.startswith("| ")}
    assert rows["| IoP (grad)"][5] == "not estimable" and rows["| IoP (grad)"][1] == "8"
    assert rows["| IoU (grad)"][5].startswith("+1.00")


def test_the_amended_label_leaves_out_a_swing_without_an_effect(tmp_path):
    """A near-constant model ranks by differences far too small to see: a swing, but no box effect."""
    path = str(tmp_path / "r.csv")
    write_runs(path, n_seeds=2)
    table = diagnosis.pools(results.read_rows(path))["probe"]
    table["swing"][:] = 0.6  # every probe swings; their box_effect is 0.3, so the amended label keeps them all
    table["box_effect"][::2] = 0.01
    idx = np.arange(len(table["swing"]))
    registered, amended = (f(table, idx) for f in diagnosis.LABELS.values())
    assert registered.all() and amended.sum() == len(idx) // 2


def test_the_bootstrap_resamples_whole_seeds(tmp_path, monkeypatch):
    path = str(tmp_path / "r.csv")
    write_runs(path, n_seeds=3)
    table = diagnosis.pools(results.read_rows(path))["final"]
    seen = []
    monkeypatch.setattr(diagnosis, "statistics", lambda t, idx, label_of: (seen.append(idx), {})[1])
    diagnosis.analyse(table, n_boot=5)
    assert len(seen) == 1 + 5
    for idx in seen[1:]:  # the first call is the point estimate on every model
        counts = np.bincount(table["seed"][idx].astype(int), minlength=4)[1:]
        assert set(counts) <= {0, 4, 8, 12} and counts.sum() == 12  # a seed comes with all 4 of its models


def test_a_missing_file_is_one_line_and_exit_2(tmp_path, capsys):
    assert diagnosis.cli(["--results", str(tmp_path / "none.csv")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_bootstrap_sets_the_resamples_and_refuses_none_in_one_line(tmp_path, capsys):
    path = str(tmp_path / "r.csv")
    write_runs(path)
    assert diagnosis.cli(["--results", path, "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--bootstrap 0" in err
    assert diagnosis.cli(["--results", path, "--bootstrap", "7", "--out", str(tmp_path / "d.md")]) == 0
    written = (tmp_path / "d.md").read_text()
    assert "7 bootstrap resamples" in written
    # the file names the command that wrote it, so a committed answer says how to redo it
    assert written.startswith(f"Drawn by `python diagnosis.py --results {path} --bootstrap 7 --out {tmp_path}/d.md`.")


def test_the_written_out_statistics_agree_with_scipys_on_ties_and_gaps():
    """Spearman's rho and the AUROC rank by hand (for the bootstrap's speed): with ties, in the values and in
    both at once, and with NaNs left out pairwise, they must give scipy's numbers."""
    rng = np.random.default_rng(3)
    for n in (6, 13, 40):
        a, b = rng.integers(0, 4, n).astype(float), rng.normal(size=n).round(1)
        a[1:3], b[::5] = (0, 3), np.nan  # tied values, never all equal; b missing for every fifth model
        keep = np.isfinite(b)
        assert diagnosis.spearman(a, b) == pytest.approx(stats.spearmanr(a[keep], b[keep]).statistic, abs=1e-12)
        label = rng.random(n) < 0.4
        label[:2] = True, False
        expected = stats.mannwhitneyu(a[label], a[~label]).statistic / (label.sum() * (~label).sum())
        assert diagnosis.auroc(a, label) == pytest.approx(expected, abs=1e-12)
        assert (diagnosis.average_ranks(a) == stats.rankdata(a)).all()

