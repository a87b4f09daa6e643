"""Every table and figure of the paper, and the AUC-saliency correlation, from the results CSV.

    python plots.py [--results results/results.csv] [--out figures/] [--latex]

The only module that aggregates results. It reads the shared results CSV (and
the ``saliency.npz`` files its rows point to) into one row per run
(collect.py), prints the tables as markdown, writes them to
``<out>/tables.md`` (and ``tables.tex`` with ``--latex``), and writes each
figure (figures.py) as PNG and PDF. Whatever cannot be drawn from the rows
present is skipped with a one-line reason ("skip: ...").

Only ``status=ok`` runs enter tables and figures; the notes count the others
(diverged, out of memory) apart. What each table holds is tables.py's
docstring; here are the command line, the AUC-IoU correlation and the order
in which everything is written. With --paper, a setting's runs sit beside the
authors' per-seed results; with --beside, beside another results file of ours
(say, the same seeds trained for fewer epochs), seed by seed.

The pictures of the data (the paper's Figures 1 and 3) come from the images, not
from results: ``python datasets.py --figure DIR [--dataset xray ...]`` writes
``data_<dataset>.png`` and ``.pdf``. Nothing here imports torch.
"""
import argparse
import os
import sys

import numpy as np
import pandas as pd
from scipy import stats

import errors
import figures
import protocol
import results
import tables
from collect import SCORINGS, SHIFT_RATIOS, at, fmt_ratio, load, settings
from tables import PAPER_IOU_MATCHES, markdown, paper_iou_note

N_BOOT = 2000


def parse_args(argv=None):
    p = errors.ArgumentParser(prog="plots.py", description=__doc__.split("\n")[0],
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
    p.add_argument("--beside", nargs=2, action="append", default=[], metavar=("LABEL", "CSV"),
                   help="compare, seed by seed, with another results CSV of ours wherever both have a setting, "
                        "e.g. '20 epochs' results/synthetic/results.csv (repeatable)")
    args = p.parse_args(argv)
    args.drawn_by = results.drawn_by("plots.py", argv)
    return args


def excluded_note(excluded, n_ok):
    """The note on the runs left out: diverged (train.py stopped on a non-finite loss) and out of memory
    (status=oom: no epoch was ever selected) counted apart, then any other status by name."""
    said = [f"{excluded.get('diverged', 0)} diverged run(s)"]
    said += [f"{excluded['oom']} out of memory (status=oom)"] if excluded.get("oom") else []
    said += [f"{n} with status={status or '(blank)'}" for status, n in sorted(excluded.items())
             if status not in ("diverged", "oom")]
    return f"excluded {', '.join(said)}; {n_ok} run(s) with status=ok"


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


# ------------------------------------------------------------------ ours beside other per-seed results

def load_beside(args, label, path):
    """The runs of a results file --beside, read with our filters but not our --sweep-id."""
    try:
        return load(argparse.Namespace(**{**vars(args), "results": path, "sweep_id": None}))[0]
    except results.ResultsError as e:
        raise results.ResultsError(f"--beside {label} {path}: {str(e).split(': ', 1)[-1]}") from None


def paper_settings(args):
    """--paper's (dataset, ratio, path) triples with the ratio as a number; UsageError when it is none."""
    papers = []
    for dataset, ratio, path in args.paper:
        try:
            papers.append((dataset, float(ratio), path))
        except ValueError:
            raise errors.UsageError(f"--paper {dataset} {ratio} {path}: the ratio must be a number, e.g. 1.0")
    return papers


def comparisons(runs, papers, beside, notes):
    """The markdown of every comparison asked for: one table per --paper setting (`paper_settings`), with the
    files --beside too ((label, runs, path) triples), and one per further setting that our runs share with a
    file --beside."""
    wanted = []
    for dataset, ratio, path in papers:
        if at(runs, dataset, ratio).empty:
            notes.append(f"skip: --paper {dataset} {fmt_ratio(ratio)}: no runs of ours at that setting")
        else:
            wanted.append((dataset, ratio, path))
    for _, other, _ in beside:
        for dataset, ratio in sorted(set(zip(runs["dataset"], runs["ratio"])) & set(zip(other["dataset"],
                                                                                            other["ratio"]))):
            if not any(d == dataset and np.isclose(r, ratio) for d, r, _ in wanted):
                wanted.append((dataset, ratio, None))
    md = []
    for dataset, ratio, path in wanted:
        others = [(label, other, p) for label, other, p in beside if len(at(other, dataset, ratio))]
        said = [f"Authors' per-seed values from `{path}`, column for column (our IoU with theirs, our IoT with "
                f"theirs); p-values of Welch's t-test and the Mann-Whitney U test (two-sided) of ours against "
                f"theirs."] if path else []
        said += [f"Beside `{p}` (\"{label}\"): its runs of this setting, and ours minus its seed by seed: mean ± "
                 f"std over the seeds both have, with the two-sided paired t-test's p (pairing assumes that a seed "
                 f"drew the same data and initial network in both files, as it does within one version of the "
                 f"data generator)." for label, _, p in others]
        said += ["Ours: the --empty-mask penalize runs, as the authors trained, where there are any."] \
            if dataset == "rsna" else []
        against = (["the paper's per-seed results"] if path else []) + [label for label, _, _ in others]
        md += [f"## {dataset} ratio {fmt_ratio(ratio)}: compared with {' and with '.join(against)}", "",
               " ".join(said), "",
               tables.comparison(runs, dataset, ratio, tables.read_paper(path) if path else None,
                                 [(label, other) for label, other, _ in others]), ""]
        md += [paper_iou_note(dataset), ""] if dataset in PAPER_IOU_MATCHES else []
    return md


# ------------------------------------------------------------------ main

def main(args):
    papers = paper_settings(args)
    runs, epochs, cascade, trials, excluded = load(args)
    beside = [(label, load_beside(args, label, path), path) for label, path in args.beside]
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
            rows = tables.RSNA_ROWS if dataset == "rsna" else ""
            shown = [(dataset if scoring == "all" else f"{dataset}: the release's scoring",
                      has_runs and tables.xray_table(runs, dataset, notes, scoring, args.saliency),
                      tables.XRAY_CAPTION.format(dataset=dataset, scoring=SCORINGS[scoring], size=size, rows=rows))
                     for scoring in SCORINGS]
        else:
            shown = [(dataset, has_runs and tables.results_table(runs, dataset, notes), tables.RESULTS_CAPTION)]
        shown.append((f"{dataset}: the three selection rules", has_runs and tables.rules_table(runs, dataset),
                      tables.RULES_CAPTION))
        for heading, table, caption in shown:
            if table:
                caption = caption.format(dataset=dataset, saliency=args.saliency or "last scored")
                note = [paper_iou_note(dataset), ""] if dataset in PAPER_IOU_MATCHES and "rules" not in heading else []
                md += [f"## {heading}", "", caption, "", markdown(*table), ""] + note
                tex_tables.append(tables.latex(*table, " ".join([caption] + note[:1])))
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
            for empty in sorted({e for _, e in tables.table_keys(runs, dataset, SHIFT_RATIOS[dataset])},
                                key=lambda e: (e is not None and e != "penalize", e or "")):
                figures.fig_xray_maps(runs, dataset, args, written, notes, empty)
    figures.fig_sweep(trials, args.out, written, notes)
    figures.fig_auc_vs_localisation(runs, args.out, written, notes)
    if corr:
        md += ["## Test AUC vs IoU (all methods pooled, one point per run)", "",
               "Within-setting r: the same Pearson r after subtracting each setting's mean AUC and mean IoU "
               "(does a seed with a better IoU than its method's other seeds generalise better?), t-test "
               "with n - settings - 1 degrees of freedom.", "", correlation_table(corr), ""]
    md += comparisons(runs, papers, beside, notes)
    md += ["## Notes", ""] + [f"- {n}" for n in notes]
    text = "\n".join([args.drawn_by, ""] + md) + "\n"
    results.write_atomic(os.path.join(args.out, "tables.md"), text)
    written.append(os.path.join(args.out, "tables.md"))
    if args.latex:
        tex = f"% {args.drawn_by}\n% needs \\usepackage{{booktabs}}\n" + "\n\n".join(tex_tables) + "\n"
        results.write_atomic(os.path.join(args.out, "tables.tex"), tex)
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
