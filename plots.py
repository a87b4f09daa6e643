"""Every table and figure of the paper, and the AUC-saliency correlation, from the results CSV.

    python plots.py [--results results/results.csv] [--out figures/] [--latex]

The only module that aggregates results. It reads the shared results CSV (and
the ``saliency.npz`` files its rows point to) into one row per run
(collect.py), prints the tables as markdown, writes them to
``<out>/tables.md`` (and ``tables.tex`` with ``--latex``), and writes each
figure (figures.py) as PNG and PDF. Whatever cannot be drawn from the rows
present is skipped with a one-line reason ("skip: ...").

Only ``status=ok`` runs enter tables and figures; the notes count the others
(diverged, out of memory) apart. Table cells are mean ± sample std (ddof=1)
over seeds, with the count. Per dataset, the ratios sit side by side in two
tables:

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

The pictures of the data (the paper's Figures 1 and 3) come from the images, not
from results: ``python datasets.py --figure DIR [--dataset xray ...]`` writes
``data_<dataset>.png`` and ``.pdf``. Nothing here imports torch.
"""
import argparse
import itertools
import os
import sys
import warnings

import numpy as np
import pandas as pd
from scipy import stats

import errors
import figures
import protocol
import results
from collect import (LABELS, PAPER_IOU, SCORINGS, SELECTION, SHIFT_RATIOS, VARIANTS, at, fmt_ratio, load,
                     per_method, present, setting_name, settings)

GROUPS = {"baseline": "Baseline", "masked": "Baseline", "masked_zero": "Baseline", "actdiff": "Domain invariance",
          "adversarial": "Domain invariance", "gradmask": "Saliency based", "rrr": "Saliency based"}
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
N_BOOT = 2000
PAPER_NAMES = {"masked (zero fill)": "masked_zero"}  # the authors' method names -> our table rows


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                epilog="The figures of the data (data_<dataset>.png) are datasets.py's: "
                                       "python datasets.py --figure DIR [--dataset ...].")
    p.add_argument("--results", default=os.path.join("results", "results.csv"), help="the shared results CSV")
    p.add_argument("--out", default="figures", help="directory for tables.md, tables.tex and the figures")
    p.add_argument("--latex", action="store_true", help="also write the tables as LaTeX (tables.tex)")
    p.add_argument("--dataset", nargs="+", help="only these datasets")
    p.add_argument("--method", nargs="+", choices=list(protocol.METHODS), help="only these methods")
    p.add_argument("--kind", choices=("seeds", "trials", "all"), default="seeds",
                   help="which finished runs the tables and the AUC/IoU figures use: 'seeds' (default) = runs "
                        "without a trial number, i.e. single train.py runs and a sweep's final seed runs; "
                        "'trials' = only a sweep's search trials; 'all' = both. The hyperparameter-search "
                        "figure always uses the trials.")
    p.add_argument("--sweep-id", help="only rows tagged with this sweep_id (e.g. one sweep's seed runs)")
    p.add_argument("--saliency", default="grad",
                   help="the saliency method whose IoU the tables and figures use: grad (the paper's, default), "
                        "ig or occlusion (rows that saliency.py --run DIR --saliency M added)")
    p.add_argument("--paper", nargs=3, action="append", default=[], metavar=("DATASET", "RATIO", "CSV"),
                   help="compare with the authors' per-seed results for that setting, e.g. synthetic 1.0 "
                        "../shared/paper-results/synth_per_seed.csv (repeatable)")
    return p.parse_args(argv)


def excluded_note(excluded, n_ok):
    """The note on the runs left out: diverged (train.py stopped on a non-finite loss) and out of memory
    (status=oom: no epoch was ever selected) counted apart, then any other status by name."""
    said = [f"{excluded.get('diverged', 0)} diverged run(s)"]
    said += [f"{excluded['oom']} out of memory (status=oom)"] if excluded.get("oom") else []
    said += [f"{n} with status={status or '(blank)'}" for status, n in sorted(excluded.items())
             if status not in ("diverged", "oom")]
    return f"excluded {', '.join(said)}; {n_ok} run(s) with status=ok"


# ------------------------------------------------------------------ tables

def cell(values, bold=False):
    """(text, bold) for one table cell: 'mean ± std (n=k)' over the non-missing values."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(float)
    if len(v) == 0:
        return "–", False
    spread = f" ± {v.std(ddof=1):.2f}" if len(v) > 1 else ""
    return f"{v.mean():.2f}{spread} (n={len(v)})", bold


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


# ------------------------------------------------------------------ the authors' per-seed results

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
    runs, epochs, cascade, trials, excluded = load(args)
    os.makedirs(args.out, exist_ok=True)
    notes, written, md, tex_tables = [], [], [], []
    notes.append(excluded_note(excluded, len(runs)))
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
            figures.fig_valid_auc(runs, epochs, dataset, ratios, args.out, written, notes)
            figures.fig_auc_vs_iou(runs, dataset, ratios, corr, args.out, written, notes)
            if len(ratios) > 1:
                figures.fig_auc_vs_ratio(runs, dataset, ratios, args.out, written)
            else:
                notes.append(f"skip: auc_vs_ratio_{dataset}: one ratio ({fmt_ratio(ratios[0])})")
            for ratio in ratios:
                if not xray_tables:  # the X-ray datasets' maps are Figures 6-7, both ratios in one figure
                    figures.fig_saliency(runs, dataset, ratio, args, written, notes)
                figures.fig_cascade(runs, cascade, dataset, ratio, args.out, written, notes)
        if xray_tables and has_runs:
            for empty in sorted({e for _, e in table_keys(runs, dataset, SHIFT_RATIOS[dataset])},
                                key=lambda e: (e is not None and e != "penalize", e or "")):
                figures.fig_xray_maps(runs, dataset, args, written, notes, empty)
    figures.fig_sweep(trials, args.out, written, notes)
    figures.fig_auc_vs_localisation(runs, args.out, written, notes)
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
    except errors.UsageError as e:
        return errors.report(e)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
