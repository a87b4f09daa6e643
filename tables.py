"""The tables of tables.md, as (header, rows), and their markdown and LaTeX; torch-free.

Table cells are mean ± sample std (ddof=1) over seeds, with the count. Per
dataset, the ratios sit side by side in two tables:

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
none without).

`comparison` sets one setting's runs beside the authors' per-seed IoU and IoT,
column for column (plots.py --paper), and beside another results file of ours,
seed by seed (plots.py --beside).
"""
import itertools
import warnings

import numpy as np
import pandas as pd
from scipy import stats

import results
from collect import (LABELS, PAPER_IOU, SELECTION, SHIFT_RATIOS, VARIANTS, at, per_method, present, setting_name,
                     settings)

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

PAPER_NAMES = {"masked (zero fill)": "masked_zero"}  # the authors' method names -> our table rows


# ------------------------------------------------------------------ the tables

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


# ------------------------------------------------------------------ markdown and LaTeX

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



# ------------------------------------------------------------------ ours beside other per-seed results

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


def read_paper(path):
    """The authors' per-seed results file, its method names mapped to our table rows; ResultsError when the
    file cannot be read or has no test_auc column."""
    try:
        paper = pd.read_csv(path)
        paper["variant"] = paper["method"].replace(PAPER_NAMES)
        paper["test_auc"]
    except (OSError, KeyError, pd.errors.ParserError) as e:
        raise results.ResultsError(f"--paper {path}: not a per-seed results file ({e})")
    return paper


def comparison(runs, dataset, ratio, paper=None, beside=()):
    """Our runs of one setting beside other per-seed results, column for column: the authors' (`paper`, their
    per-seed file read by `read_paper`) and other results files of ours (`beside`: (label, runs) pairs, runs as
    collect.load reads them).

    Seven rows per method: test AUC, then IoU and IoT with grad, ig and
    occlusion (the authors' "occlude"). Our scores for a saliency method are
    the last final or saliency row of the run scored with it on every
    positive. Against the paper: its values and the p of Welch's t-test and
    of the Mann-Whitney U test (two-sided), and where our runs were also
    scored on the release's subset (the authors' own scoring), two more
    columns compare those. Against each file beside: its values and
    `paired_difference` of ours minus its, seed by seed (a pairing that
    means something where a seed drew the same data and initial network in
    both, as within one version of the data generator). On rsna, ours and theirs are
    the --empty-mask penalize runs (the authors') where there are any. A side
    without values is "–", and so is p unless both sides have two or more;
    columns missing from the authors' file count as no values.
    """
    def setting(frame):
        frame = at(frame, dataset, float(ratio))
        penalize = frame["empty_mask"] == "penalize"
        return frame[penalize] if dataset == "rsna" and penalize.any() else frame
    ours, beside = setting(runs), [(label, setting(frame)) for label, frame in beside]
    measures = [("test AUC", "test_auc", "test_auc")] + [
        (f"{name}, {m}", measure, col.replace("iou_", f"{measure}_")) for m, col in PAPER_IOU.items()
        for name, measure in (("IoU", "iou"), ("IoT", "iot"))]
    release = paper is not None and any(ours[per_method("iou", m, "release")].notna().any() for m in PAPER_IOU)
    body = []
    for v in VARIANTS:
        a = ours[ours["variant"] == v]
        b = paper[paper["variant"] == v] if paper is not None else a.iloc[:0]
        others = [frame[frame["variant"] == v] for _, frame in beside]
        if a.empty and b.empty and all(o.empty for o in others):
            continue
        for i, (name, measure, theirs) in enumerate(measures):
            method = name.split(", ")[-1]
            column = lambda scoring: "test_auc" if measure == "test_auc" else per_method(measure, method, scoring)
            cells = [cell(a[column("all")])[0]]
            if paper is not None:
                cells += ours_vs_paper(a[column("all")], b.get(theirs))[1:]
                if release:
                    mine = ours_vs_paper(a[column("release")], b.get(theirs))
                    cells += [mine[0], mine[2]]
            for o in others:
                cells += [cell(o[column("all")])[0], paired_difference(a, o, column("all"))[0]]
            body.append([LABELS.get(v, v) if i == 0 else "", name] + cells)
    header = ["method", "measure", "ours"]
    header += ["paper", "p (Welch / MWU)"] if paper is not None else []
    header += ["ours, the release's 50 positives", "p (Welch / MWU), release"] if release else []
    for label, _ in beside:
        header += [label, f"ours − {label}, by seed"]
    return markdown(header, body)


# ------------------------------------------------------------------ captions

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

