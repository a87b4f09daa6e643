"""plots.py on real tiny runs: table cells, the model-selection rules, the correlation, figures, errors.

The runs are real (train.py, synthetic, 2 epochs, with their saliency scores and
saliency.npz). The fixture also appends rows that stand for what sweep.py writes
(trial rows) and one diverged run.
"""
import contextlib
import io
import os
import re

import matplotlib.image
import numpy as np
import pytest
from scipy import stats

import datasets
import plots
import results
import train

METHODS = ("baseline", "masked", "actdiff")
SEEDS = (0, 1)
FIGURES = ["valid_auc_synthetic", "auc_vs_iou_synthetic", "saliency_synthetic_1.0", "hparam_search", "data_synthetic"]


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    """Real runs of 3 methods x 2 seeds, plus synthetic sweep-trial rows and one diverged run."""
    root = tmp_path_factory.mktemp("plots")
    raw = str(root / "raw.csv")
    for method in METHODS:
        for seed in SEEDS:
            out = str(root / f"{method}-{seed}")
            assert train.cli(["--n-train", "32", "--n-eval", "16", "--epochs", "2", "--burn-in", "1",
                              "--results", raw, "--out", out,
                              "--method", method, "--seed", str(seed)]) == 0
    rows = results.read_rows(raw)
    finals = [r for r in rows if r["kind"] == "final"]
    for trial, auc in enumerate([0.6, 0.55, 0.8, 0.7], start=1):  # what sweep.py's trial rows will look like
        rows.append(dict(finals[0], run_id=f"trial-{trial}", sweep_id="sweep-test", trial=trial, valid_auc=auc))
    rows.append(dict(finals[0], run_id="diverged-run", status="diverged", test_auc=0.99))
    path = str(root / "results.csv")
    for row in rows:
        results.append_row(path, row)
    return path


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = plots.cli(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def plotted(csv_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    code, stdout, _ = run(["--results", csv_path, "--out", str(out), "--latex"])
    assert code == 0
    return out, stdout


def table_rows(markdown, title):
    """{method label: [cells]} of the markdown table under '## title'."""
    section = markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    lines = [l for l in section.splitlines() if l.startswith("| ") and "---" not in l][1:]
    cells = [[c.strip() for c in l.strip("|").split("|")] for l in lines]
    return {c[1]: c[2:] for c in cells}


def expected_cell(values, bold=False):
    v = np.asarray(values, float)
    text = f"{v.mean():.2f} ± {v.std(ddof=1):.2f} (n={len(v)})"
    return f"**{text}**" if bold else text


def test_table_has_one_row_per_method_with_mean_std_over_seeds(csv_path, plotted):
    out, stdout = plotted
    table = table_rows(stdout, "synthetic")
    assert list(table) == ["Classification", "Masked", "ActDiff"]  # losses.METHODS order, trial rows excluded
    rows = results.read_rows(csv_path)
    finals = [r for r in rows if r["kind"] == "final" and r["trial"] == "" and r["status"] == "ok"]
    epochs = [r for r in rows if r["kind"] == "epoch"]

    def by_rule(run_id, column, pick):  # the other selection rules, recomputed: first best epoch on ties
        mine = sorted((r for r in epochs if r["run_id"] == run_id), key=lambda r: int(r["epoch"]))
        return float(mine[int(pick([float(r[column]) for r in mine]))]["test_auc"])

    columns = {name: {} for name in ("test_auc", "by_valid_auc", "by_valid_id_loss", "iou")}
    for method in METHODS:
        mine = [r for r in finals if r["method"] == method]
        assert len(mine) == len(SEEDS)
        columns["test_auc"][method] = [float(r["test_auc"]) for r in mine]
        columns["by_valid_auc"][method] = [by_rule(r["run_id"], "valid_auc", np.argmax) for r in mine]
        columns["by_valid_id_loss"][method] = [by_rule(r["run_id"], "valid_id_loss", np.argmin) for r in mine]
        columns["iou"][method] = [float(r["iou"]) for r in mine]
    for method, label in zip(METHODS, table):
        for i, name in enumerate(columns):
            mean, base = np.mean(columns[name][method]), np.mean(columns[name]["baseline"])
            bold = name != "iou" and method != "baseline" and mean > base and mean > 0.5
            assert table[label][i] == expected_cell(columns[name][method], bold), (label, name)
    assert "excluded 1 diverged run(s)" in stdout
    assert (out / "tables.md").read_text() in stdout
    assert r"\begin{tabular}" in (out / "tables.tex").read_text()


def test_selection_rules_take_the_first_best_eligible_epoch():
    """Run a has burn-in 1; run b burn-in 3, so its epochs 1-2 cannot be picked however good they look;
    run c ran 2 epochs with burn-in 5, so its last epoch is the only eligible one."""
    epochs = plots.pd.DataFrame({
        "run_id": ["a"] * 3 + ["b"] * 4 + ["c"] * 2, "epoch": [1, 2, 3, 1, 2, 3, 4, 1, 2],
        "burn_in": [1] * 3 + [3] * 4 + [5] * 2, "epochs": [3] * 3 + [4] * 4 + [2] * 2,
        "valid_auc": [0.7, 0.9, 0.9, 1.0, 0.9, 0.4, 0.6, 0.9, 0.1],
        "valid_id_loss": [0.5, 0.3, 0.3, 0.1, 0.1, 0.8, 0.2, 0.0, 0.9],
        "test_auc": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]})
    assert plots.select_epoch(epochs, "valid_auc", highest=True).to_dict() == {"a": 0.2, "b": 0.7, "c": 0.9}
    assert plots.select_epoch(epochs, "valid_id_loss", highest=False).to_dict() == {"a": 0.2, "b": 0.7, "c": 0.9}
    # Rows from before burn_in existed (blank) count every epoch.
    old = epochs.assign(burn_in=np.nan, epochs=np.nan)
    assert plots.select_epoch(old, "valid_id_loss", highest=False).to_dict() == {"a": 0.2, "b": 0.4, "c": 0.8}


def test_correlation_equals_scipy_on_the_same_points(csv_path, plotted):
    _, stdout = plotted
    finals = [r for r in results.read_rows(csv_path, kind="final") if r["trial"] == "" and r["status"] == "ok"]
    auc = [float(r["test_auc"]) for r in finals]
    iou = [float(r["iou"]) for r in finals]
    r, p = stats.pearsonr(auc, iou)
    rho, p_rho = stats.spearmanr(auc, iou)
    c = plots.correlation(auc, iou)
    assert c["n"] == len(finals) == 6
    assert (c["r"], c["p"], c["rho"], c["p_rho"]) == pytest.approx((r, p, rho, p_rho), rel=1e-12)
    assert c["lo"] <= c["hi"] and plots.correlation(auc, iou) == c  # seeded bootstrap: reproducible
    row = table_rows(stdout, "Test AUC vs IoU (all methods pooled, one point per run)")["1.0"]
    assert row[:5] == ["6", f"{r:.3f}", f"{p:.3g}", f"[{c['lo']:.3f}, {c['hi']:.3f}]", f"{rho:.3f}"]


def test_every_figure_is_a_non_blank_png_and_a_pdf(plotted):
    out, stdout = plotted
    for name in FIGURES:
        assert (out / f"{name}.pdf").stat().st_size > 0
        img = matplotlib.image.imread(str(out / f"{name}.png"))
        pixels = img.reshape(-1, img.shape[-1])
        assert (pixels != pixels[0]).any(axis=1).mean() > 0.01, name  # not one colour
        assert f"{name}.png" in stdout


def test_missing_groups_are_skipped_with_a_reason(csv_path, tmp_path):
    """RSNA rows at ratio 0.9 only, without epochs or saliency files, and a zero-fill masked run."""
    path = str(tmp_path / "partial.csv")
    for row in results.read_rows(csv_path, kind="final"):
        if row["trial"] == "" and row["status"] == "ok":
            results.append_row(path, dict(row, run_id="rsna-" + row["run_id"], dataset="rsna", ratio=0.9,
                                          run_dir=str(tmp_path / "nowhere")))
            if row["method"] == "masked":
                results.append_row(path, dict(row, run_id="zero-" + row["run_id"], mask_fill="zero"))
    code, stdout, _ = run(["--results", path, "--out", str(tmp_path / "fig")])
    assert code == 0
    assert "no rows for rsna ratio 0.5" in stdout
    assert "skip: saliency_rsna_0.9" in stdout and "skip: hparam_search" in stdout
    assert "skip: data_rsna (Figure 1): pass --xray-data" in stdout
    assert "Masked (zero fill)" in table_rows(stdout, "synthetic")
    assert "skip: valid_auc_rsna" in stdout and (tmp_path / "fig" / "auc_vs_iou_rsna.png").exists()


@pytest.mark.parametrize("content", [None, "", ",".join(results.COLUMNS) + "\n", "a,b\n1,2\n"],
                         ids=["missing", "empty", "header-only", "foreign"])
def test_unusable_csv_is_one_line_error_exit_2(tmp_path, content):
    path = tmp_path / "results.csv"
    if content is not None:
        path.write_text(content)
    code, stdout, err = run(["--results", str(path), "--out", str(tmp_path / "fig")])
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: --results")
    assert not (tmp_path / "fig").exists()


def test_filters_that_match_nothing_exit_2(csv_path, tmp_path):
    code, _, err = run(["--results", csv_path, "--out", str(tmp_path), "--dataset", "rsna"])
    assert code == 2 and "match the filters" in err


def p_cell(mine, theirs):
    if len(mine) < 2 or len(theirs) < 2 or np.ptp(list(mine) + list(theirs)) == 0:
        return "–"
    welch = stats.ttest_ind(mine, theirs, equal_var=False).pvalue
    return f"{welch:.2g} / {stats.mannwhitneyu(mine, theirs).pvalue:.2g}"


def test_comparison_with_the_papers_per_seed_results_for_auc_and_each_saliency_methods_iou(csv_path, tmp_path):
    """ActDiff's runs get an ig row after their final (grad) row and no occlusion row; the authors' file has
    all three IoUs, for baseline and ActDiff."""
    rows = results.read_rows(csv_path)
    actdiff = [r for r in rows if r["kind"] == "final" and r["method"] == "actdiff" and r["trial"] == ""]
    ig = [0.2, 0.4]
    path = str(tmp_path / "results.csv")
    for row in rows + [dict(r, kind="saliency", saliency="ig", iou=v) for r, v in zip(actdiff, ig)]:
        results.append_row(path, row)
    theirs = {"test AUC": [0.9, 1.0, 0.95], "IoU, grad": [0.3, 0.4, 0.5], "IoU, ig": [0.5, 0.4, 0.3],
              "IoU, occlusion": [0.0, 0.1, 0.2]}
    paper = tmp_path / "paper.csv"
    paper.write_text("method,run_seed,test_auc,iou_grad,iou_ig,iou_occlude\n" + "".join(
        f"{m},{i},{','.join(str(v[i] * scale) for v in theirs.values())}\n"
        for m, scale in (("baseline", 0.5), ("actdiff", 1.0)) for i in range(3)))
    code, stdout, _ = run(["--results", path, "--out", str(tmp_path / "out"),
                           "--paper", "synthetic", "1.0", str(paper)])
    assert code == 0
    section = stdout.split("compared with the paper's per-seed results", 1)[1].split("\n## ", 1)[0]
    lines = [l for l in section.splitlines() if l.startswith("| ") and "---" not in l]
    assert lines[0] == "| method | measure | ours | paper | p (Welch / MWU) |"
    cells = [[c.strip() for c in l.strip("|").split("|")] for l in lines[1:]]
    assert [c[0] for c in cells] == [m for m in ("Classification", "Masked", "ActDiff") for m in (m, "", "", "")]
    block = {c[1]: c[2:] for c in cells[8:12]}  # ActDiff's four rows
    ours = {"test AUC": [float(r["test_auc"]) for r in actdiff],
            "IoU, grad": [float(r["iou"]) for r in actdiff],  # the final row's, though an ig row came later
            "IoU, ig": ig, "IoU, occlusion": []}
    assert list(block) == list(ours)
    for measure, mine in ours.items():
        assert block[measure] == [expected_cell(mine) if mine else "–", expected_cell(theirs[measure]),
                                  p_cell(mine, theirs[measure])], measure
    assert block["IoU, occlusion"][0] == block["IoU, occlusion"][2] == "–"  # we have no occlusion scores
    assert cells[2][1:3] == ["IoU, ig", "–"]  # nor ig scores for Classification
    assert cells[4][3] == "–"  # Masked is not in the authors' file
