"""Every table and figure of the paper, and the AUC-saliency correlation, from the results CSV.

    python plots.py [--results results/results.csv] [--out figures/] [--latex]

The only module that aggregates results. It reads the shared results CSV (and
the ``saliency.npz`` files its rows point to), prints the tables as markdown,
writes them to ``<out>/tables.md`` (and ``tables.tex`` with ``--latex``), and
writes each figure as PNG and PDF. Whatever cannot be drawn from the rows
present is skipped with a one-line reason ("skip: ...").

A *run* is its last ``kind=final`` row (several rows for one run_id: the last
counts); only ``status=ok`` runs enter tables and figures. Its IoU comes from
the last row of that run_id (``final`` or ``saliency``, optionally of one
``--saliency`` method) that has one, with the chance and untrained IoU of that
same row; cascading-randomisation rows (``randomized`` set) never count as a
run's IoU. Table cells are mean ± sample std (ddof=1) over seeds, with the
count. Per dataset, the ratios sit side by side in two tables:

- the paper's Tables 1-2: test AUC, IoU and the untrained network's IoU, and a
  chance row (AUC 0.5; the runs' mean expected IoU of a random top-k map). An
  AUC cell is bold when its mean beats Classification's and is above 0.5.
- the selection rules: test AUC under each rule for selecting the epoch, and
  each method's paired difference to Classification over seeds. All three
  rules ignore the epochs before the run's ``burn_in``, as train.py does: the
  lowest validation loss (the paper's rule; the ``final`` row), the highest
  validation AUC (first on ties), both on the reversed validation split, i.e.
  on the test distribution (DomainBed's "oracle" selection), and the lowest
  loss on the in-distribution ``valid_id`` split, the rule available without a
  shifted split. The second and third are re-selected from the ``epoch`` rows.

The X-ray datasets' tables (xray, rsna) show, for every saliency method scored,
IoU and IoT (our IoP equals IoT), one table per scoring: every positive (the
paper's text) and the release's 50 positives (saliency.py --score-images
release). rsna's rows come twice, --empty-mask penalize (the release's) beside
skip (our correction). Under each table a note says which of our columns the
paper's "IoU" is (PAPER_IOU_MATCHES: IoT on SPC; on VPC IoT with the shift and
none without). With --paper, our IoU and IoT sit beside the authors' per-seed
IoU and IoT, column for column.

Figures 6-7 (saliency_maps_<dataset>): the shifted setting above the balanced
one, the mean input with the mask in red, then one panel per method, each the
mean over seeds of the runs' figure map (saliency.npz's sample_map). Figure 8
(auc_vs_localisation): test AUC against the column the paper's "IoU" is, every
run with a covariate shift, one panel per dataset, coloured by approach. A cell
without runs is an empty panel with a note.

Figures beyond the paper's: test AUC against ratio (with two ratios or more) and
the IoU under cascading randomisation (where saliency.py --cascade wrote rows).
"""
import argparse
import itertools
import os
import shlex
import sys
import warnings
import zipfile

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from scipy import stats  # noqa: E402

import datasets  # noqa: E402
import losses  # noqa: E402
import results  # noqa: E402
import saliency  # noqa: E402
import xray  # noqa: E402

# Table rows: the methods in losses.METHODS order; masked with zero fill is its own row.
VARIANTS = [v for m in losses.METHODS for v in ((m, "masked_zero") if m == "masked" else (m,))]
LABELS = {"baseline": "Classification", "masked": "Masked", "masked_zero": "Masked (zero fill)",
          "actdiff": "ActDiff", "adversarial": "Adversarial", "gradmask": "GradMask", "rrr": "RRR"}
GROUPS = {"baseline": "Baseline", "masked": "Baseline", "masked_zero": "Baseline", "actdiff": "Domain invariance",
          "adversarial": "Domain invariance", "gradmask": "Saliency based", "rrr": "Saliency based"}
# Okabe-Ito colours (colour-blind safe), plus a line style and marker so print in grey still works.
STYLE = {"baseline": ("#000000", "-", "o"), "masked": ("#E69F00", "-", "s"), "masked_zero": ("#E69F00", "--", "D"),
         "actdiff": ("#56B4E9", "-", "^"), "adversarial": ("#009E73", "-", "v"),
         "gradmask": ("#0072B2", "-", "P"), "rrr": ("#D55E00", "-", "X")}
SHIFT_RATIOS = {"xray": (0.9, 0.5), "rsna": (0.9, 0.5)}  # (with shift, without shift): the paper's tables
# rsna's images without a box: the release penalised them as all outside the mask; skip is our correction.
EMPTY_MASK_LABELS = {"penalize": "penalize (release)", "skip": "skip (ours)"}
# Which of our columns the paper's tables' "IoU" is, said under every table of an X-ray dataset: (column,
# where, evidence). Our IoP equals our IoT (top-k keeps |A| = |B|), so IoT stands for both.
PAPER_IOU_MATCHES = {
    "xray": ("IoT", "", "the paper's IoU column holds the authors' IoT, not their IoU (ActDiff: paper 0.77, their "
                        "IoT 0.76, their IoU 0.62; GradMask: 0.74, 0.72, 0.57)"),
    "rsna": ("IoT", " with VPC, and none of our columns without", "the authors' own table files for these runs "
             "(all_rsna_vpc_scores.tex and all_rsna_novpc_scores.tex in activmask/notebooks/tables/, whose AUCs are "
             "the per-seed file's) "
             "print 0.18, 0.12, 0.12, 0.16, 0.28, 0.19 for Classification, ActDiff, Masked, Adversarial, GradMask "
             "and RRR with VPC: within 0.035 of their per-seed IoT (0.17, 0.13, 0.11, 0.16, 0.25, 0.17) and 0.04-0.11 "
             "above their IoU; without VPC, 0.33, 0.25, 0.16, 0.20, 0.31, 0.30: above every column of theirs (IoT "
             "by 0.05-0.08, IoU by 0.09-0.16)"),
}
# Figure 8: per dataset, the ratio with the covariate shift and the localisation column the paper's "IoU" is.
FIG8 = {"synthetic": (1.0, "iou"), "xray": (0.9, "iot"), "rsna": (0.9, "iot")}
FIG8_NAMES = {"synthetic": "synthetic", "xray": "SPC (xray)", "rsna": "VPC (rsna)"}
APPROACHES = {"baseline": "baseline", "masked": "input masking", "masked_zero": "input masking",
              "actdiff": "domain invariance", "adversarial": "domain invariance", "gradmask": "saliency-based",
              "rrr": "saliency-based"}
APPROACH_COLOURS = {"baseline": "#000000", "input masking": "#E69F00", "domain invariance": "#009E73",
                    "saliency-based": "#0072B2"}
NUMERIC = ["seed", "ratio", "trial", "epoch", "epochs", "burn_in", "valid_loss", "valid_auc", "valid_id_loss",
           "test_auc", "iou", "iop", "iot", "n_scored", "n_empty_masks", "iou_chance", "iou_untrained",
           "selected_epoch", "score_size"]
# The selection rules beyond the final row's own (lowest valid loss), re-selected from the epoch rows:
# results column -> (epoch-row column, pick the highest?, the rule's name).
RULES = {"test_auc_by_valid_auc": ("valid_auc", True, "highest reversed-valid AUC"),
         "test_auc_by_valid_id_loss": ("valid_id_loss", False, "lowest valid_id loss (honest)")}
SELECTION = {"test_auc": "lowest reversed-valid loss (paper's)", **{k: name for k, (_, _, name) in RULES.items()}}
# A saliency row's IoU travels with the baselines measured beside it, so an ig IoU gets ig's chance and untrained IoU.
SALIENCY_COLUMNS = ["saliency", "iou", "iop", "iot", "n_scored", "n_empty_masks", "iou_chance", "iou_untrained",
                    "score_size", "score_images"]
# Each run's scores under every saliency method and scoring, as columns "<measure>_<method>" (every positive
# scored) and "<measure>_<method>_release" (saliency.py --score-images release: the release's 50 positives).
PER_METHOD = ["iou", "iot", "iou_chance", "iou_untrained"]
SCORINGS = {"all": "every positive test image scored (the paper's text)",
            "release": "the release's 50 positives scored (the first 25 test images of each site x label cell)"}
N_BOOT = 2000
plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "legend.fontsize": 7, "pdf.fonttype": 42,
                     "axes.spines.top": False, "axes.spines.right": False})
COLUMN_WIDTH, TEXT_WIDTH = 3.25, 6.75  # inches, ICLR


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", default=os.path.join("results", "results.csv"), help="the shared results CSV")
    p.add_argument("--out", default="figures", help="directory for tables.md, tables.tex and the figures")
    p.add_argument("--latex", action="store_true", help="also write the tables as LaTeX (tables.tex)")
    p.add_argument("--dataset", nargs="+", help="only these datasets")
    p.add_argument("--method", nargs="+", choices=list(losses.METHODS), help="only these methods")
    p.add_argument("--kind", choices=("seeds", "trials", "all"), default="seeds",
                   help="which finished runs the tables and the AUC/IoU figures use: 'seeds' (default) = runs "
                        "without a trial number, i.e. single train.py runs and a sweep's final seed runs; "
                        "'trials' = only a sweep's search trials; 'all' = both. The hyperparameter-search "
                        "figure always uses the trials.")
    p.add_argument("--sweep-id", help="only rows tagged with this sweep_id (e.g. one sweep's seed runs)")
    p.add_argument("--saliency", default="grad",
                   help="the saliency method whose IoU the tables and figures use: grad (the paper's, default), "
                        "ig or occlusion (rows that saliency.py --run DIR --saliency M added)")
    p.add_argument("--xray-data", metavar="FLAGS", default=None,
                   help="draw the X-ray/RSNA dataset figure (Figure 1) from the images, loaded with these "
                        "datasets.py flags, e.g. \"--nih-dir D --padchest-dir D --cache C\" ('' = the *_DIR "
                        "environment variables); it reads every training image, so it is off by default")
    p.add_argument("--paper", nargs=3, action="append", default=[], metavar=("DATASET", "RATIO", "CSV"),
                   help="compare with the authors' per-seed results for that setting, e.g. synthetic 1.0 "
                        "../shared/paper-results/synth_per_seed.csv (repeatable)")
    return p.parse_args(argv)


# ------------------------------------------------------------------ reading

def run_dir(row, csv_path):
    """The run's directory: as recorded, else relative to the results file's folder."""
    d = row["run_dir"]
    return d if os.path.isabs(d) or os.path.isdir(d) else os.path.join(os.path.dirname(csv_path), d)


def load(args):
    """(runs, epochs, cascade, trials, n_diverged) from the CSV, filtered; ResultsError when there is nothing.

    `cascade` holds the runs' cascading-randomisation rows (``randomized`` set); they score a damaged
    model, so they never stand for a run's IoU."""
    if not os.path.isfile(args.results):
        raise results.ResultsError(f"--results {args.results}: no such file; pass the CSV train.py wrote")
    rows = results.read_rows(args.results) if os.path.getsize(args.results) else []
    if not rows:
        raise results.ResultsError(f"--results {args.results}: the file holds no rows; train something first")
    df = pd.DataFrame(rows, columns=results.COLUMNS)
    df[NUMERIC] = df[NUMERIC].apply(pd.to_numeric, errors="coerce")
    df["variant"] = df["method"].where((df["method"] != "masked") | (df["mask_fill"] != "zero"), "masked_zero")
    for col, keep in (("dataset", args.dataset), ("method", args.method),
                      ("sweep_id", args.sweep_id and [args.sweep_id])):
        if keep:
            df = df[df[col].isin(keep)]
    finals = df[df["kind"] == "final"].drop_duplicates("run_id", keep="last")
    # saliency.py named its rows by the run directory before it read the run's id: join those (the
    # saliency rows whose id is no run's) to the run that finished in that directory.
    orphans = (df["kind"] == "saliency") & ~df["run_id"].isin(finals["run_id"])
    by_dir = finals.drop_duplicates("run_dir", keep="last").set_index("run_dir")["run_id"]
    df.loc[orphans, "run_id"] = df.loc[orphans, "run_dir"].map(by_dir).fillna(df.loc[orphans, "run_id"])
    if finals.empty:
        raise results.ResultsError(f"--results {args.results}: no finished runs (kind=final) match the filters")
    df["score_images"] = df["score_images"].replace("", "all")  # rows from before the column: every positive
    ordinary = df[df["kind"].isin(["final", "saliency"]) & df["iou"].notna() & (df["randomized"] == "")]
    scored = ordinary[ordinary["score_images"] == "all"]
    scored = scored[scored["saliency"] == args.saliency] if args.saliency else scored
    scored = scored.drop_duplicates("run_id", keep="last")[["run_id"] + SALIENCY_COLUMNS]
    finals = finals.drop(columns=SALIENCY_COLUMNS).merge(scored, on="run_id", how="left")
    # Every method's scores in their own columns too (iou_grad, iot_ig, iou_occlusion_release, ...: the last
    # row of each method and scoring), for the X-ray tables, --paper and the cascade figure's first step.
    each = ordinary[ordinary["saliency"].isin(list(PAPER_IOU))]
    each = each.drop_duplicates(["run_id", "saliency", "score_images"], keep="last")
    each = each.pivot(index="run_id", columns=["saliency", "score_images"], values=PER_METHOD)
    wanted = [(m, method, scoring) for m in PER_METHOD for method in PAPER_IOU for scoring in SCORINGS]
    each = each.reindex(columns=pd.MultiIndex.from_tuples(wanted))
    each.columns = [per_method(m, method, scoring) for m, method, scoring in wanted]
    finals = finals.join(each, on="run_id")
    trials = finals[finals["trial"].notna()]
    runs = {"seeds": finals[finals["trial"].isna()], "trials": trials, "all": finals}[args.kind]
    n_diverged = int((runs["status"] != "ok").sum())
    runs = runs[runs["status"] == "ok"].copy()
    epochs = df[(df["kind"] == "epoch") & df["run_id"].isin(runs["run_id"])]
    for name, (column, highest, _) in RULES.items():
        runs[name] = runs["run_id"].map(select_epoch(epochs, column, highest))
    cascade = df[(df["kind"] == "saliency") & (df["randomized"] != "") & df["iou"].notna()
                 & df["run_id"].isin(runs["run_id"])].drop_duplicates(["run_id", "saliency", "randomized"], keep="last")
    return runs, epochs, cascade, trials, n_diverged


def per_method(measure, method, scoring="all"):
    """The column of `load`'s runs holding `measure` (iou, iot, iou_chance, iou_untrained) of saliency
    `method` under a scoring ("all" or "release")."""
    return f"{measure}_{method}" + ("_release" if scoring == "release" else "")


def select_epoch(epochs, column, highest):
    """Per run_id: the test AUC of the eligible epoch with the highest (or lowest) `column`, the first
    such epoch on ties. Eligible as in train.py: from the run's burn_in on, or its last epoch when it
    ran fewer (rows written before burn_in existed count every epoch)."""
    e = epochs.dropna(subset=[column]).sort_values(["run_id", "epoch"], kind="stable")
    e = e[(e["epoch"] >= e["burn_in"].fillna(1)) | (e["epoch"] == e["epochs"])]
    if e.empty:
        return pd.Series(dtype=float)
    best = e.groupby("run_id")[column].idxmax() if highest else e.groupby("run_id")[column].idxmin()
    return e.loc[best].set_index("run_id")["test_auc"]


def settings(runs, dataset, notes, what):
    """The ratios to show for a dataset: the paper's pair for X-ray/RSNA, else every ratio present."""
    present = sorted(runs.loc[runs["dataset"] == dataset, "ratio"].dropna().unique(), reverse=True)
    wanted = SHIFT_RATIOS.get(dataset, present)
    for r in wanted:
        if not np.isclose(present, r).any():
            notes.append(f"skip: {what}, {dataset} ratio {fmt_ratio(r)}: no rows for {dataset} ratio {fmt_ratio(r)}")
    return [r for r in wanted if np.isclose(present, r).any()]


def at(frame, dataset, ratio, variant=None, empty_mask=None):
    """The rows of one setting; of one table row with `variant` (and `empty_mask`, rsna's row split)."""
    sel = (frame["dataset"] == dataset) & np.isclose(frame["ratio"], ratio)
    if variant:
        sel &= frame["variant"] == variant
    if empty_mask is not None:
        sel &= frame["empty_mask"].fillna("") == empty_mask
    return frame[sel]


def fmt_ratio(ratio):
    return f"{ratio:.1f}" if round(ratio, 1) == ratio else f"{ratio:g}"


def setting_name(dataset, ratio):
    if dataset in SHIFT_RATIOS:
        shift = "with" if np.isclose(ratio, SHIFT_RATIOS[dataset][0]) else "without"
        return f"{shift} shift ({fmt_ratio(ratio)})"
    return f"ratio {fmt_ratio(ratio)}"


# ------------------------------------------------------------------ tables

def cell(values, bold=False):
    """(text, bold) for one table cell: 'mean ± std (n=k)' over the non-missing values."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(float)
    if len(v) == 0:
        return "–", False
    spread = f" ± {v.std(ddof=1):.2f}" if len(v) > 1 else ""
    return f"{v.mean():.2f}{spread} (n={len(v)})", bold


def present(runs, dataset, ratios):
    """The table rows: the variants with a run at one of the ratios, in VARIANTS order."""
    return [v for v in VARIANTS if any(len(at(runs, dataset, r, v)) for r in ratios)]


def table_keys(runs, dataset, ratios):
    """The X-ray tables' rows as (variant, empty_mask), in VARIANTS order. On rsna a method comes once per
    --empty-mask it was run with, side by side: penalize (the release's) first, then skip (our correction);
    elsewhere (variant, None), whatever empty_mask says (xray has no image without a mask)."""
    variants = present(runs, dataset, ratios)
    if dataset != "rsna":
        return [(v, None) for v in variants]
    mine = runs[runs["dataset"] == dataset]
    kinds = list(dict.fromkeys(list(EMPTY_MASK_LABELS) + sorted(set(mine["empty_mask"].fillna("")))))
    return [(v, e) for v in variants for e in kinds
            if ((mine["variant"] == v) & (mine["empty_mask"].fillna("") == e)).any()]


def row_label(variant, empty_mask):
    label = LABELS.get(variant, variant)
    return label if empty_mask is None else f"{label}, {EMPTY_MASK_LABELS.get(empty_mask, empty_mask or 'unrecorded')}"


def methods_shown(runs, dataset, scoring):
    """The saliency methods with a column in a dataset's X-ray table: grad (the paper's) always, the others
    where a run was scored with them (saliency.py --saliency)."""
    mine = runs[runs["dataset"] == dataset]
    return [m for m in PAPER_IOU if m == "grad" or mine[per_method("iou", m, scoring)].notna().any()]


def xray_table(runs, dataset, notes, scoring, saliency_method):
    """Tables 1/2 as the X-ray tables show them, for one scoring ("all" or "release"), ratios side by side:
    per ratio the test AUC, IoU and IoT of every saliency method scored, and the untrained network's IoU of
    `saliency_method`; rows as `table_keys`, then the chance row. (header, rows) as `results_table`'s, or None
    when no run of the dataset was scored so (the release's scoring is saliency.py --score-images release)."""
    ratios = settings(runs, dataset, notes if scoring == "all" else [], "table column group")
    mine = runs[runs["dataset"] == dataset]
    if not ratios or (scoring != "all" and not any(mine[per_method("iou", m, scoring)].notna().any()
                                                   for m in PAPER_IOU)):
        return None
    shown = methods_shown(runs, dataset, scoring)
    untrained = per_method("iou_untrained", saliency_method or "grad", scoring)
    measures = ["AUC"] + [f"{m} {method}" for method in shown for m in ("IoU", "IoT")] + \
               [f"IoU untrained ({saliency_method or 'grad'})"]
    header = ["group", "method"] + [(setting_name(dataset, r), m) for r in ratios for m in measures]
    body, last_group = [], None
    for v, empty in table_keys(runs, dataset, ratios):
        group = GROUPS.get(v, "Other")
        row = [group if group != last_group else "", row_label(v, empty)]
        last_group = group
        for r in ratios:
            sel = at(runs, dataset, r, v, empty)
            base = at(runs, dataset, r, "baseline", empty)
            base = base if len(base) else at(runs, dataset, r, "baseline")  # Classification ignores the masks
            mean = sel["test_auc"].mean()
            row.append(cell(sel["test_auc"], v != "baseline" and mean > base["test_auc"].mean() and mean > 0.5))
            row += [cell(sel[per_method(m, method, scoring)]) for method in shown for m in ("iou", "iot")]
            row.append(cell(sel[untrained]))
        body.append(row)
    chance = ["Reference", "Chance"]
    for r in ratios:  # a random top-k map's IoU depends on the masks only: every method's runs pooled
        pooled = at(runs, dataset, r)
        chance += [("0.50", False)] + [cell(pooled[per_method("iou_chance", method, scoring)]) if m == "iou"
                                       else ("–", False) for method in shown for m in ("iou", "iot")]
        chance.append(("–", False))
    return header, body + [chance]


def paper_iou_note(dataset):
    """The line under every table of an X-ray dataset: which of our columns the paper's "IoU" is."""
    column, where, why = PAPER_IOU_MATCHES[dataset]
    return f"The paper's \"IoU\" matches our {column} on {dataset}{where}: {why}."


def results_table(runs, dataset, notes):
    """Tables 1/2 for one dataset, ratios side by side: (header, rows). A header entry past the first two is
    (setting, measure); a row is [group, method, (text, bold), ...], and the last row is the chance level."""
    ratios = settings(runs, dataset, notes, "table column group")
    if not ratios:
        return None
    header = ["group", "method"] + [(setting_name(dataset, r), m) for r in ratios
                                    for m in ("AUC", "IoU", "IoU untrained")]
    body, last_group = [], None
    for v in present(runs, dataset, ratios):
        group = GROUPS.get(v, "Other")
        row = [group if group != last_group else "", LABELS.get(v, v)]
        last_group = group
        for r in ratios:
            sel, base = at(runs, dataset, r, v), at(runs, dataset, r, "baseline")
            mean = sel["test_auc"].mean()
            row += [cell(sel["test_auc"], v != "baseline" and mean > base["test_auc"].mean() and mean > 0.5),
                    cell(sel["iou"]), cell(sel["iou_untrained"])]
        body.append(row)
    # Chance pools every method's runs: a random top-k map's IoU depends only on the test masks.
    chance = ["Reference", "Chance"]
    for r in ratios:
        chance += [("0.50", False), cell(at(runs, dataset, r)["iou_chance"]), ("–", False)]
    if runs.loc[runs["dataset"] == dataset, ["iou_chance", "iou_untrained"]].isna().to_numpy().all():
        notes.append(f"no chance or untrained IoU for {dataset}: its rows predate those columns (blank cells)")
    return header, body + [chance]


def paired_difference(sel, base, column):
    """(text, bold) for one method against Classification: the mean ± std over seeds of the difference in
    `column` on the same seed (same data), and the two-sided paired t-test's p. Bold when p < 0.05, ahead or
    behind: without a shift, a method costing AUC is the finding. No p when every seed gives the same
    difference (t is then undefined)."""
    a, b = sel.groupby("seed")[column].mean(), base.groupby("seed")[column].mean()
    d = (a - b).dropna()  # the seeds both have
    if d.empty:
        return "–", False
    p = stats.ttest_1samp(d, 0.0).pvalue if len(d) > 1 and np.ptp(d) > 0 else np.nan
    spread = f" ± {d.std(ddof=1):.2f}" if len(d) > 1 else ""
    text = f"{d.mean():+.2f}{spread}" + (f", p = {p:.2g}" if np.isfinite(p) else "") + f" (n={len(d)})"
    return text, bool(p < 0.05)


def rules_table(runs, dataset):
    """Test AUC under each selection rule, ratios side by side, with each method's paired difference to
    Classification: (header, rows), one block of rows per rule."""
    ratios = settings(runs, dataset, [], "rules table")  # results_table has noted the missing ratios
    if not ratios:
        return None
    header = ["rule", "method"] + [(setting_name(dataset, r), m) for r in ratios
                                   for m in ("AUC", "Δ vs Classification")]
    body = []
    for column, rule in SELECTION.items():
        for i, (v, empty) in enumerate(table_keys(runs, dataset, ratios) if dataset in SHIFT_RATIOS
                                       else [(v, None) for v in present(runs, dataset, ratios)]):
            row = [rule if i == 0 else "", row_label(v, empty)]
            for r in ratios:
                sel, base = at(runs, dataset, r, v, empty), at(runs, dataset, r, "baseline", empty)
                row += [cell(sel[column]), paired_difference(sel, base, column) if v != "baseline" else ("–", False)]
            body.append(row)
    return header, body


def title(h):
    return h if isinstance(h, str) else " ".join(h)


def markdown(header, body):
    text = lambda c: c if isinstance(c, str) else (f"**{c[0]}**" if c[1] else c[0])
    lines = ["| " + " | ".join(map(title, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(text(c) for c in row) + " |" for row in body])


TEX = {"±": r"$\pm$", "–": "--", "Δ": r"$\Delta$", "ρ": r"$\rho$", "_": r"\_", "%": r"\%", ">": "$>$", "<": "$<$"}


def tex(s):
    return "".join(TEX.get(ch, ch) for ch in s)


def latex(header, body, caption):
    """A booktabs table: one multicolumn heading per setting over its measures; a rule before each group."""
    text = lambda c: tex(c) if isinstance(c, str) else (rf"\textbf{{{tex(c[0])}}}" if c[1] else tex(c[0]))
    settings_row = [(s, len(list(g))) for s, g in itertools.groupby(h[0] for h in header[2:])]
    lines = [r"\begin{table}[t]", r"\centering\small", rf"\caption{{{tex(caption)}}}",
             r"\begin{tabular}{ll" + "c" * (len(header) - 2) + "}", r"\toprule",
             " & & " + " & ".join(rf"\multicolumn{{{n}}}{{c}}{{{tex(s)}}}" for s, n in settings_row) + r" \\",
             " & ".join(tex(h.capitalize() if isinstance(h, str) else h[1]) for h in header) + r" \\", r"\midrule"]
    for row in body:
        if row[0] and row is not body[0]:
            lines.append(r"\midrule")
        lines.append(" & ".join(text(c) for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


# ------------------------------------------------------------------ the AUC-IoU correlation

def correlation(auc, iou, n_boot=N_BOOT, seed=0):
    """Pearson and Spearman correlation of test AUC with IoU, and a bootstrap 95% CI of Pearson r."""
    auc, iou = np.asarray(auc, float), np.asarray(iou, float)
    r, p = stats.pearsonr(auc, iou)
    rho, p_rho = stats.spearmanr(auc, iou)
    idx = np.random.default_rng(seed).integers(0, len(auc), size=(n_boot, len(auc)))  # resampled points
    a, b = auc[idx], iou[idx]
    ok = (np.ptp(a, axis=1) > 0) & (np.ptp(b, axis=1) > 0)  # r is undefined on a constant resample
    a, b = a[ok] - a[ok].mean(1, keepdims=True), b[ok] - b[ok].mean(1, keepdims=True)
    boot = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return dict(n=len(auc), r=float(r), p=float(p), rho=float(rho), p_rho=float(p_rho), lo=lo, hi=hi)


def within_correlation(auc, iou, groups):
    """Pearson r of AUC with IoU after subtracting each group's (setting's) mean from both, and its p.

    The pooled r mixes two things: methods whose runs differ in both AUC and IoU, and seeds of one
    method that do. This keeps the second only: does a seed with a better IoU than its method's other
    seeds also generalise better? The t-test has n - g - 1 degrees of freedom (g group means were
    fitted); (nan, nan) when no group varies in both measures or too few runs are left.
    """
    frame = pd.DataFrame({"auc": np.asarray(auc, float), "iou": np.asarray(iou, float), "g": list(groups)})
    centred = frame[["auc", "iou"]] - frame.groupby("g")[["auc", "iou"]].transform("mean")
    a, b = centred["auc"].to_numpy(), centred["iou"].to_numpy()
    df = len(frame) - frame["g"].nunique() - 1
    if df < 1 or not (a @ a > 0 and b @ b > 0):
        return float("nan"), float("nan")
    r = float(np.clip(a @ b / np.sqrt((a @ a) * (b @ b)), -1.0, 1.0))
    p = 0.0 if abs(r) == 1.0 else float(2 * stats.t.sf(abs(r) * np.sqrt(df / (1 - r * r)), df))
    return r, p


def correlations(runs, notes):
    """{(dataset, ratio): correlation dict} over every run (all methods pooled) with an AUC and an IoU, with
    the within-setting r beside it (`within_correlation`)."""
    out = {}
    for (dataset, ratio), g in runs.dropna(subset=["test_auc", "iou"]).groupby(["dataset", "ratio"]):
        if len(g) < 3 or g["test_auc"].nunique() < 2 or g["iou"].nunique() < 2:
            notes.append(f"skip: AUC-IoU correlation, {dataset} ratio {fmt_ratio(ratio)}: needs >= 3 runs with "
                         f"varying AUC and IoU, has {len(g)}")
            continue
        out[dataset, ratio] = correlation(g["test_auc"], g["iou"])
        out[dataset, ratio]["r_within"], out[dataset, ratio]["p_within"] = within_correlation(
            g["test_auc"], g["iou"], g["variant"])
    return out


def precision_notes(runs, notes):
    """Say which precision each setting's runs trained in: ratios may differ (bf16 was allowed for the
    no-shift runs), and a setting with both is pooled in every table, so that is said too."""
    for (dataset, ratio), group in runs.groupby(["dataset", "ratio"]):
        counts = group["precision"].replace("", "unrecorded").fillna("unrecorded").value_counts()
        said = ", ".join(f"{n} run(s) in {p}" for p, n in sorted(counts.items()))
        mixed = "; both are pooled in the tables" if len(counts) > 1 else ""
        notes.append(f"precision: {dataset} ratio {fmt_ratio(ratio)}: {said}{mixed}")


def correlation_table(corr):
    within = lambda c: ("–", "–") if np.isnan(c["r_within"]) else (f"{c['r_within']:.3f}", f"{c['p_within']:.3g}")
    rows = [[d, fmt_ratio(r), str(c["n"]), f"{c['r']:.3f}", f"{c['p']:.3g}", f"[{c['lo']:.3f}, {c['hi']:.3f}]",
             f"{c['rho']:.3f}", f"{c['p_rho']:.3g}", *within(c)]
            for (d, r), c in sorted(corr.items(), key=lambda item: (item[0][0], -item[0][1]))]
    return markdown(["dataset", "ratio", "n", "Pearson r", "p", f"95% CI of r (bootstrap, {N_BOOT})",
                     "Spearman ρ", "p", "within-setting r", "p"], rows)


PAPER_NAMES = {"masked (zero fill)": "masked_zero"}  # the authors' method names -> our table rows
# Our saliency methods -> the authors' IoU columns; load() puts ours in iou_<method>.
PAPER_IOU = {"grad": "iou_grad", "ig": "iou_ig", "occlusion": "iou_occlude"}


def ours_vs_paper(mine, theirs):
    """[ours, paper, 'Welch p / MWU p'] cells; p is '–' unless both sides have >= 2 values, not all equal."""
    mine, theirs = (np.asarray([] if v is None else pd.to_numeric(v, errors="coerce").dropna(), float)
                    for v in (mine, theirs))
    if len(mine) > 1 and len(theirs) > 1 and np.ptp(np.r_[mine, theirs]) > 0:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # near-identical samples: p is still right
            t = stats.ttest_ind(mine, theirs, equal_var=False).pvalue
        p = f"{t:.2g} / {stats.mannwhitneyu(mine, theirs).pvalue:.2g}"
    else:
        p = "–"
    return [cell(mine)[0], cell(theirs)[0], p]


def paper_comparison(runs, dataset, ratio, path):
    """Ours vs the authors' per-seed test AUC, IoU and IoT under each saliency method, column for column, with
    Welch's t-test and MWU.

    Seven rows per method: test AUC, then IoU and IoT with grad, ig and
    occlusion (the authors' "occlude"). Our scores for a saliency method are
    the last final or saliency row of the run scored with it on every
    positive; where runs were also scored on the release's subset (the
    authors' own scoring), two more columns compare those. On rsna, ours are
    the --empty-mask penalize runs (the authors') where there are any. Each
    side's cell shows its n; a side without values is "–", and so is p unless
    both sides have two or more. Columns missing from the authors' file count
    as no values.
    """
    try:
        paper = pd.read_csv(path)
        paper["variant"] = paper["method"].replace(PAPER_NAMES)
        paper["test_auc"]
    except (OSError, KeyError, pd.errors.ParserError) as e:
        raise results.ResultsError(f"--paper {path}: not a per-seed results file ({e})")
    ours = at(runs, dataset, float(ratio))
    if dataset == "rsna" and (ours["empty_mask"] == "penalize").any():
        ours = ours[ours["empty_mask"] == "penalize"]
    measures = [("test AUC", "test_auc", "test_auc")] + [
        (f"{name}, {m}", measure, col.replace("iou_", f"{measure}_")) for m, col in PAPER_IOU.items()
        for name, measure in (("IoU", "iou"), ("IoT", "iot"))]
    release = any(ours[per_method("iou", m, "release")].notna().any() for m in PAPER_IOU)
    body = []
    for v in VARIANTS:
        a, b = ours[ours["variant"] == v], paper[paper["variant"] == v]
        if a.empty and b.empty:
            continue
        for i, (name, measure, theirs) in enumerate(measures):
            method = name.split(", ")[-1]
            column = lambda scoring: "test_auc" if measure == "test_auc" else per_method(measure, method, scoring)
            cells = ours_vs_paper(a.get(column("all")), b.get(theirs))
            if release:
                mine = ours_vs_paper(a.get(column("release")), b.get(theirs))
                cells += [mine[0], mine[2]]
            body.append([LABELS.get(v, v) if i == 0 else "", name] + cells)
    header = ["method", "measure", "ours", "paper", "p (Welch / MWU)"]
    header += ["ours, the release's 50 positives", "p (Welch / MWU), release"] if release else []
    return markdown(header, body)


# ------------------------------------------------------------------ figures

def save(fig, out, name, written):
    for ext in ("png", "pdf"):
        path = os.path.join(out, f"{name}.{ext}")
        # No creation date in the PDF: a redrawn figure with the same data is then the same file (small diffs).
        fig.savefig(path, dpi=200, bbox_inches="tight", metadata={"CreationDate": None} if ext == "pdf" else None)
        written.append(path)
    plt.close(fig)


def panels(n, height=2.2):
    fig, axes = plt.subplots(1, n, figsize=(min(COLUMN_WIDTH * n, TEXT_WIDTH), height), squeeze=False,
                             layout="constrained")
    return fig, axes[0]


def legend_below(fig, axes):
    handles = {l: h for ax in axes for h, l in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=min(4, len(handles)),
               frameon=False)


def fig_valid_auc(runs, epochs, dataset, ratios, out, written, notes):
    """Figures 4 / A.2: validation AUC per epoch, mean ± std over seeds, one line per method."""
    if not epochs["run_id"].isin(runs.loc[runs["dataset"] == dataset, "run_id"]).any():
        notes.append(f"skip: valid_auc_{dataset} (Figures 4, A.2): the {dataset} runs have no epoch rows")
        return
    fig, axes = panels(len(ratios))
    for ax, ratio in zip(axes, ratios):
        for v in VARIANTS:
            ids = at(runs, dataset, ratio, v)["run_id"]
            g = epochs[epochs["run_id"].isin(ids)].groupby("epoch")["valid_auc"]
            if not len(ids) or not g.ngroups:
                continue
            mean, std = g.mean(), g.std(ddof=1).fillna(0)
            colour, ls, _ = STYLE.get(v, ("grey", "-", "o"))
            ax.plot(mean.index, mean, color=colour, ls=ls, lw=1.2, label=LABELS.get(v, v))
            ax.fill_between(mean.index, mean - std, mean + std, color=colour, alpha=0.15, lw=0)
        ax.axhline(0.5, color="grey", lw=0.6, ls=":")
        ax.set(title=f"{dataset}, {setting_name(dataset, ratio)}", xlabel="epoch", ylim=(-0.02, 1.02))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("validation AUC")
    legend_below(fig, axes)
    save(fig, out, f"valid_auc_{dataset}", written)


def fig_saliency(runs, dataset, ratio, args, written, notes):
    """Figures 5-7: the mean input with the mean mask in red, then each method's mean saliency map."""
    maps, inputs, masks = {}, [], []
    for v in VARIANTS:
        for _, row in at(runs, dataset, ratio, v).iterrows():
            path = os.path.join(run_dir(row, args.results), "saliency.npz")
            if not os.path.isfile(path):
                continue
            try:
                with np.load(path) as z:
                    if args.saliency and str(z["saliency"]) != args.saliency:
                        continue
                    mean_map, mean_input, mean_mask = z["mean_map"], z["mean_input"], z["mean_mask"]
            except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
                notes.append(f"skip: {path}: unreadable ({type(e).__name__}: {e})")
                continue
            maps.setdefault(v, []).append(mean_map)
            inputs.append(mean_input)
            masks.append(mean_mask)
    name = f"saliency_{dataset}_{fmt_ratio(ratio)}"
    if not maps:
        notes.append(f"skip: {name} (Figures 5-7): no saliency.npz in the run directories of {dataset} "
                     f"ratio {fmt_ratio(ratio)}")
        return
    n = 1 + len(maps)
    rows = 1 if n <= 5 else 2
    cols = -(-n // rows)
    fig, axes = plt.subplots(rows, cols, figsize=(min(1.45 * cols, TEXT_WIDTH), 1.75 * rows), squeeze=False,
                             layout="constrained")
    axes = axes.ravel()
    axes[0].imshow(np.mean(inputs, 0), cmap="gray")
    axes[0].imshow(mask_overlay(np.mean(masks, 0)))
    axes[0].set_title("mean input,\nmask in red")
    for ax, (v, ms) in zip(axes[1:], maps.items()):
        m = np.mean(ms, 0)
        im = ax.imshow(m / max(m.max(), 1e-12), cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"{LABELS.get(v, v)}\n(n={len(ms)} runs)")
    for ax in axes:
        ax.set_axis_off()
    fig.colorbar(im, ax=list(axes), shrink=0.75, label="|saliency| / panel max")
    save(fig, args.out, name, written)


def mask_overlay(mask):
    """An RGBA image of `mask` (H, W) in translucent red, for imshow over an image."""
    overlay = np.zeros(mask.shape + (4,))
    overlay[..., 0] = 1.0
    overlay[..., 3] = 0.6 * mask / max(mask.max(), 1e-12)
    return overlay


def run_npz(row, args, keys, notes):
    """{key: array} of `keys` from the run's saliency.npz of the --saliency method (the run's own folder, else
    its saliency-<method>/), or None: no such file, or one written before those keys existed."""
    base = run_dir(row, args.results)
    for path in (os.path.join(base, "saliency.npz"), os.path.join(base, f"saliency-{args.saliency}", "saliency.npz")):
        if not os.path.isfile(path):
            continue
        try:
            with np.load(path) as z:
                if args.saliency and str(z["saliency"]) != args.saliency:
                    continue
                return {k: z[k] for k in keys}
        except KeyError:
            return None
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            notes.append(f"skip: {path}: unreadable ({type(e).__name__}: {e})")
            return None
    return None


def blank(ax, text):
    """An empty panel that says why it is empty."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=6, color="grey")


def fig_xray_maps(runs, dataset, args, written, notes, empty_mask=None):
    """Figures 6 and 7: the shifted setting on the top row, the balanced one below; first the mean input with
    the mean mask in red, then one panel per method (VARIANTS order): the mean over the seeds of each run's
    figure map (saliency.py's sample_map: |saliency| of up to 500 random test images, smoothed, kept above
    each image's median, averaged). A cell without runs is drawn empty, with a note; rsna draws one figure
    per --empty-mask (`empty_mask`)."""
    suffix = "" if empty_mask in (None, "penalize") else f"_{empty_mask or 'unrecorded'}"
    name = f"saliency_maps_{dataset}{suffix}"
    ratios, keys = SHIFT_RATIOS[dataset], ("sample_map", "sample_input", "sample_mask")
    maps, inputs, missing = {}, {r: [] for r in ratios}, []
    for r in ratios:
        for v in VARIANTS:
            found = [z for _, row in at(runs, dataset, r, v, empty_mask).iterrows()
                     if (z := run_npz(row, args, keys, notes)) is not None]
            inputs[r] += found
            if found:
                maps[r, v] = np.mean([z["sample_map"] for z in found], 0), len(found)
            else:
                missing.append(f"{LABELS.get(v, v)} at {fmt_ratio(r)}")
    if not maps:
        notes.append(f"skip: {name} (Figures 6-7): no {dataset} run has a saliency.npz with the figure map "
                     f"(sample_map)")
        return
    fig, axes = plt.subplots(len(ratios), 1 + len(VARIANTS), squeeze=False, layout="constrained",
                             figsize=(TEXT_WIDTH, 1.05 * len(ratios) + 0.6))
    image = None
    for i, r in enumerate(ratios):
        first = axes[i, 0]
        if inputs[r]:
            first.imshow(np.mean([z["sample_input"] for z in inputs[r]], 0), cmap="gray")
            first.imshow(mask_overlay(np.mean([z["sample_mask"] for z in inputs[r]], 0)))
        else:
            blank(first, "no runs")
        first.set_ylabel(setting_name(dataset, r), fontsize=6)
        for ax, v in zip(axes[i, 1:], VARIANTS):
            if (r, v) in maps:
                m, n = maps[r, v]
                image = ax.imshow(m / max(m.max(), 1e-12), cmap="viridis", vmin=0, vmax=1)
                ax.set_xlabel(f"n={n}", fontsize=6)
            else:
                blank(ax, "no run")
        titles = ["mean input,\nmask in red"] + [LABELS.get(v, v).replace(" (", "\n(") for v in VARIANTS]
        for ax, title in zip(axes[i], titles):
            ax.set(xticks=[], yticks=[], title=title if i == 0 else "")
            ax.set_box_aspect(1)  # an empty panel keeps the images' square
            ax.spines[:].set_visible(False)
    fig.colorbar(image, ax=list(axes.ravel()), shrink=0.7, label="|saliency| / panel max")
    save(fig, args.out, name, written)
    if missing:
        notes.append(f"{name}: empty panels (no run with the figure map): {', '.join(missing)}")


def fig_auc_vs_localisation(runs, out, written, notes):
    """Figure 8: test AUC against the localisation score, every run with a covariate shift (FIG8's ratio), one
    panel per dataset (synthetic, SPC, VPC); colour = the approach (baseline, input masking, domain invariance,
    saliency-based), marker = the method. x is the column the paper's "IoU" is on that dataset (FIG8). rsna's
    skip runs (our correction) are hollow beside the release's penalize runs. A dataset without runs is an
    empty panel, with a note."""
    fig, axes = panels(len(FIG8), height=2.6)
    for ax, (dataset, (ratio, column)) in zip(axes, FIG8.items()):
        shown = at(runs, dataset, ratio).dropna(subset=[column, "test_auc"])
        label = "IoU" if column == "iou" else "IoT"
        ax.set(title=f"{FIG8_NAMES[dataset]}, ratio {fmt_ratio(ratio)}", xlabel=f"test {label}",
               ylabel="test AUC", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))  # one scale: panels compare
        if shown.empty:
            blank(ax, f"no {dataset} run at ratio {fmt_ratio(ratio)}")
            notes.append(f"auc_vs_localisation (Figure 8): empty {FIG8_NAMES[dataset]} panel: no run with an "
                         f"AUC and a {label} at ratio {fmt_ratio(ratio)}")
            continue
        for v in VARIANTS:
            for empty, sel in shown[shown["variant"] == v].groupby(shown["empty_mask"].fillna(""), sort=False):
                hollow = dataset == "rsna" and empty == "skip"
                colour, (_, _, marker) = APPROACH_COLOURS[APPROACHES[v]], STYLE.get(v, ("grey", "-", "o"))
                ax.scatter(sel[column], sel["test_auc"], marker=marker, s=18, alpha=0.85, edgecolors=colour,
                           facecolors="none" if hollow else colour,
                           label=f"{APPROACHES[v]}: {LABELS.get(v, v)}" + (", skip" if hollow else ""))
    fig.suptitle("Test AUC against localisation, every seed with a covariate shift. x: IoU on synthetic, IoT on "
                 "SPC and VPC (the column the paper's \"IoU\" is); hollow: rsna --empty-mask skip", fontsize=7)
    handles = {l: h for ax in axes for h, l in zip(*ax.get_legend_handles_labels())}
    order = [f"{APPROACHES[v]}: {LABELS.get(v, v)}{skip}" for a in APPROACH_COLOURS for v in VARIANTS
             if APPROACHES[v] == a for skip in ("", ", skip")]  # grouped by approach, as the paper's legend
    shown = [l for l in order if l in handles]
    if shown:
        fig.legend([handles[l] for l in shown], shown, loc="outside lower center", ncol=4, frameon=False)
    save(fig, out, "auc_vs_localisation", written)


def fig_auc_vs_iou(runs, dataset, ratios, corr, out, written, notes):
    """Figure 8: test AUC against test IoU, one point per run, with the correlation in each title and the
    chance IoU (mean over the runs; shaded from their lowest to their highest) where the rows have it."""
    ratios = [r for r in ratios if at(runs, dataset, r)["iou"].notna().any()]
    if not ratios:
        notes.append(f"skip: auc_vs_iou_{dataset} (Figure 8): no {dataset} run has an IoU")
        return
    fig, axes = panels(len(ratios), height=2.6)
    for ax, ratio in zip(axes, ratios):
        for v in VARIANTS:
            sel = at(runs, dataset, ratio, v).dropna(subset=["iou", "test_auc"])
            if len(sel):
                colour, _, marker = STYLE.get(v, ("grey", "-", "o"))
                ax.scatter(sel["iou"], sel["test_auc"], color=colour, marker=marker, s=18, alpha=0.85,
                           label=LABELS.get(v, v))
        chance = at(runs, dataset, ratio)["iou_chance"].dropna()
        if len(chance):  # IoU is on x, so the chance level is a vertical line, its band the runs' spread
            ax.axvline(chance.mean(), color="grey", lw=0.8, ls=":", label="chance IoU (random top-k map)")
            ax.axvspan(chance.min(), chance.max(), color="grey", alpha=0.12, lw=0)
        untrained = at(runs, dataset, ratio)["iou_untrained"].dropna()
        if len(untrained):  # what the same saliency gives before any training: the other reference level
            ax.axvline(untrained.mean(), color="grey", lw=0.8, ls="--", label="untrained network's IoU")
        c = corr.get((dataset, ratio))
        # Three lines, so three panels' titles (one per ratio) fit side by side.
        stat = (f"\nr = {c['r']:.2f} (p = {c['p']:.2g}), n = {c['n']}\n95% CI of r [{c['lo']:.2f}, {c['hi']:.2f}]"
                f"\nρ = {c['rho']:.2f} (p = {c['p_rho']:.2g})") if c else "\n(too few runs)"
        ax.set(title=f"{dataset}, {setting_name(dataset, ratio)}{stat}", xlabel="test IoU", ylabel="test AUC")
    legend_below(fig, axes)
    save(fig, out, f"auc_vs_iou_{dataset}", written)


def fig_auc_vs_ratio(runs, dataset, ratios, out, written):
    """Test AUC against the training ratio, mean ± std over seeds, one line per method; a panel per selection
    rule (the no-shift control: does a method's advantage need the spurious correlation?)."""
    fig, axes = panels(len(SELECTION), height=2.4)
    variants = present(runs, dataset, ratios)
    dodge = 0.012 * np.ptp(ratios)  # methods side by side at each ratio, so their error bars stay apart
    for ax, (column, rule) in zip(axes, SELECTION.items()):
        for i, v in enumerate(variants):
            values = [at(runs, dataset, r, v)[column].dropna() for r in ratios]
            mean = [x.mean() for x in values]
            std = [x.std(ddof=1) if len(x) > 1 else 0.0 for x in values]
            colour, ls, marker = STYLE.get(v, ("grey", "-", "o"))
            ax.errorbar(np.array(ratios) + (i - (len(variants) - 1) / 2) * dodge, mean, yerr=std, color=colour,
                        ls=ls, marker=marker, ms=3.5, lw=1, capsize=2, label=LABELS.get(v, v))
        ax.axhline(0.5, color="grey", lw=0.6, ls=":")
        ax.set(title=f"{dataset}, epoch by\n{rule}", xlabel="ratio", xticks=ratios, ylim=(-0.04, 1.04))
    axes[0].set_ylabel("test AUC (mean ± std over seeds)")
    legend_below(fig, axes)
    save(fig, out, f"auc_vs_ratio_{dataset}", written)


def fig_cascade(runs, cascade, dataset, ratio, out, written, notes):
    """Cascading randomisation (Adebayo et al. 2018): IoU as the layers are re-initialised from the top,
    mean ± std over the runs that have the cascade, one panel per saliency method, one line per training
    method; the first step is the trained model, the run's own IoU for that saliency method."""
    name = f"cascade_{dataset}_{fmt_ratio(ratio)}"
    rows = cascade[cascade["run_id"].isin(at(runs, dataset, ratio)["run_id"])
                   & cascade["saliency"].isin(list(PAPER_IOU))]
    if rows.empty:
        notes.append(f"skip: {name}: no cascading-randomisation rows (saliency.py) for {dataset} "
                     f"ratio {fmt_ratio(ratio)}")
        return
    methods = [m for m in PAPER_IOU if m in set(rows["saliency"])]
    by_run = runs.set_index("run_id")
    fig, axes = panels(len(methods), height=2.4)
    for ax, method in zip(axes, methods):
        mine = rows[rows["saliency"] == method]
        known = set(mine["randomized"])
        steps = ["trained"] + [c for c in saliency.CASCADE if c in known] + sorted(known - set(saliency.CASCADE))
        iou = mine.pivot(index="run_id", columns="randomized", values="iou")  # (runs, steps)
        iou["trained"] = by_run[f"iou_{method}"].reindex(iou.index)
        iou = iou.reindex(columns=steps)
        variant = by_run["variant"].reindex(iou.index)
        for v in VARIANTS:
            curve = iou[variant == v]
            if curve.empty:
                continue
            colour, ls, marker = STYLE.get(v, ("grey", "-", "o"))
            mean, std = curve.mean(), curve.std(ddof=1).fillna(0)
            ax.plot(range(len(steps)), mean, color=colour, ls=ls, marker=marker, ms=3, lw=1.2,
                    label=LABELS.get(v, v))
            ax.fill_between(range(len(steps)), mean - std, mean + std, color=colour, alpha=0.07, lw=0)
        # Chance depends only on the masks, so the runs' own rows stand in where the cascade rows lack it.
        chance = mine["iou_chance"].dropna()
        chance = chance if len(chance) else by_run["iou_chance"].reindex(iou.index).dropna()
        if len(chance):
            ax.axhline(chance.mean(), color="grey", lw=0.8, ls=":", label="chance IoU")
        ax.set_xticks(range(len(steps)), steps, rotation=45)
        ax.set(title=f"{dataset}, {setting_name(dataset, ratio)}: {method}", ylabel="test IoU",
               xlabel="re-initialised from the top down to")
    legend_below(fig, axes)
    save(fig, out, name, written)


def fig_sweep(trials, out, written, notes):
    """Figure A.1: the best validation AUC found so far, per trial, for each method and sweep."""
    if trials.empty:
        notes.append("skip: hparam_search (Figure A.1): no final rows with a trial number (run sweep.py)")
        return
    keys = sorted(trials.groupby(["dataset", "ratio"]).groups)
    fig, axes = panels(len(keys))
    for ax, (dataset, ratio) in zip(axes, keys):
        sel = at(trials, dataset, ratio)
        for (variant, sweep), g in sel.groupby(["variant", "sweep_id"], sort=False):
            g = g.sort_values("trial")
            best = np.fmax.accumulate(g["valid_auc"].fillna(-np.inf).to_numpy())  # failed trials never improve
            colour, ls, _ = STYLE.get(variant, ("grey", "-", "o"))
            several = sel.loc[sel["variant"] == variant, "sweep_id"].nunique() > 1
            label = LABELS.get(variant, variant) + (f" ({sweep})" if several else "")
            ax.plot(g["trial"], np.where(np.isfinite(best), best, np.nan), drawstyle="steps-post",
                    color=colour, ls=ls, label=label)
            ax.scatter(g["trial"], g["valid_auc"], color=colour, s=12, alpha=0.6, zorder=3)  # each trial's own
        ax.set(title=f"{dataset}, {setting_name(dataset, ratio)}", xlabel="trial",
               ylabel="validation AUC (dots: each trial;\nline: best so far)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    legend_below(fig, axes)
    save(fig, out, "hparam_search", written)


def fig_xray_data(dataset, args, written, notes):
    """Figure 1: mean training image per site (view), and mean(positive) - mean(negative) with the
    site-label correlation (first ratio) and without it (second ratio), from the images on disk."""
    if args.xray_data is None:
        notes.append(f"skip: data_{dataset} (Figure 1): pass --xray-data FLAGS to read the training images")
        return
    parser = argparse.ArgumentParser()
    datasets.add_arguments(parser)
    site_means, diffs = None, []
    for ratio in SHIFT_RATIOS[dataset]:
        try:
            dargs = parser.parse_args(["--dataset", dataset, "--ratio", str(ratio)] + shlex.split(args.xray_data))
            dargs.batch_size = 16
            cohort, train_split = xray.xray_cohort(dargs)[2], datasets.load(dargs)["train"]
        except datasets.DataError as e:
            notes.append(f"skip: data_{dataset} (Figure 1): {e}")
            return
        except SystemExit:  # argparse has printed why
            notes.append(f"skip: data_{dataset} (Figure 1): datasets.py rejects --xray-data {args.xray_data!r}")
            return
        if not np.array_equal(getattr(train_split, "rows", None), cohort.splits["train"]):
            notes.append(f"skip: data_{dataset} (Figure 1): the loaded split is not the cohort's (images left out?)")
            return
        site = cohort.table["site"].to_numpy()[cohort.splits["train"]]
        sums, counts, start = 0.0, np.zeros((2, 2)), 0
        for x, y, _ in train_split.batches(64):  # in row order, so site[start:...] belongs to this batch
            onehot = np.zeros((len(y), 2, 2))
            onehot[np.arange(len(y)), site[start:start + len(y)], y.numpy()] = 1
            sums = sums + np.einsum("bsc,bhw->schw", onehot, x[:, 0].numpy())
            counts += onehot.sum(0)
            start += len(y)
        if site_means is None:
            site_means = sums.sum(1) / counts.sum(1)[:, None, None]
        diffs.append(sums[:, 1].sum(0) / counts[:, 1].sum() - sums[:, 0].sum(0) / counts[:, 0].sum())
    fig, axes = plt.subplots(1, 4, figsize=(TEXT_WIDTH, 2.0), layout="constrained")
    for ax, mean, site in zip(axes, site_means, xray.SITES[dataset]):
        ax.imshow(mean, cmap="gray")
        ax.set_title(f"mean {site} image")
    lim = max(np.abs(d).max() for d in diffs) or 1.0
    for ax, diff, ratio in zip(axes[2:], diffs, SHIFT_RATIOS[dataset]):
        im = ax.imshow(diff, cmap="PuOr", vmin=-lim, vmax=lim)
        ax.set_title(f"positive − negative,\n{setting_name(dataset, ratio)}")
    for ax in axes:
        ax.set_axis_off()
    fig.colorbar(im, ax=axes[2:], shrink=0.8, label="mean difference")
    save(fig, args.out, f"data_{dataset}", written)


def fig_synthetic_data(out, written):
    """Figure 3: two images of each class from train and valid; the confounder box outlined."""
    splits = datasets.load_synthetic(data_seed=0, ratio=1.0, n_train=32)
    fig, axes = plt.subplots(2, 4, figsize=(TEXT_WIDTH * 0.75, 3.2), layout="constrained")
    rows, cols = datasets.BOX_ROWS, datasets.BOX_COLS
    for row, name in zip(axes, ("train", "valid")):
        split = splits[name]
        y = split.y.numpy()
        picks = [np.flatnonzero(y == cls)[k] for cls in (0, 1) for k in (0, 1)]
        for ax, i in zip(row, picks):
            img = split.x[i, 0].numpy()
            ax.imshow(img, cmap="gray")
            ax.contour(split.mask[i, 0].numpy(), levels=[0.5], colors="#56B4E9", linewidths=0.8)
            side = "right" if img[rows, cols["right"]].all() else "left"
            ax.add_patch(Rectangle((cols[side].start - 1, rows.start - 1), cols[side].stop - cols[side].start + 1,
                                   rows.stop - rows.start + 1, fill=False, edgecolor="#E69F00", lw=1.5))
            ax.set_title(f"class {y[i]} ({y[i] + 1} cross{'es' if y[i] == 1 else ''})")
            ax.set(xticks=[], yticks=[])
        row[0].set_ylabel(name)
    fig.supxlabel("orange: the confounder box (it changes side between train and valid); blue: expert mask",
                  fontsize=7)
    save(fig, out, "data_synthetic", written)


# ------------------------------------------------------------------ main

RESULTS_CAPTION = (
    "{dataset}: test AUC at the epoch of lowest loss on the reversed (shifted) valid split (the paper's rule; "
    "the other two rules are in the next table); IoU of the {saliency} saliency map's top-k pixels (k = the "
    "mask's size) with the expert mask on the positive test images; and that IoU through the same architecture "
    "freshly initialised (untrained). Mean ± std over seeds (n runs); epochs before the burn-in are never "
    "selected. Bold: beats Classification and > 0.5. Chance: AUC 0.5; IoU the mean over the setting's runs of "
    "all methods of each run's expected IoU of a uniformly random top-k map, which depends only on the masks' "
    "and images' sizes, so it is one level for every method, varying between runs only with their test images.")
XRAY_CAPTION = (
    "{dataset}, {scoring}: test AUC at the epoch of lowest loss on the reversed (shifted) valid split (the paper's "
    "rule); then, for each saliency method scored, IoU and IoT of the map's top-k pixels (k = the mask's size) "
    "with the expert mask on the positive test images (IoP equals IoT: top-k keeps |A| = |B|), saliency scored "
    "on test images of {size} px; and the untrained network's IoU. Mean ± std over seeds (n runs). Bold: beats "
    "Classification and > 0.5. Chance: a uniformly random top-k map's expected IoU.{rows}")
RSNA_ROWS = (" Each method's rows side by side: --empty-mask penalize, the release's (a box-less image counts as "
             "all outside its mask), and skip, our correction (no penalty, never masked).")
RULES_CAPTION = (
    "{dataset}: test AUC at the epoch each rule selects: lowest loss or highest AUC on the reversed valid split "
    "(the test distribution: oracle selection), or lowest loss on the in-distribution valid_id split (honest: "
    "no shifted data). Δ: mean ± std over seeds of the method's test AUC minus Classification's on the same "
    "seed (same data), with the two-sided paired t-test's p over those seeds (uncorrected for the many "
    "comparisons; no p when every seed gives the same difference). Bold: p < 0.05, ahead of Classification (+) or "
    "behind it (-).")


def main(args):
    runs, epochs, cascade, trials, n_diverged = load(args)
    os.makedirs(args.out, exist_ok=True)
    notes, written, md, tex_tables = [], [], [], []
    notes.append(f"excluded {n_diverged} diverged run(s); {len(runs)} run(s) with status=ok")
    corr = correlations(runs, notes)
    precision_notes(runs, notes)
    for dataset in sorted(set(runs["dataset"]) | set(trials["dataset"])):
        has_runs = (runs["dataset"] == dataset).any()
        xray_tables = dataset in SHIFT_RATIOS
        if xray_tables:  # one table per scoring, each with IoU and IoT of every saliency method
            sizes = runs.loc[runs["dataset"] == dataset, "score_size"].dropna().unique()
            size = "/".join(str(int(v)) for v in sorted(sizes)) or "(unrecorded)"
            rows = RSNA_ROWS if dataset == "rsna" else ""
            tables = [(dataset if scoring == "all" else f"{dataset}: the release's scoring",
                       has_runs and xray_table(runs, dataset, notes, scoring, args.saliency),
                       XRAY_CAPTION.format(dataset=dataset, scoring=SCORINGS[scoring], size=size, rows=rows))
                      for scoring in SCORINGS]
        else:
            tables = [(dataset, has_runs and results_table(runs, dataset, notes), RESULTS_CAPTION)]
        tables.append((f"{dataset}: the three selection rules", has_runs and rules_table(runs, dataset), RULES_CAPTION))
        for heading, table, caption in tables:
            if table:
                caption = caption.format(dataset=dataset, saliency=args.saliency or "last scored")
                note = [paper_iou_note(dataset), ""] if dataset in PAPER_IOU_MATCHES and "rules" not in heading else []
                md += [f"## {heading}", "", caption, "", markdown(*table), ""] + note
                tex_tables.append(latex(*table, " ".join([caption] + note[:1])))
        ratios = settings(runs, dataset, [], "figure")
        if ratios:
            fig_valid_auc(runs, epochs, dataset, ratios, args.out, written, notes)
            fig_auc_vs_iou(runs, dataset, ratios, corr, args.out, written, notes)
            if len(ratios) > 1:
                fig_auc_vs_ratio(runs, dataset, ratios, args.out, written)
            else:
                notes.append(f"skip: auc_vs_ratio_{dataset}: one ratio ({fmt_ratio(ratios[0])})")
            for ratio in ratios:
                if not xray_tables:  # the X-ray datasets' maps are Figures 6-7, both ratios in one figure
                    fig_saliency(runs, dataset, ratio, args, written, notes)
                fig_cascade(runs, cascade, dataset, ratio, args.out, written, notes)
        if xray_tables and has_runs:
            for empty in sorted({e for _, e in table_keys(runs, dataset, SHIFT_RATIOS[dataset])},
                                key=lambda e: (e is not None and e != "penalize", e or "")):
                fig_xray_maps(runs, dataset, args, written, notes, empty)
        if dataset == "synthetic":
            fig_synthetic_data(args.out, written)
        elif dataset in SHIFT_RATIOS:
            fig_xray_data(dataset, args, written, notes)
    fig_sweep(trials, args.out, written, notes)
    fig_auc_vs_localisation(runs, args.out, written, notes)
    if corr:
        md += ["## Test AUC vs IoU (all methods pooled, one point per run)", "",
               "Within-setting r: the same Pearson r after subtracting each setting's mean AUC and mean IoU "
               "(does a seed with a better IoU than its method's other seeds generalise better?), t-test "
               "with n - settings - 1 degrees of freedom.", "", correlation_table(corr), ""]
    for dataset, ratio, path in args.paper:
        md += [f"## {dataset} ratio {ratio}: compared with the paper's per-seed results", "",
               f"Authors' per-seed values from `{path}`, column for column (our IoU with theirs, our IoT with "
               f"theirs); p-values of Welch's t-test and the Mann-Whitney U test (two-sided) of ours against "
               f"theirs." + (" Ours: the --empty-mask penalize runs, as the authors trained, where there are any."
                             if dataset == "rsna" else ""), "", paper_comparison(runs, dataset, ratio, path), ""]
        md += [paper_iou_note(dataset), ""] if dataset in PAPER_IOU_MATCHES else []
    md += ["## Notes", ""] + [f"- {n}" for n in notes]
    text = "\n".join(md) + "\n"
    with open(os.path.join(args.out, "tables.md"), "w") as f:
        f.write(text)
    written.append(os.path.join(args.out, "tables.md"))
    if args.latex:
        with open(os.path.join(args.out, "tables.tex"), "w") as f:
            f.write("% needs \\usepackage{booktabs}\n" + "\n\n".join(tex_tables) + "\n")
        written.append(os.path.join(args.out, "tables.tex"))
    print(text)
    print("wrote:\n" + "\n".join(f"  {p}" for p in written))
    return written


def cli(argv=None):
    """Command-line entry: 0 when done (skips included), 2 with one line when the CSV cannot be used."""
    args = parse_args(argv)
    try:
        main(args)
    except results.ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
