"""plots.py (with collect.py and figures.py) on written rows: table cells, the model-selection rules, the
correlation, figures, errors; one real tiny run end to end; and datasets.py --figure.

The rows are what train.py, sweep.py, saliency.py and memory.py write (results.append_row, their columns),
with saliency.npz files in saliency.py's format; `test_a_real_run_is_read_end_to_end` trains one real run so
that the formats cannot drift apart unseen.
"""
import contextlib
import io
import os
import subprocess
import sys

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import collect
import figures
import plots
import results
from conftest import check_script

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("baseline", "masked", "actdiff")
SEEDS = (0, 1)
FIGURES = ["valid_auc_synthetic", "auc_vs_iou_synthetic", "saliency_synthetic_1.0", "hparam_search",
           "auc_vs_localisation"]
SIDE = 6  # the written saliency maps are 6x6


def write_npz(run_dir, level, saliency="grad"):
    """A saliency.npz as saliency.py writes it (the keys the figures read): one bright pixel at `level`."""
    os.makedirs(run_dir, exist_ok=True)
    mean_map = np.zeros((SIDE, SIDE), np.float32)
    mean_map.flat[int(level * 10) % SIDE ** 2] = level
    np.savez(os.path.join(run_dir, "saliency.npz"), saliency=np.array(saliency), mean_map=mean_map,
             mean_input=np.full((SIDE, SIDE), 0.5, np.float32), mean_mask=np.eye(SIDE, dtype=np.float32))


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    """3 methods x 2 seeds, each two epoch rows and a final row (grad IoU and IoT, chance and untrained IoU)
    with a saliency.npz; the first run resumed (an earlier final row that must not count), a run later scored
    with ig (a saliency row that must not replace its grad IoU); sweep-trial rows; a diverged run and one out
    of memory (status=oom, no metrics), which every table and the correlation leave out."""
    root = tmp_path_factory.mktemp("plots")
    path = str(root / "results.csv")
    for k, (method, seed) in enumerate((m, s) for m in METHODS for s in SEEDS):
        auc = [0.5 + 0.07 * k - 0.03 * k * seed, 0.4 + 0.05 * k + 0.02 * seed + 0.01 * k * seed]
        epochs = [dict(valid_loss=0.7 - 0.01 * k, valid_auc=0.6 + 0.05 * k, valid_id_loss=0.3 + 0.02 * seed,
                       test_auc=auc[0]),
                  dict(valid_loss=0.6, valid_auc=0.5 + 0.06 * k, valid_id_loss=0.4 - 0.03 * k, test_auc=auc[1])]
        if k == 0:
            results.append_row(path, dict(run_id=f"{method}-s{seed}-r1.0", dataset="synthetic", method=method,
                                          seed=seed, ratio=1.0, status="ok", kind="final", test_auc=0.01, iou=0.99))
        run = write_run(path, method, seed, epochs=epochs, burn_in=1, test_auc=auc[1], iou=0.3 + 0.04 * k,
                        iot=0.35 + 0.04 * k, iou_chance=0.05 + 0.001 * k, iou_untrained=0.1 + 0.01 * seed,
                        precision="fp32", score_images="all")
        write_npz(str(root / run["run_dir"]), 0.5 + 0.1 * k)
        if k == 2:
            results.append_row(path, dict(run, kind="saliency", saliency="ig", iou=0.77))
    base = dict(dataset="synthetic", method="actdiff", seed=0, ratio=1.0, kind="final", burn_in=1, epochs=2)
    for trial, auc in enumerate([0.6, 0.55, 0.8, 0.7], start=1):  # what sweep.py's trial rows look like
        results.append_row(path, dict(base, run_id=f"trial-{trial}", status="ok", sweep_id="sweep-test",
                                      trial=trial, valid_auc=auc, test_auc=auc, iou=0.2))
    results.append_row(path, dict(base, run_id="diverged-run", status="diverged", test_auc=0.99, iou=0.9))
    results.append_row(path, dict(base, run_id="oom-run", status="oom", run_dir=str(root / "oom")))
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


def table_lines(markdown, title):
    """The body rows of the markdown table under '## title', as lists of cells."""
    section = markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    lines = [l for l in section.splitlines() if l.startswith("| ") and "---" not in l][1:]
    return [[c.strip() for c in l.strip("|").split("|")] for l in lines]


def table_rows(markdown, title):
    """{method label: [cells]} of the markdown table under '## title'."""
    return {c[1]: c[2:] for c in table_lines(markdown, title)}


def rules_rows(markdown, dataset="synthetic"):
    """{(rule, method label): [cells]} of the selection-rules table; a rule's name stands on its first row."""
    out, rule = {}, None
    for c in table_lines(markdown, f"{dataset}: the three selection rules"):
        rule = c[0] or rule
        out[rule, c[1]] = c[2:]
    return out


def expected_cell(values, bold=False):
    v = np.asarray(values, float)
    text = f"{v.mean():.2f} ± {v.std(ddof=1):.2f} (n={len(v)})"
    return f"**{text}**" if bold else text


def seed_runs(csv_path):
    """Each finished seed run's last final row with status ok (no trials), read back from the CSV."""
    last = {r["run_id"]: r for r in results.read_rows(csv_path, kind="final")}
    return [r for r in last.values() if r["trial"] == "" and r["status"] == "ok"]


def test_plots_imports_no_torch():
    """plots.py reads a CSV and .npz files: importing it (and collect.py, tables.py, figures.py) never loads
    torch."""
    code = "import plots, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_table_has_one_row_per_method_with_mean_std_over_seeds(csv_path, plotted):
    out, stdout = plotted
    table = table_rows(stdout, "synthetic")
    assert list(table) == ["Classification", "Masked", "ActDiff", "Chance"]  # METHODS order; no trial rows
    rows = results.read_rows(csv_path)
    finals = seed_runs(csv_path)
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
    untrained = {m: [float(r["iou_untrained"]) for r in finals if r["method"] == m] for m in METHODS}
    rules = rules_rows(stdout)
    for method, label in zip(METHODS, table):
        mean, base = np.mean(columns["test_auc"][method]), np.mean(columns["test_auc"]["baseline"])
        bold = method != "baseline" and mean > base and mean > 0.5
        assert table[label] == [expected_cell(columns["test_auc"][method], bold),
                                expected_cell(columns["iou"][method]), expected_cell(untrained[method])], label
        for name, rule in zip(("test_auc", "by_valid_auc", "by_valid_id_loss"), collect.SELECTION.values()):
            assert rules[rule, label][0] == expected_cell(columns[name][method]), (label, rule)
    assert "excluded 1 diverged run(s), 1 out of memory (status=oom); 6 run(s) with status=ok" in stdout
    assert (out / "tables.md").read_text() in stdout
    assert r"\begin{tabular}" in (out / "tables.tex").read_text()


def test_out_of_memory_runs_are_counted_apart_from_diverged_ones(tmp_path):
    """Two oom rows (memory.py's: no metrics), one diverged run, and a run that ran out of memory and then
    finished on --resume (its last final row is ok): the notes count 1 diverged and 2 out of memory, and the
    table has the three ok runs only."""
    path = str(tmp_path / "results.csv")
    for seed in (1, 2):
        write_run(path, "baseline", seed, test_auc=0.6 + 0.1 * seed, iou=0.2)
    oom = dict(dataset="synthetic", method="baseline", ratio=1.0, kind="final", status="oom")
    results.append_row(path, dict(oom, run_id="baseline-s3-r1.0", seed=3))  # then resumed to the end:
    write_run(path, "baseline", 3, test_auc=0.9, iou=0.2)
    for seed in (4, 5):
        results.append_row(path, dict(oom, run_id=f"oom-{seed}", seed=seed))
    results.append_row(path, dict(oom, run_id="nan", seed=6, status="diverged", test_auc=0.1))
    code, stdout, _ = run(["--results", path, "--out", str(tmp_path / "out")])
    assert code == 0
    assert "- excluded 1 diverged run(s), 2 out of memory (status=oom); 3 run(s) with status=ok" in stdout
    assert table_rows(stdout, "synthetic")["Classification"][0] == expected_cell([0.7, 0.8, 0.9])
    assert plots.excluded_note({"diverged": 2}, 5) == "excluded 2 diverged run(s); 5 run(s) with status=ok"


def test_selection_rules_take_the_first_best_eligible_epoch():
    """Run a has burn-in 1; run b burn-in 3, so its epochs 1-2 cannot be picked however good they look;
    run c ran 2 epochs with burn-in 5, so its last epoch is the only eligible one."""
    epochs = pd.DataFrame({
        "run_id": ["a"] * 3 + ["b"] * 4 + ["c"] * 2, "epoch": [1, 2, 3, 1, 2, 3, 4, 1, 2],
        "burn_in": [1] * 3 + [3] * 4 + [5] * 2, "epochs": [3] * 3 + [4] * 4 + [2] * 2,
        "valid_auc": [0.7, 0.9, 0.9, 1.0, 0.9, 0.4, 0.6, 0.9, 0.1],
        "valid_id_loss": [0.5, 0.3, 0.3, 0.1, 0.1, 0.8, 0.2, 0.0, 0.9],
        "test_auc": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]})
    assert collect.select_epoch(epochs, "valid_auc", highest=True).to_dict() == {"a": 0.2, "b": 0.7, "c": 0.9}
    assert collect.select_epoch(epochs, "valid_id_loss", highest=False).to_dict() == {"a": 0.2, "b": 0.7, "c": 0.9}
    # Rows from before burn_in existed (blank) count every epoch.
    old = epochs.assign(burn_in=np.nan, epochs=np.nan)
    assert collect.select_epoch(old, "valid_id_loss", highest=False).to_dict() == {"a": 0.2, "b": 0.4, "c": 0.8}


def test_correlation_is_over_one_point_per_finished_seed_run(csv_path, tmp_path, monkeypatch):
    """The points correlated are each ok seed run's (test AUC, grad IoU) from its last final row: not the
    resumed run's earlier final row, not its later ig row, not the sweep's trials, not the diverged or
    out-of-memory runs; and the table reports the statistics of exactly those points."""
    seen = []
    real = plots.correlation
    monkeypatch.setattr(plots, "correlation", lambda auc, iou: seen.append((list(auc), list(iou))) or real(auc, iou))
    code, stdout, _ = run(["--results", csv_path, "--out", str(tmp_path)])
    assert code == 0 and len(seen) == 1
    expected = sorted((float(r["test_auc"]), float(r["iou"])) for r in seed_runs(csv_path))
    assert len(expected) == 6 and sorted(zip(*seen[0])) == pytest.approx(expected)
    c = real(*seen[0])
    row = table_rows(stdout, "Test AUC vs IoU (all methods pooled, one point per run)")["1.0"]
    assert row[:5] == ["6", f"{c['r']:.3f}", f"{c['p']:.3g}", f"[{c['lo']:.3f}, {c['hi']:.3f}]", f"{c['rho']:.3f}"]
    assert real(*seen[0]) == c  # the seeded bootstrap is reproducible


def test_every_figure_is_a_non_blank_png_and_a_pdf(plotted):
    out, stdout = plotted
    for name in FIGURES:
        assert (out / f"{name}.pdf").stat().st_size > 0
        img = matplotlib.image.imread(str(out / f"{name}.png"))
        pixels = img.reshape(-1, img.shape[-1])
        assert (pixels != pixels[0]).any(axis=1).mean() > 0.01, name  # not one colour
        assert f"{name}.png" in stdout
    assert not (out / "data_synthetic.png").exists()  # the data's pictures are datasets.py's


def test_a_real_run_is_read_end_to_end(tmp_path, drawn, narrow):
    """One real train.py run (2 epochs, tiny, on the narrow network): plots.py reads its rows and its
    saliency.npz as they are written, and the saliency figure shows the run's mean map."""
    import train
    csv = str(tmp_path / "results.csv")
    assert train.cli(["--n-train", "32", "--n-eval", "16", "--epochs", "2", "--burn-in", "1", "--results", csv,
                      "--out", str(tmp_path / "run"), "--method", "baseline", "--seed", "0",
                      "--no-probes"]) == 0  # no figure or table here reads probe rows
    final = results.read_rows(csv, kind="final")[-1]
    code, stdout, _ = run(["--results", csv, "--out", str(tmp_path / "out")])
    assert code == 0
    assert table_rows(stdout, "synthetic")["Classification"][:2] == [f"{float(final['test_auc']):.2f} (n=1)",
                                                                     f"{float(final['iou']):.2f} (n=1)"]
    with np.load(tmp_path / "run" / "saliency.npz") as z:
        mean_map = z["mean_map"]
    shown = drawn["saliency_synthetic_1.0"].axes[1].images[0].get_array()
    assert np.asarray(shown) == pytest.approx(mean_map / mean_map.max())


def test_datasets_figure_writes_the_synthetic_data_figure(tmp_path):
    """python datasets.py --figure DIR: the paper's Figure 3, as a PNG with something drawn and a PDF."""
    out = subprocess.run([sys.executable, "datasets.py", "--figure", str(tmp_path), "--dataset", "synthetic"],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    img = matplotlib.image.imread(str(tmp_path / "data_synthetic.png"))
    pixels = img.reshape(-1, img.shape[-1])
    assert (pixels != pixels[0]).any(axis=1).mean() > 0.01
    assert (tmp_path / "data_synthetic.pdf").stat().st_size > 0 and "data_synthetic.png" in out.stdout


def test_missing_groups_are_skipped_with_a_reason(csv_path, tmp_path):
    """RSNA rows at ratio 0.9 only, without epochs or saliency files, and a zero-fill masked run."""
    path = str(tmp_path / "partial.csv")
    for row in seed_runs(csv_path):
        results.append_row(path, dict(row, run_id="rsna-" + row["run_id"], dataset="rsna", ratio=0.9,
                                      run_dir=str(tmp_path / "nowhere")))
        if row["method"] == "masked":
            results.append_row(path, dict(row, run_id="zero-" + row["run_id"], mask_fill="zero"))
    code, stdout, _ = run(["--results", path, "--out", str(tmp_path / "fig")])
    assert code == 0
    assert "no rows for rsna ratio 0.5" in stdout
    assert "skip: saliency_maps_rsna" in stdout and "skip: hparam_search" in stdout
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
    """ActDiff's runs get an ig row (an IoU, no IoT) after their final (grad) row and no occlusion row; the
    authors' file has all three IoUs and grad's IoT, for baseline and ActDiff: each of our columns sits beside
    the same column of theirs."""
    rows = results.read_rows(csv_path)
    actdiff = [r for r in seed_runs(csv_path) if r["method"] == "actdiff"]
    ig = [0.2, 0.4]
    path = str(tmp_path / "results.csv")
    for row in rows + [dict(r, kind="saliency", saliency="ig", iou=v, iot="") for r, v in zip(actdiff, ig)]:
        results.append_row(path, row)
    theirs = {"test AUC": [0.9, 1.0, 0.95], "IoU, grad": [0.3, 0.4, 0.5], "IoT, grad": [0.6, 0.7, 0.8],
              "IoU, ig": [0.5, 0.4, 0.3], "IoU, occlusion": [0.0, 0.1, 0.2]}
    paper = tmp_path / "paper.csv"
    paper.write_text("method,run_seed,test_auc,iou_grad,iot_grad,iou_ig,iou_occlude\n" + "".join(
        f"{m},{i},{','.join(str(v[i] * scale) for v in theirs.values())}\n"
        for m, scale in (("baseline", 0.5), ("actdiff", 1.0)) for i in range(3)))
    code, stdout, _ = run(["--results", path, "--out", str(tmp_path / "out"),
                           "--paper", "synthetic", "1.0", str(paper)])
    assert code == 0
    section = stdout.split("compared with the paper's per-seed results", 1)[1].split("\n## ", 1)[0]
    lines = [l for l in section.splitlines() if l.startswith("| ") and "---" not in l]
    assert lines[0] == "| method | measure | ours | paper | p (Welch / MWU) |"
    cells = [[c.strip() for c in l.strip("|").split("|")] for l in lines[1:]]
    assert [c[0] for c in cells] == [m for m in ("Classification", "Masked", "ActDiff") for m in (m,) + ("",) * 6]
    block = {c[1]: c[2:] for c in cells[14:21]}  # ActDiff's seven rows
    ours = {"test AUC": [float(r["test_auc"]) for r in actdiff],
            "IoU, grad": [float(r["iou"]) for r in actdiff],  # the final row's, though an ig row came later
            "IoT, grad": [float(r["iot"]) for r in actdiff],
            "IoU, ig": ig, "IoT, ig": [], "IoU, occlusion": [], "IoT, occlusion": []}
    assert list(block) == list(ours)
    for measure, mine in ours.items():
        paper_side = theirs.get(measure, [])
        assert block[measure] == [expected_cell(mine) if mine else "–",
                                  expected_cell(paper_side) if paper_side else "–", p_cell(mine, paper_side)], measure
    assert block["IoU, occlusion"][0] == block["IoU, occlusion"][2] == "–"  # we have no occlusion scores
    assert cells[3][1:3] == ["IoU, ig", "–"]  # nor ig scores for Classification
    assert cells[7][3] == "–"  # Masked is not in the authors' file


def test_a_paper_setting_we_have_no_runs_of_is_skipped_and_a_ratio_that_is_no_number_is_one_line(csv_path, tmp_path):
    """The authors' file has no ratio column, so a --paper setting without runs of ours would set their
    values under a setting they never ran: it is skipped with a reason instead. A ratio that is not a
    number stops plots.py in one line, exit 2, before anything is written."""
    paper = tmp_path / "paper.csv"
    paper.write_text("method,run_seed,test_auc\nactdiff,1,0.9\nactdiff,2,1.0\n")
    code, stdout, _ = run(["--results", csv_path, "--out", str(tmp_path / "out"), "--paper", "synthetic", "0.7",
                           str(paper)])
    assert code == 0 and ": compared with" not in stdout
    assert "- skip: --paper synthetic 0.7: no runs of ours at that setting" in stdout
    code, _, stderr = run(["--results", csv_path, "--out", str(tmp_path / "bad"), "--paper", "synthetic", "one",
                           str(paper)])
    assert code == 2 and stderr.count("\n") == 1 and "the ratio must be a number" in stderr
    assert not (tmp_path / "bad").exists()


def test_beside_sets_another_results_file_seed_by_seed_wherever_both_have_the_setting(tmp_path):
    """--beside LABEL CSV: the same seeds trained another way sit beside ours, with ours minus theirs paired by
    seed. A seed only one file has counts in its own cell but not in the difference; a setting only one file
    has gets no table; with --paper too, the paper's columns come first."""
    ours, other = str(tmp_path / "ours.csv"), str(tmp_path / "other.csv")
    for seed, (mine, theirs) in enumerate([(0.9, 0.7), (0.8, 0.75), (0.95, 0.6)]):
        write_run(ours, "actdiff", seed, test_auc=mine, iou=0.5, iot=0.6)
        if seed < 2:
            write_run(other, "actdiff", seed, test_auc=theirs, iou=0.4 + 0.1 * seed, iot=0.5)
    write_run(other, "actdiff", 7, test_auc=0.1, iou=0.1, iot=0.1)  # a seed ours lacks
    write_run(other, "actdiff", 0, ratio=0.5, test_auc=0.5)  # a setting ours lacks
    code, stdout, _ = run(["--results", ours, "--out", str(tmp_path / "out"), "--beside", "short", other])
    assert code == 0
    assert "ratio 0.5: compared" not in stdout
    section = "synthetic ratio 1.0: compared with short"
    header = stdout.split(f"## {section}\n", 1)[1].split("\n| ")[1].splitlines()[0]
    assert header == "method | measure | ours | short | ours − short, by seed |"
    rows = {c[1]: c[2:] for c in table_lines(stdout, section)}
    differences = [0.9 - 0.7, 0.8 - 0.75]  # seeds 0 and 1 only
    p = stats.ttest_1samp(differences, 0.0).pvalue
    assert rows["test AUC"] == [expected_cell([0.9, 0.8, 0.95]), expected_cell([0.7, 0.75, 0.1]),
                                f"{np.mean(differences):+.2f} ± {np.std(differences, ddof=1):.2f}, p = {p:.2g} (n=2)"]
    assert rows["IoU, grad"][2].startswith("+0.05 ± 0.07")  # 0.5 - 0.4 and 0.5 - 0.5
    assert rows["IoU, ig"] == ["–", "–", "–"]

    paper = tmp_path / "paper.csv"
    paper.write_text("method,run_seed,test_auc\nactdiff,1,0.9\nactdiff,2,1.0\n")
    code, stdout, _ = run(["--results", ours, "--out", str(tmp_path / "out"), "--beside", "short", other,
                           "--paper", "synthetic", "1.0", str(paper)])
    section = "synthetic ratio 1.0: compared with the paper's per-seed results and with short"
    assert stdout.split(f"## {section}\n", 1)[1].split("\n| ")[1].splitlines()[0] == \
        "method | measure | ours | paper | p (Welch / MWU) | short | ours − short, by seed |"
    assert stdout.count(": compared with") == 1
    code, _, stderr = run(["--results", ours, "--out", str(tmp_path / "gone"), "--beside", "short", ours + ".gone"])
    assert code == 2 and stderr.count("\n") == 1 and stderr.startswith(f"error: --beside short {ours}.gone: no such")
    assert not (tmp_path / "gone").exists()  # refused before anything is written


# ------------------------------------------------------------------ hand-made rows: baselines, ratios, rules

def write_run(path, method, seed, ratio=1.0, epochs=(), burn_in=2, **final):
    """One run's rows as train.py writes them: an epoch row per dict in `epochs`, then the final row."""
    run = dict(run_id=f"{method}-s{seed}-r{ratio}", dataset="synthetic", method=method, seed=seed, ratio=ratio,
               status="ok", mask_fill="shuffle", burn_in=burn_in, epochs=max(len(epochs), 1),
               run_dir=f"runs/{method}-s{seed}-r{ratio}")
    for i, e in enumerate(epochs, start=1):
        results.append_row(path, dict(run, kind="epoch", epoch=i, **e))
    results.append_row(path, dict(run, kind="final", saliency="grad", **final))
    return run


@pytest.fixture
def drawn(monkeypatch):
    """{figure name: the matplotlib figure} of every figure plots.py saves, to read its lines back."""
    drawn, save = {}, figures.save
    monkeypatch.setattr(figures, "save", lambda fig, out, name, written: (drawn.__setitem__(name, fig),
                                                                          save(fig, out, name, written)))
    return drawn


def test_iou_baselines_come_from_the_row_of_the_saliency_method_shown(tmp_path, drawn):
    """grad on the final rows, ig on later saliency rows, each with its own chance and untrained IoU, and
    cascade rows written last: the table shows the chosen method's IoU beside that row's untrained IoU, the
    chance row pools every method's runs, and a damaged model's IoU never stands for a run's."""
    path = str(tmp_path / "results.csv")
    grad = {"baseline": ([0.1, 0.2], [0.05, 0.07], [0.30, 0.34]), "actdiff": ([0.5, 0.7], [0.06, 0.08], [0.2, 0.4])}
    ig = {m: tuple([v + 0.01 for v in vs] for vs in grad[m]) for m in grad}
    for method in grad:
        for i, seed in enumerate((1, 2)):
            iou, chance, untrained = (vs[i] for vs in grad[method])
            base = write_run(path, method, seed, test_auc=0.4 + 0.5 * (method == "actdiff") + 0.01 * seed,
                            iou=iou, iou_chance=chance, iou_untrained=untrained)
            iou, chance, untrained = (vs[i] for vs in ig[method])
            results.append_row(path, dict(base, kind="saliency", saliency="ig", iou=iou, iou_chance=chance,
                                          iou_untrained=untrained))
            for layer in ("fc", "layer4"):
                results.append_row(path, dict(base, kind="saliency", saliency="grad", randomized=layer, iou=0.99))
    for flags, scores in (([], grad), (["--saliency", "ig"], ig)):
        code, stdout, _ = run(["--results", path, "--out", str(tmp_path / "out")] + flags)
        assert code == 0
        table = table_rows(stdout, "synthetic")
        for method, label in (("baseline", "Classification"), ("actdiff", "ActDiff")):
            iou, _, untrained = scores[method]
            assert table[label][1:] == [expected_cell(iou), expected_cell(untrained)], (flags, label)
        assert table["Chance"] == ["0.50", expected_cell(scores["baseline"][1] + scores["actdiff"][1]), "–"]
        # The AUC-IoU figure marks the mean chance IoU as a vertical line (IoU is its x axis).
        ax = drawn["auc_vs_iou_synthetic"].axes[0]
        chance_line = [l for l in ax.lines if l.get_label().startswith("chance IoU")]
        assert len(chance_line) == 1
        assert chance_line[0].get_xdata()[0] == pytest.approx(np.mean(scores["baseline"][1] + scores["actdiff"][1]))
        untrained_line = [l for l in ax.lines if l.get_label() == "untrained network's IoU"]
        assert untrained_line[0].get_xdata()[0] == pytest.approx(np.mean(scores["baseline"][2] + scores["actdiff"][2]))


def test_saliency_rows_named_by_their_directory_join_the_run_that_finished_there(tmp_path):
    """saliency.py once wrote the run directory's name as run_id; such rows still give the run its IoU."""
    path = str(tmp_path / "results.csv")
    for method, auc in (("baseline", 0.1), ("actdiff", 0.9)):
        for seed in (1, 2):
            rows = write_run(path, method, seed, test_auc=auc + seed / 100, iou=0.4)
            results.append_row(path, dict(rows, kind="saliency", run_id=f"dir-{method}-{seed}", saliency="ig",
                                          iou=0.6 + seed / 10))
    code, stdout, _ = run(["--results", path, "--out", str(tmp_path / "out"), "--saliency", "ig"])
    assert code == 0
    assert table_rows(stdout, "synthetic")["ActDiff"][1] == expected_cell([0.7, 0.8])


def test_results_without_the_baseline_columns_leave_blank_cells_and_skip_the_cascade(tmp_path):
    """A CSV from before iou_chance, iou_untrained and randomized existed is still read: those cells are
    blank, the cascade figure is skipped with its reason, and the LaTeX tables are written all the same."""
    new = str(tmp_path / "new.csv")
    for method in ("baseline", "actdiff"):
        for seed in (1, 2, 3):
            write_run(new, method, seed, test_auc=0.3 * seed, iou=0.1 * seed)
    dropped = ("iou_chance", "iou_untrained", "randomized")
    old_columns = [c for c in results.COLUMNS if c not in dropped]
    lines = open(new).read().splitlines()
    keep = [i for i, c in enumerate(lines[0].split(",")) if c not in dropped]
    old = tmp_path / "old.csv"
    old.write_text("\n".join(",".join(l.split(",")[i] for i in keep) for l in lines) + "\n")
    assert open(old).readline().strip() == ",".join(old_columns)
    code, stdout, _ = run(["--results", str(old), "--out", str(tmp_path / "out"), "--latex"])
    assert code == 0
    table = table_rows(stdout, "synthetic")
    assert table["ActDiff"][2] == "–" and table["Chance"] == ["0.50", "–", "–"]
    assert "skip: cascade_synthetic_1.0: no cascading-randomisation rows" in stdout
    assert "skip: auc_vs_ratio_synthetic: one ratio (1.0)" in stdout
    assert (tmp_path / "out" / "auc_vs_iou_synthetic.png").exists()
    assert r"\multicolumn{3}{c}{ratio 1.0}" in (tmp_path / "out" / "tables.tex").read_text()


def test_within_setting_correlation_removes_the_methods_means():
    """Two methods far apart in both AUC and IoU, and within each a seed with the better IoU generalising
    worse: pooled r is positive, the within-setting r is exactly -1."""
    auc, iou = [0.0, 0.1, 0.9, 1.0, 0.05, 0.95], [0.2, 0.1, 0.6, 0.5, 0.15, 0.55]
    groups = ["baseline", "baseline", "actdiff", "actdiff", "baseline", "actdiff"]
    assert stats.pearsonr(auc, iou)[0] > 0.9
    r, p = plots.within_correlation(auc, iou, groups)
    assert r == pytest.approx(-1.0) and p == 0.0
    # The t-test's degrees of freedom drop by one per setting: scipy's r and p on the centred points, whose
    # test assumes n - 2, differ from ours by exactly that.
    noisy = [0.2, 0.13, 0.6, 0.52, 0.11, 0.5]
    r, p = plots.within_correlation(auc, noisy, groups)
    centre = lambda v: [x - np.mean([y for y, h in zip(v, groups) if h == g]) for x, g in zip(v, groups)]
    a, b = centre(auc), centre(noisy)
    assert r == pytest.approx(stats.pearsonr(a, b)[0])
    t = abs(r) * np.sqrt(3 / (1 - r * r))  # 6 runs - 2 settings - 1
    assert p == pytest.approx(2 * stats.t.sf(t, 3))
    # One run per setting leaves nothing to correlate.
    assert np.isnan(plots.within_correlation([0.1, 0.9, 0.5], [0.2, 0.6, 0.4], ["a", "b", "c"])[0])


def test_ratios_sit_side_by_side_in_the_tables_the_correlation_and_the_auc_against_ratio_figure(tmp_path, drawn):
    path = str(tmp_path / "results.csv")
    auc = {}  # (method, ratio) -> test AUC per seed; Classification falls as the ratio grows, ActDiff holds
    for ratio in (0.5, 0.9, 1.0):
        for method in ("baseline", "actdiff"):
            for seed in (1, 2, 3):
                value = (1.0 - ratio) * 1.6 + 0.02 * seed if method == "baseline" else 0.9 + 0.03 * seed
                auc.setdefault((method, ratio), []).append(value)
                write_run(path, method, seed, ratio, test_auc=value, iou=value / 2 + 0.05 * seed * ratio)
    code, stdout, _ = run(["--results", path, "--out", str(tmp_path / "out"), "--latex"])
    assert code == 0
    header = stdout.split("## synthetic\n", 1)[1].split("\n## ", 1)[0]
    assert "| group | method | ratio 1.0 AUC | ratio 1.0 IoU | ratio 1.0 IoU untrained | ratio 0.9 AUC |" in header
    table = table_rows(stdout, "synthetic")
    assert table["ActDiff"][0::3] == [expected_cell(auc["actdiff", r], True) for r in (1.0, 0.9, 0.5)]
    assert table["Classification"][0::3] == [expected_cell(auc["baseline", r]) for r in (1.0, 0.9, 0.5)]
    tex = (tmp_path / "out" / "tables.tex").read_text()
    assert all(rf"\multicolumn{{3}}{{c}}{{ratio {r}}}" in tex for r in ("1.0", "0.9", "0.5"))
    # One correlation per ratio, over that ratio's runs only.
    corr = {row[1]: row for row in table_lines(stdout, "Test AUC vs IoU (all methods pooled, one point per run)")}
    for r in (0.5, 0.9, 1.0):
        points = [(a, a / 2 + 0.05 * seed * r) for m in ("baseline", "actdiff")
                  for seed, a in zip((1, 2, 3), auc[m, r])]
        assert corr[f"{r:.1f}"][3] == f"{stats.pearsonr(*zip(*points))[0]:.3f}"
    # The AUC-against-ratio figure: a panel per selection rule; in the paper's, each method's mean ± std.
    fig = drawn["auc_vs_ratio_synthetic"]
    assert [ax.get_title().split("\n")[1] for ax in fig.axes] == list(collect.SELECTION.values())
    paper_rule = fig.axes[0]
    for container, method in zip(paper_rule.containers, ("baseline", "actdiff"), strict=True):
        line, _, (bars,) = container
        assert container.get_label() == collect.LABELS[method]
        assert line.get_ydata() == pytest.approx([np.mean(auc[method, r]) for r in (1.0, 0.9, 0.5)])
        tops = [seg[1, 1] for seg in bars.get_segments()]
        assert tops == pytest.approx([np.mean(auc[method, r]) + np.std(auc[method, r], ddof=1)
                                      for r in (1.0, 0.9, 0.5)])


def test_notes_say_which_precision_each_ratio_trained_in_and_when_one_pools_two(tmp_path):
    path = str(tmp_path / "results.csv")
    for seed in (1, 2):
        write_run(path, "baseline", seed, 1.0, precision="fp32", test_auc=0.1, iou=0.1)
        write_run(path, "baseline", seed, 0.5, precision="bf16", test_auc=0.9, iou=0.3)
    write_run(path, "baseline", 3, 0.5, precision="fp32", test_auc=0.8, iou=0.3)
    code, stdout, _ = run(["--results", path, "--out", str(tmp_path / "out")])
    assert code == 0
    notes = [line for line in stdout.splitlines() if line.startswith("- precision:")]
    assert notes == ["- precision: synthetic ratio 0.5: 2 run(s) in bf16, 1 run(s) in fp32; both are pooled in the "
                     "tables", "- precision: synthetic ratio 1.0: 2 run(s) in fp32"]


def rule_epochs(test_auc):
    """Four epoch rows (burn-in 2) where each rule picks a different epoch: epoch 1 looks best to every rule
    but is never eligible; highest valid AUC is epoch 3; lowest valid_id loss is epoch 4."""
    return [dict(valid_loss=v, valid_auc=a, valid_id_loss=i, test_auc=t) for v, a, i, t in
            zip((0.1, 0.6, 0.5, 0.7), (1.0, 0.5, 0.8, 0.6), (0.0, 0.5, 0.4, 0.2), test_auc)]


def test_honest_rule_picks_the_lowest_valid_id_loss_from_the_burn_in_on(tmp_path):
    path = str(tmp_path / "results.csv")
    write_run(path, "actdiff", 1, epochs=rule_epochs([0.9, 0.1, 0.2, 0.3]), test_auc=0.2)
    write_run(path, "actdiff", 2, epochs=rule_epochs([0.9, 0.1, 0.2, 0.3]), burn_in=1, test_auc=0.9)
    runs = collect.load(plots.parse_args(["--results", path]))[0].set_index("seed")
    assert runs.loc[1, "test_auc_by_valid_id_loss"] == 0.3  # epoch 4, not epoch 1's lower loss
    assert runs.loc[2, "test_auc_by_valid_id_loss"] == 0.9  # with burn-in 1, epoch 1 is eligible
    assert runs.loc[1, "test_auc_by_valid_auc"] == 0.2


def test_rules_table_gives_each_rules_auc_and_the_paired_difference_to_classification(tmp_path):
    """Four seeds of both; ActDiff has a fifth seed that Classification lacks, which the pairing leaves out.
    Under the paper's and the max-AUC rule ActDiff is far ahead; under the honest rule it is not."""
    path = str(tmp_path / "results.csv")
    picks = {"baseline": ([0.1, 0.2, 0.15, 0.3], [0.2, 0.1, 0.3, 0.2]),  # (epoch 3, epoch 4) per seed
             "actdiff": ([0.9, 0.8, 0.95, 0.85, 0.7], [0.3, 0.1, 0.2, 0.5, 0.4])}
    final = {"baseline": [0.0, 0.1, 0.05, 0.0], "actdiff": [0.95, 0.9, 1.0, 0.9, 0.6]}
    for method, (ep3, ep4) in picks.items():
        for seed, (t3, t4, t) in enumerate(zip(ep3, ep4, final[method]), start=1):
            write_run(path, method, seed, epochs=rule_epochs([0.99, 0.5, t3, t4]), test_auc=t, iou=0.1)
    code, stdout, _ = run(["--results", path, "--out", str(tmp_path / "out"), "--latex"])
    assert code == 0
    rows = rules_rows(stdout)
    for (rule, (mine, theirs)) in zip(collect.SELECTION.values(), ((final["actdiff"], final["baseline"]),
                                                                 *zip(picks["actdiff"], picks["baseline"]))):
        assert rows[rule, "ActDiff"][0] == expected_cell(mine)
        assert rows[rule, "Classification"] == [expected_cell(theirs), "–"]
        d = np.subtract(mine[:4], theirs)
        p = stats.ttest_rel(mine[:4], theirs).pvalue
        text = f"{d.mean():+.2f} ± {d.std(ddof=1):.2f}, p = {p:.2g} (n=4)"
        assert rows[rule, "ActDiff"][1] == (f"**{text}**" if p < 0.05 else text), rule
    honest = rows["lowest valid_id loss (honest)", "ActDiff"][1]
    assert not honest.startswith("**")  # the advantage does not survive honest selection here
    assert rows["lowest reversed-valid loss (paper's)", "ActDiff"][1].startswith("**")
    assert r"$\Delta$ vs Classification" in (tmp_path / "out" / "tables.tex").read_text()


def test_a_method_significantly_behind_classification_is_bold_too(tmp_path):
    """Without a shift, a prior that costs AUC is the finding: RRR behind on every seed (p < 0.05) is marked;
    Masked, ahead on one seed, behind on two and level on one (p = 0.39), is not."""
    path = str(tmp_path / "results.csv")
    final = {"baseline": [1.0, 0.99, 0.98, 1.0], "rrr": [0.7, 0.65, 0.6, 0.73], "masked": [1.0, 0.97, 0.99, 0.98]}
    for method, aucs in final.items():
        for seed, t in enumerate(aucs, start=1):
            write_run(path, method, seed, 0.5, epochs=rule_epochs([t] * 4), test_auc=t, iou=0.1)
    code, stdout, _ = run(["--results", path, "--out", str(tmp_path / "out")])
    assert code == 0
    rows = rules_rows(stdout)
    behind = rows["lowest reversed-valid loss (paper's)", "RRR"][1]
    assert behind.startswith("**-0.32 ± ") and stats.ttest_rel(final["rrr"], final["baseline"]).pvalue < 0.05
    assert not rows["lowest reversed-valid loss (paper's)", "Masked"][1].startswith("**")


def test_cascade_figure_has_a_panel_per_saliency_method_and_a_curve_per_training_method(tmp_path, drawn):
    """grad has the whole cascade, ig only its first two steps; the first point is the trained IoU."""
    path = str(tmp_path / "results.csv")
    steps = ("fc", "layer4", "layer3", "layer2", "layer1", "conv1")
    expected = {}
    for method in ("baseline", "actdiff"):
        for seed in (1, 2):
            trained = 0.2 * seed + 0.3 * (method == "actdiff")
            base = write_run(path, method, seed, test_auc=0.5, iou=trained, iou_chance=0.04)
            results.append_row(path, dict(base, kind="saliency", saliency="ig", iou=trained + 0.1))
            for i, layer in enumerate(steps):
                for sal, offset in (("grad", 0.0), ("ig", 0.1)):
                    if sal == "grad" or i < 2:
                        results.append_row(path, dict(base, kind="saliency", saliency=sal, randomized=layer,
                                                      iou=(trained + offset) / (i + 2), iou_chance=0.05))
            for sal, offset, n in (("grad", 0.0, 6), ("ig", 0.1, 2)):
                expected.setdefault((sal, method), []).append([(trained + offset) / (i + 1) for i in range(n + 1)])
    code, stdout, _ = run(["--results", path, "--out", str(tmp_path / "out")])
    assert code == 0 and (tmp_path / "out" / "cascade_synthetic_1.0.pdf").exists()
    fig = drawn["cascade_synthetic_1.0"]
    assert [ax.get_title().rsplit(": ", 1)[1] for ax in fig.axes] == ["grad", "ig"]
    for ax, sal, n in zip(fig.axes, ("grad", "ig"), (6, 2)):
        assert [t.get_text() for t in ax.get_xticklabels()] == ["trained", *steps[:n]]
        curves = {l.get_label(): l.get_ydata() for l in ax.lines}
        for method in ("baseline", "actdiff"):
            assert curves[collect.LABELS[method]] == pytest.approx(np.mean(expected[sal, method], axis=0))
        assert curves["chance IoU"][0] == pytest.approx(0.05)


def test_the_bf16_bridge_sets_each_runs_move_against_the_fp32_seed_spread(tmp_path, capsys):
    """checks/bf16_bridge.py decides whether the ratio runs may train in bf16: a bf16 run that moves less than
    the fp32 seeds' spread is within it, one that moves more (or moves where the seeds agree exactly) is beyond
    it; the CSVs given the wrong way round are a one-line error."""
    bridge = check_script("bf16_bridge")

    def write(path, precision, aucs, iou=0.5):
        for seed, auc in enumerate(aucs, start=1):  # the honest rule picks epoch 4 (rule_epochs)
            write_run(path, "actdiff", seed, precision=precision, epochs=rule_epochs([0.5, 0.5, 0.5, auc]),
                      test_auc=auc, iou=iou)

    fp32 = str(tmp_path / "fp32.csv")
    write(fp32, "fp32", [0.8, 0.9, 1.0])                      # AUC spread 0.1; IoU the same on every seed
    within, beyond, moved_iou = (str(tmp_path / f"{name}.csv") for name in ("within", "beyond", "iou"))
    write(within, "bf16", [0.85, 0.92])
    write(beyond, "bf16", [0.6, 0.9])
    write(moved_iou, "bf16", [0.8, 0.9], iou=0.51)
    verdicts = []
    for bf16 in (within, beyond, moved_iou):
        assert bridge.main([bf16, fp32]) == 0
        verdicts.append(capsys.readouterr().out.splitlines()[-1])
    assert verdicts[0] == "2 runs in both; largest |bf16 - fp32| / fp32 spread: 0.50 (within the seed-to-seed spread)"
    assert verdicts[1].endswith("2.00 (beyond the seed-to-seed spread)")
    assert verdicts[2].endswith("(beyond the seed-to-seed spread)")
    assert bridge.main([fp32, within]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_runs_table_has_a_cell_per_finished_run_and_a_dash_where_a_seed_is_still_running(tmp_path, capsys):
    """checks/runs_table.py: one row per method in the tables' order, one column per seed; a cell is the final
    row's test AUC / box_effect / selected epoch / seconds; a run without a final row is "–", and the last
    final row of a run counts. Another ratio than the CSV holds is a one-line error."""
    runs_table = check_script("runs_table")
    path = str(tmp_path / "r.csv")
    write_run(path, "actdiff", 1, test_auc=0.97, box_effect=0.0002, selected_epoch=86, seconds=3814.2)
    write_run(path, "baseline", 1, test_auc=0.5, box_effect=0.5, selected_epoch=1, seconds=1)  # replaced below
    write_run(path, "baseline", 1, test_auc=0.001, box_effect=0.994, selected_epoch=18, seconds=3314)
    write_run(path, "baseline", 2, test_auc=0.0, box_effect=0.99, selected_epoch=22, seconds=3775)
    assert runs_table.main([path]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "| setting | seed 1 | seed 2 |", "|---|---|---|",
        "| Classification | 0.00 / 0.99 / 18 / 3,314 | 0.00 / 0.99 / 22 / 3,775 |",
        "| ActDiff | 0.97 / 0.0002 / 86 / 3,814 | – |", "",
        "3 finished runs; their seconds summed: 10,903 (3.0 hours of one run at a time)"]
    assert runs_table.main([path, "--ratio", "0.5"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_runs_table_says_what_is_left_at_each_settings_median_so_far(tmp_path, capsys):
    """checks/runs_table.py --seeds N: the runs of seeds 1-N without a final row, each estimated at its own
    setting's median seconds (not the overall mean), counting a seed finished out of order as finished."""
    runs_table = check_script("runs_table")
    path = str(tmp_path / "r.csv")
    for seed, seconds in ((1, 1000), (2, 3000), (4, 8000)):  # median 3,000; seed 3 left
        write_run(path, "rrr", seed, seconds=seconds)
    write_run(path, "baseline", 1, seconds=100)  # seeds 2-4 left at 100 each
    assert runs_table.main([path, "--seeds", "4"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "4 runs of seeds 1-4 to finish; at each setting's median seconds so far, about 3,300 (0.9 hours of one "
        "run at a time)")
    with pytest.raises(SystemExit) as refused:
        runs_table.main([path, "--seeds", "0"])
    assert refused.value.code == 2 and capsys.readouterr().err.count("\n") == 1


def test_the_runs_table_fits_the_runs_left_into_slots_keeping_each_settings_seeds_in_order(tmp_path, capsys):
    """checks/runs_table.py --fit SECONDS: slot.sh lines whose runs, at their setting's median seconds, fit in
    SECONDS each; a setting's seeds in order and in one slot (a later seed must not start before an earlier
    one), the longest first; runs beyond --seeds never."""
    runs_table = check_script("runs_table")
    path = str(tmp_path / "r.csv")
    for seed, seconds in ((1, 5000), (2, 5000)):
        write_run(path, "rrr", seed, seconds=seconds)
        write_run(path, "adversarial", seed, seconds=1800)
    write_run(path, "baseline", 1, seconds=3000)
    write_run(path, "masked", 1, seconds=3500, mask_fill="zero")
    assert runs_table.main([path, "--seeds", "4", "--fit", "10000"]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "slot.sh rrr:3 rrr:4",                                  # 10,000 of 10,000
        "slot.sh masked-zero:2 masked-zero:3 baseline:2"]       # 10,000: then neither 3,500 nor 1,800 fits
    assert runs_table.main([path, "--seeds", "2", "--fit", "2000", "--slots", "3"]) == 0
    assert capsys.readouterr().out.splitlines()[-3:] == ["slot.sh (nothing fits)"] * 3  # no seed 3 of adversarial
    with pytest.raises(SystemExit) as refused:
        runs_table.main([path, "--fit", "100"])
    assert refused.value.code == 2 and "--fit needs --seeds" in capsys.readouterr().err


def test_epoch_agreement_pairs_runs_by_seed_and_finds_where_their_shared_epochs_differ(tmp_path, capsys):
    """checks/epoch_agreement.py: runs of the same setting and seed in two files are a pair, compared over the
    epochs both have. An identical pair agrees everywhere; one whose evaluation differs shows it in the
    columns that differ, and a differing valid AUC that moves the max-AUC rule's epoch is said, beside the test
    AUC each run reports at the paper's pick and the device each trained on; a run only one file has is no
    pair."""
    agreement = check_script("epoch_agreement")
    epoch = lambda i, **e: dict(dict(train_loss=1.0 / i, valid_loss=2.0 / i, valid_id_loss=3.0 / i,
                                     valid_auc=0.5 + 0.01 * i, test_auc=0.6, git_commit="abc", device="cpu"), **e)
    short, long = str(tmp_path / "short.csv"), str(tmp_path / "long.csv")
    write_run(short, "actdiff", 1, epochs=[epoch(i) for i in (1, 2, 3)], burn_in=1)
    write_run(long, "actdiff", 1, epochs=[epoch(i) for i in (1, 2, 3, 4)], burn_in=1)
    write_run(short, "masked", 1, epochs=[epoch(1), epoch(2, valid_loss=1.0 + 1e-7, valid_auc=0.9), epoch(3)],
              burn_in=1)
    write_run(long, "masked", 1, epochs=[epoch(1, device="cuda"), epoch(2, device="cuda"),
                                         epoch(3, test_auc=0.7, device="cuda")], burn_in=1)
    write_run(short, "rrr", 1, epochs=[epoch(1)])
    assert agreement.main([short, long]) == 0
    lines = capsys.readouterr().out.splitlines()
    actdiff, masked = (next(l.split() for l in lines if f" {m} " in l) for m in ("actdiff", "masked"))
    assert actdiff[5:] == ["3", "True", "0", "0", "0", "0", "True", "0.600", "0.600", "cpu", "cpu", "abc"]
    assert masked[5:] == ["3", "True", "1e-07", "0", "1", "(max", "0.38)", "1", "(max", "0.1)", "False",
                          "0.600", "0.700", "cpu", "cuda", "abc"]  # the paper's rule picks epoch 3 in both
    assert lines[-2] == ("1 pairs on different devices: the test AUC at the paper's pick differs by 0.100 on "
                         "average (at most 0.100; mean signed second - first +0.100, over 1 pairs with both)")
    assert lines[-1] == "2 pairs; train_loss identical in 2; every rule picks the same epoch in 1"
    assert agreement.main([short, str(tmp_path / "none.csv")]) == 2


# ------------------------------------------------------------------ the X-ray tables and Figures 6-8, on written rows

XRAY_SIDE = 8  # the written figure maps are 8x8


def xray_runs(tmp_path, missing=(("xray", 0.5, "rrr"),)):
    """Written rows and saliency.npz files, no training: xray and rsna at both ratios, every table row (rsna's
    twice: penalize and skip), two seeds, each run with a grad final row scored on every positive and a
    release-scored saliency row; synthetic ActDiff at ratio 1.0 for Figure 8's first panel. The cells in
    `missing` have no run. Returns (csv path, {(dataset, ratio, variant, empty_mask): [run dicts]})."""
    path, runs = str(tmp_path / "results.csv"), {}
    cells = [(d, r, v, e) for d in ("xray", "rsna") for r in (0.9, 0.5) for v in collect.VARIANTS
             for e in (("penalize", "skip") if d == "rsna" else ("skip",)) if (d, r, v) not in missing]
    cells.append(("synthetic", 1.0, "actdiff", "skip"))
    for k, (dataset, ratio, variant, empty) in enumerate(cells):
        method = "masked" if variant == "masked_zero" else variant
        for seed in (1, 2):
            run_id = f"{dataset}-{ratio}-{variant}-{empty}-s{seed}"
            run = dict(run_id=run_id, dataset=dataset, method=method, seed=seed, ratio=ratio, status="ok",
                       mask_fill="zero" if variant == "masked_zero" else "shuffle", empty_mask=empty,
                       run_dir=str(tmp_path / "runs" / run_id), test_auc=0.2 + 0.01 * k + 0.001 * (1 + k) * seed,
                       iou=0.1 + 0.01 * k + 0.001 * seed, iot=0.2 + 0.01 * k + 0.001 * seed, iou_chance=0.05,
                       iou_untrained=0.07, score_size=224, score_images="all", saliency="grad")
            results.append_row(path, dict(run, kind="final"))
            results.append_row(path, dict(run, kind="saliency", score_images="release", iou=run["iou"] + 0.5,
                                          iot=run["iot"] + 0.5))
            os.makedirs(run["run_dir"])
            level = k + seed / 10  # each run's map: one bright pixel, where only its cell puts it
            sample_map = np.zeros((XRAY_SIDE, XRAY_SIDE), np.float32)
            sample_map.flat[k % XRAY_SIDE ** 2] = level
            np.savez(os.path.join(run["run_dir"], "saliency.npz"), saliency=np.array("grad"), sample_map=sample_map,
                     sample_input=np.full((XRAY_SIDE, XRAY_SIDE), 0.5, np.float32),
                     sample_mask=np.eye(XRAY_SIDE, dtype=np.float32), n_sample=np.array(500))
            runs.setdefault((dataset, ratio, variant, empty), []).append(run)
    return path, runs


@pytest.fixture(scope="module")
def xray_plotted(tmp_path_factory):
    """plots.py on xray_runs, with the authors' per-seed file for SPC, and the figures it drew (not saved)."""
    root = tmp_path_factory.mktemp("xray")
    path, runs = xray_runs(root)
    paper = root / "paper.csv"
    paper.write_text("method,run_seed,test_auc,iou_grad,iot_grad\n" + "".join(
        f"{m},{s},0.7,0.{s}5,0.{s}7\n" for m in ("baseline", "actdiff") for s in (1, 2, 3)))
    drawn = {}
    with pytest.MonkeyPatch.context() as mp:  # kept, not written: rendering is test_every_figure_...'s subject
        mp.setattr(figures, "save", lambda fig, out, name, written: (drawn.__setitem__(name, fig),
                                                                     written.append(f"{name}.png")))
        code, stdout, _ = run(["--results", path, "--out", str(root / "out"), "--latex", "--paper", "xray", "0.9",
                               str(paper)])
    assert code == 0
    yield runs, stdout, drawn
    plt.close("all")


def test_xray_tables_have_a_row_per_method_and_iou_and_iot_columns_for_each_scoring(xray_plotted):
    """One table per scoring (every positive; the release's subset), each with IoU and IoT beside the AUC and
    a row for every method in the paper's order; a cell without runs is blank; the note under each table
    says which of our columns the paper's "IoU" is."""
    runs, stdout, _ = xray_plotted
    for heading, scoring, offset in (("xray", "all", 0.0), ("xray: the release's scoring", "release", 0.5)):
        section = stdout.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
        assert ("| group | method | with shift (0.9) AUC | with shift (0.9) IoU grad | with shift (0.9) IoT grad | "
                "with shift (0.9) IoU untrained (grad) | without shift (0.5) AUC |") in section, heading
        assert SCORING_WORDS[scoring] in section
        table = table_rows(stdout, heading)
        assert list(table) == [collect.LABELS[v] for v in collect.VARIANTS] + ["Chance"]  # every row, in order
        for v in collect.VARIANTS:
            mine = runs["xray", 0.9, v, "skip"]
            assert table[collect.LABELS[v]][1:3] == [expected_cell([r["iou"] + offset for r in mine]),
                                                   expected_cell([r["iot"] + offset for r in mine])], (heading, v)
        assert table["RRR"][4:] == ["–"] * 4  # no RRR run without the shift
        assert section.rstrip().splitlines()[-1].startswith('The paper\'s "IoU" matches our IoT on xray: ')
        assert 'The paper\'s "IoU" matches our IoT on xray' in section


SCORING_WORDS = {"all": "every positive test image scored", "release": "the release's 50 positives scored"}


def test_rsna_rows_show_the_releases_penalize_and_our_skip_side_by_side(xray_plotted):
    runs, stdout, _ = xray_plotted
    table = table_lines(stdout, "rsna")
    labels = [row[1] for row in table]
    for v in collect.VARIANTS:
        label = collect.LABELS[v]
        i = labels.index(f"{label}, penalize (release)")
        assert labels[i + 1] == f"{label}, skip (ours)"
        assert table[i + 1][3] == expected_cell([r["iou"] for r in runs["rsna", 0.9, v, "skip"]])
    assert 'The paper\'s "IoU" matches our IoT on rsna with VPC, and none of our columns without' in stdout
    rules = [row[1] for row in table_lines(stdout, "rsna: the three selection rules")]
    assert rules[:2] == ["Classification, penalize (release)", "Classification, skip (ours)"]  # split there too


def test_the_paper_comparison_sets_our_iou_and_iot_beside_theirs_with_the_note(xray_plotted):
    runs, stdout, _ = xray_plotted
    section = stdout.split("## xray ratio 0.9: compared with the paper's per-seed results", 1)[1].split("\n## ", 1)[0]
    lines = [[c.strip() for c in l.strip("|").split("|")] for l in section.splitlines() if l.startswith("| ")]
    assert lines[0] == ["method", "measure", "ours", "paper", "p (Welch / MWU)", "ours, the release's 50 positives",
                        "p (Welch / MWU), release"]
    start = [row[0] for row in lines].index("ActDiff")
    actdiff = {row[1]: row[2:] for row in lines[start:start + 7]}  # AUC, then IoU and IoT of three methods
    assert list(actdiff) == ["test AUC"] + [f"{m}, {s}" for s in ("grad", "ig", "occlusion") for m in ("IoU", "IoT")]
    mine = runs["xray", 0.9, "actdiff", "skip"]
    assert actdiff["IoT, grad"][:2] == [expected_cell([r["iot"] for r in mine]), expected_cell([0.17, 0.27, 0.37])]
    assert actdiff["IoT, grad"][3] == expected_cell([r["iot"] + 0.5 for r in mine])
    assert actdiff["IoU, grad"][1] == expected_cell([0.15, 0.25, 0.35])
    assert 'The paper\'s "IoU" matches our IoT on xray' in section


def test_figures_6_and_7_have_both_settings_and_a_panel_per_method_with_missing_cells_empty(xray_plotted):
    runs, stdout, drawn = xray_plotted
    for name, empty in (("saliency_maps_xray", "skip"), ("saliency_maps_rsna", "penalize"),
                        ("saliency_maps_rsna_skip", "skip")):
        dataset = name.split("_")[2]
        axes = [ax for ax in drawn[name].axes if ax.get_label() != "<colorbar>"]
        assert len(axes) == 2 * (1 + len(collect.VARIANTS)), name
        titles = [ax.get_title().replace("\n", " ") for ax in axes[1:1 + len(collect.VARIANTS)]]
        assert titles == [collect.LABELS[v] for v in collect.VARIANTS]
        for row, ratio in enumerate((0.9, 0.5)):
            assert axes[row * (1 + len(collect.VARIANTS))].get_ylabel() == collect.setting_name(dataset, ratio)
            for ax, v in zip(axes[row * (1 + len(collect.VARIANTS)) + 1:(row + 1) * (1 + len(collect.VARIANTS))],
                             collect.VARIANTS):
                mine = runs.get((dataset, ratio, v, empty))
                if mine is None:  # drawn empty, and said
                    assert not ax.images and [t.get_text() for t in ax.texts] == ["no run"]
                    continue
                shown = ax.images[0].get_array()
                # the mean over the seeds of each run's map, scaled to its maximum
                assert shown.max() == pytest.approx(1.0) and ax.get_xlabel() == f"n={len(mine)}"
                assert np.count_nonzero(shown) == 1, (name, ratio, v)
    assert "saliency_maps_xray: empty panels (no run with the figure map): RRR at 0.5" in stdout


def test_figure_8_plots_every_shifted_seed_by_approach_against_the_column_the_papers_iou_is(xray_plotted):
    runs, stdout, drawn = xray_plotted
    axes = drawn["auc_vs_localisation"].axes
    assert [ax.get_title() for ax in axes] == ["synthetic, ratio 1.0", "SPC (xray), ratio 0.9", "VPC (rsna), ratio 0.9"]
    assert [ax.get_xlabel() for ax in axes] == ["test IoU", "test IoT", "test IoT"]
    for ax, (dataset, column) in zip(axes, (("synthetic", "iou"), ("xray", "iot"), ("rsna", "iot"))):
        points = {c.get_label(): c.get_offsets() for c in ax.collections}
        for (d, ratio, v, empty), mine in runs.items():
            if d != dataset or ratio != figures.FIG8[dataset][0]:
                continue
            skip = ", skip" if d == "rsna" and empty == "skip" else ""
            label = f"{figures.APPROACHES[v]}: {collect.LABELS[v]}{skip}"
            assert sorted(map(tuple, points[label])) == sorted((r[column], r["test_auc"]) for r in mine), label
    assert {figures.APPROACHES[v] for v in collect.VARIANTS} == {"baseline", "input masking", "domain invariance",
                                                              "saliency-based"}


def test_figure_8_leaves_out_the_datasets_a_file_has_no_run_of(csv_path, tmp_path, drawn):
    """A synthetic-only file draws Figure 8's synthetic panel alone, and its title names no X-ray column."""
    code, _, err = run(["--results", csv_path, "--out", str(tmp_path)])
    assert code == 0, err
    fig = drawn["auc_vs_localisation"]
    assert [ax.get_title() for ax in fig.axes] == ["synthetic, ratio 1.0"]
    assert "IoT" not in fig.get_suptitle() and "rsna" not in fig.get_suptitle()


@pytest.mark.parametrize("kind,n", [("seeds", 2), ("trials", 4), ("all", 6)])
def test_kind_decides_whether_the_tables_count_the_seed_runs_the_search_trials_or_both(csv_path, tmp_path, kind, n):
    """The fixture's ActDiff has two seed runs and four sweep trials (the diverged and oom runs never count)."""
    code, _, err = run(["--results", csv_path, "--out", str(tmp_path), "--kind", kind])
    assert code == 0, err
    assert f"(n={n})" in table_rows((tmp_path / "tables.md").read_text(), "synthetic")["ActDiff"][0]
