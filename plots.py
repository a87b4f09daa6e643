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
``--saliency`` method) that has one. Table cells are mean ± sample std
(ddof=1) over seeds, with the count; an AUC cell is bold when its mean beats
the Classification baseline's in the same column and is above chance (0.5).
Each setting has three test-AUC columns, one per rule for selecting the epoch
(all three ignore the epochs before the run's ``burn_in``, as train.py does):
the lowest validation loss (the paper's rule; the ``final`` row), the highest
validation AUC (first on ties), both on the reversed validation split, i.e. on
the test distribution (DomainBed's "oracle" selection), and the lowest loss on
the in-distribution ``valid_id`` split, the rule available without a shifted
split. The second and third are re-selected from the run's ``epoch`` rows.
"""
import argparse
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
NUMERIC = ["seed", "ratio", "trial", "epoch", "epochs", "burn_in", "valid_loss", "valid_auc", "valid_id_loss",
           "test_auc", "iou", "iop", "iot", "n_scored", "n_empty_masks", "selected_epoch"]
# The selection rules of the AUC columns beyond the final row's own (lowest valid loss):
# results column -> (epoch-row column, pick the highest?, table header).
RULES = {"test_auc_by_valid_auc": ("valid_auc", True, "AUC, max-valid-AUC epoch"),
         "test_auc_by_valid_id_loss": ("valid_id_loss", False, "AUC, min-valid_id-loss epoch")}
SALIENCY_COLUMNS = ["saliency", "iou", "iop", "iot", "n_scored", "n_empty_masks"]
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
    """(runs, epochs, trials, n_diverged) from the CSV, filtered; ResultsError when there is nothing."""
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
    if finals.empty:
        raise results.ResultsError(f"--results {args.results}: no finished runs (kind=final) match the filters")
    scored = df[df["kind"].isin(["final", "saliency"]) & df["iou"].notna()]
    if args.saliency:
        scored = scored[scored["saliency"] == args.saliency]
    scored = scored.drop_duplicates("run_id", keep="last")[["run_id"] + SALIENCY_COLUMNS]
    finals = finals.drop(columns=SALIENCY_COLUMNS).merge(scored, on="run_id", how="left")
    # Every method's IoU in its own column too (iou_grad, iou_ig, iou_occlusion: the last row of each), for --paper.
    each = df[df["kind"].isin(["final", "saliency"]) & df["iou"].notna() & df["saliency"].isin(list(PAPER_IOU))]
    each = each.drop_duplicates(["run_id", "saliency"], keep="last").pivot(index="run_id", columns="saliency",
                                                                          values="iou")
    finals = finals.join(each.reindex(columns=list(PAPER_IOU)).add_prefix("iou_"), on="run_id")
    trials = finals[finals["trial"].notna()]
    runs = {"seeds": finals[finals["trial"].isna()], "trials": trials, "all": finals}[args.kind]
    n_diverged = int((runs["status"] != "ok").sum())
    runs = runs[runs["status"] == "ok"].copy()
    epochs = df[(df["kind"] == "epoch") & df["run_id"].isin(runs["run_id"])]
    for name, (column, highest, _) in RULES.items():
        runs[name] = runs["run_id"].map(select_epoch(epochs, column, highest))
    return runs, epochs, trials, n_diverged


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


def at(frame, dataset, ratio, variant=None):
    sel = (frame["dataset"] == dataset) & np.isclose(frame["ratio"], ratio)
    return frame[sel & (frame["variant"] == variant)] if variant else frame[sel]


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


def results_table(runs, dataset, notes):
    """Table 1/2 for one dataset: (header, rows); each row is [group, method, (text, bold), ...]."""
    ratios = settings(runs, dataset, notes, "table column group")
    if not ratios:
        return None
    header = ["group", "method"]
    for r in ratios:
        name = setting_name(dataset, r)
        header += [f"{name} AUC", *(f"{name} {title}" for _, _, title in RULES.values()), f"{name} IoU"]
    body, last_group = [], None
    for v in VARIANTS:
        if not any(len(at(runs, dataset, r, v)) for r in ratios):
            continue
        group = GROUPS.get(v, "Other")
        row = [group if group != last_group else "", LABELS.get(v, v)]
        last_group = group
        for r in ratios:
            sel, base = at(runs, dataset, r, v), at(runs, dataset, r, "baseline")
            for col in ("test_auc", *RULES):
                mean, base_mean = sel[col].mean(), base[col].mean()
                row.append(cell(sel[col], v != "baseline" and mean > base_mean and mean > 0.5))
            row.append(cell(sel["iou"]))
        body.append(row)
    return header, body


def markdown(header, body):
    text = lambda c: c if isinstance(c, str) else (f"**{c[0]}**" if c[1] else c[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(text(c) for c in row) + " |" for row in body])


def latex(header, body, caption):
    def text(c):
        if isinstance(c, str):
            return c
        s = c[0].replace("±", r"$\pm$").replace("–", "--")
        return rf"\textbf{{{s}}}" if c[1] else s
    width = 2 + len(RULES)  # columns per setting: AUC, one per extra selection rule, IoU
    groups = [h.rsplit(" ", 1)[0] for h in header[2::width]]
    marks = "".join(rf" & AUC$^{{{m}}}$" for m in (r"\dagger", r"\ddagger", "*", "**")[:len(RULES)])
    lines = [r"\begin{table}[t]", r"\centering\small", rf"\caption{{{caption}}}",
             r"\begin{tabular}{ll" + "c" * width * len(groups) + "}", r"\toprule",
             " & & " + " & ".join(rf"\multicolumn{{{width}}}{{c}}{{{g}}}" for g in groups) + r" \\",
             "Group & Method" + (" & AUC" + marks + " & IoU") * len(groups) + r" \\", r"\midrule"]
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


def correlations(runs, notes):
    """{(dataset, ratio): correlation dict} over every run (all methods pooled) with an AUC and an IoU."""
    out = {}
    for (dataset, ratio), g in runs.dropna(subset=["test_auc", "iou"]).groupby(["dataset", "ratio"]):
        if len(g) < 3 or g["test_auc"].nunique() < 2 or g["iou"].nunique() < 2:
            notes.append(f"skip: AUC-IoU correlation, {dataset} ratio {fmt_ratio(ratio)}: needs >= 3 runs with "
                         f"varying AUC and IoU, has {len(g)}")
            continue
        out[dataset, ratio] = correlation(g["test_auc"], g["iou"])
    return out


def correlation_table(corr):
    rows = [[d, fmt_ratio(r), str(c["n"]), f"{c['r']:.3f}", f"{c['p']:.3g}", f"[{c['lo']:.3f}, {c['hi']:.3f}]",
             f"{c['rho']:.3f}", f"{c['p_rho']:.3g}"]
            for (d, r), c in sorted(corr.items(), key=lambda item: (item[0][0], -item[0][1]))]
    return markdown(["dataset", "ratio", "n", "Pearson r", "p", f"95% CI of r (bootstrap, {N_BOOT})",
                     "Spearman ρ", "p"], rows)


PAPER_NAMES = {"masked (zero fill)": "masked_zero"}  # the authors' method names -> our table rows
# Our saliency methods -> the authors' IoU columns; load() puts ours in iou_<method>.
PAPER_IOU = {"grad": "iou_grad", "ig": "iou_ig", "occlusion": "iou_occlude"}


def ours_vs_paper(mine, theirs):
    """[ours, paper, 'Welch p / MWU p'] cells; p is '–' unless both sides have >= 2 values, not all equal."""
    mine, theirs = (np.asarray([] if v is None else v.dropna(), float) for v in (mine, theirs))
    if len(mine) > 1 and len(theirs) > 1 and np.ptp(np.r_[mine, theirs]) > 0:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # near-identical samples: p is still right
            t = stats.ttest_ind(mine, theirs, equal_var=False).pvalue
        p = f"{t:.2g} / {stats.mannwhitneyu(mine, theirs).pvalue:.2g}"
    else:
        p = "–"
    return [cell(mine)[0], cell(theirs)[0], p]


def paper_comparison(runs, dataset, ratio, path):
    """Ours vs the authors' per-seed test AUC and IoU under each saliency method, with Welch's t-test and MWU.

    Four rows per method: test AUC, then IoU with grad, ig and occlusion (the
    authors' "occlude"). Our IoU for a saliency method is the last final or
    saliency row of the run scored with it. Each side's cell shows its n; a
    side without values is "–", and so is p unless both sides have two or
    more. IoU columns missing from the authors' file count as no values.
    """
    try:
        paper = pd.read_csv(path)
        paper["variant"] = paper["method"].replace(PAPER_NAMES)
        paper["test_auc"]
    except (OSError, KeyError, pd.errors.ParserError) as e:
        raise results.ResultsError(f"--paper {path}: not a per-seed results file ({e})")
    ours = at(runs, dataset, float(ratio))
    measures = [("test AUC", "test_auc", "test_auc")] + [(f"IoU, {m}", f"iou_{m}", col) for m, col in PAPER_IOU.items()]
    body = []
    for v in VARIANTS:
        a, b = ours[ours["variant"] == v], paper[paper["variant"] == v]
        if a.empty and b.empty:
            continue
        for i, (name, mine, theirs) in enumerate(measures):
            body.append([LABELS.get(v, v) if i == 0 else "", name] + ours_vs_paper(a.get(mine), b.get(theirs)))
    return markdown(["method", "measure", "ours", "paper", "p (Welch / MWU)"], body)


# ------------------------------------------------------------------ figures

def save(fig, out, name, written):
    for ext in ("png", "pdf"):
        path = os.path.join(out, f"{name}.{ext}")
        fig.savefig(path, dpi=200, bbox_inches="tight")
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
    mask = np.mean(masks, 0)
    overlay = np.zeros(mask.shape + (4,))
    overlay[..., 0] = 1.0
    overlay[..., 3] = 0.6 * mask / max(mask.max(), 1e-12)
    axes[0].imshow(np.mean(inputs, 0), cmap="gray")
    axes[0].imshow(overlay)
    axes[0].set_title("mean input,\nmask in red")
    for ax, (v, ms) in zip(axes[1:], maps.items()):
        m = np.mean(ms, 0)
        im = ax.imshow(m / max(m.max(), 1e-12), cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"{LABELS.get(v, v)}\n(n={len(ms)} runs)")
    for ax in axes:
        ax.set_axis_off()
    fig.colorbar(im, ax=list(axes), shrink=0.75, label="|saliency| / panel max")
    save(fig, args.out, name, written)


def fig_auc_vs_iou(runs, dataset, ratios, corr, out, written, notes):
    """Figure 8: test AUC against test IoU, one point per run, with the correlation in each title."""
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
        c = corr.get((dataset, ratio))
        stat = (f"\nr = {c['r']:.2f} (p = {c['p']:.2g}), 95% CI [{c['lo']:.2f}, {c['hi']:.2f}]"
                f"\nρ = {c['rho']:.2f} (p = {c['p_rho']:.2g}), n = {c['n']}") if c else "\n(too few runs)"
        ax.set(title=f"{dataset}, {setting_name(dataset, ratio)}{stat}", xlabel="test IoU", ylabel="test AUC")
    legend_below(fig, axes)
    save(fig, out, f"auc_vs_iou_{dataset}", written)


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
            cohort, train_split = datasets.xray_cohort(dargs)[2], datasets.load(dargs)["train"]
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
    for ax, mean, site in zip(axes, site_means, datasets.SITES[dataset]):
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

def main(args):
    runs, epochs, trials, n_diverged = load(args)
    os.makedirs(args.out, exist_ok=True)
    notes, written, md, tex = [], [], [], []
    notes.append(f"excluded {n_diverged} diverged run(s); {len(runs)} run(s) with status=ok")
    corr = correlations(runs, notes)
    for dataset in sorted(set(runs["dataset"]) | set(trials["dataset"])):
        table = results_table(runs, dataset, notes) if (runs["dataset"] == dataset).any() else None
        if table:
            caption = (f"{dataset}: test AUC at the epoch of lowest valid loss, at the epoch of highest valid "
                       f"AUC (both on the reversed, shifted valid split), at the epoch of lowest in-distribution "
                       f"valid_id loss, and IoU; mean ± std over seeds (n runs); epochs before the burn-in "
                       f"are never selected. Bold: beats Classification and > 0.5.")
            md += [f"## {dataset}", "", caption, "", markdown(*table), ""]
            tex.append(latex(*table, caption.replace("±", r"$\pm$").replace("> 0.5", "$>$ 0.5")
                                          .replace("valid_id", r"valid\_id")
                                          .replace("highest valid AUC", r"highest valid AUC ($\dagger$)")
                                          .replace("valid\_id loss", r"valid\_id loss ($\ddagger$)")))
        ratios = settings(runs, dataset, [], "figure")
        if ratios:
            fig_valid_auc(runs, epochs, dataset, ratios, args.out, written, notes)
            fig_auc_vs_iou(runs, dataset, ratios, corr, args.out, written, notes)
            for ratio in ratios:
                fig_saliency(runs, dataset, ratio, args, written, notes)
        if dataset == "synthetic":
            fig_synthetic_data(args.out, written)
        elif dataset in SHIFT_RATIOS:
            fig_xray_data(dataset, args, written, notes)
    fig_sweep(trials, args.out, written, notes)
    if corr:
        md += ["## Test AUC vs IoU (all methods pooled, one point per run)", "", correlation_table(corr), ""]
    for dataset, ratio, path in args.paper:
        md += [f"## {dataset} ratio {ratio}: compared with the paper's per-seed results", "",
               f"Authors' per-seed values from `{path}`; p-values of Welch's t-test and the Mann-Whitney U "
               f"test (two-sided) of ours against theirs.", "", paper_comparison(runs, dataset, ratio, path), ""]
    md += ["## Notes", ""] + [f"- {n}" for n in notes]
    text = "\n".join(md) + "\n"
    with open(os.path.join(args.out, "tables.md"), "w") as f:
        f.write(text)
    written.append(os.path.join(args.out, "tables.md"))
    if args.latex:
        with open(os.path.join(args.out, "tables.tex"), "w") as f:
            f.write("% needs \\usepackage{booktabs}\n" + "\n\n".join(tex) + "\n")
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
