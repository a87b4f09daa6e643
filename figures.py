"""The figures plots.py draws from the runs (collect.py's rows) and their saliency.npz files; torch-free.

Figures 4 / A.2 (valid_auc_<dataset>): validation AUC per epoch. Figure 5
(saliency_<dataset>_<ratio>): each method's mean saliency map beside the mean
input. Figures 6-7 (saliency_maps_<dataset>): the shifted setting above the
balanced one, the mean input with the mask in red, then one panel per method,
each the mean over seeds of the runs' figure map (saliency.npz's sample_map).
Figure 8 (auc_vs_localisation): test AUC against the column the paper's "IoU"
is, every run with a covariate shift, one panel per dataset, coloured by
approach; and per dataset, test AUC against IoU (auc_vs_iou_<dataset>). A cell
without runs is an empty panel with a note. Figure A.1 (hparam_search): the
best validation AUC per trial of a sweep.

Figures beyond the paper's: test AUC against ratio (with two ratios or more) and
the IoU under cascading randomisation (where saliency.py --cascade wrote rows).

The figure style (ICLR widths, fonts, `save`) is shared with datasets.py's
pictures of the data (``python datasets.py --figure DIR``).
"""
import os
import zipfile

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

import protocol  # noqa: E402
from collect import (LABELS, PAPER_IOU, SELECTION, SHIFT_RATIOS, VARIANTS, at, fmt_ratio, present,  # noqa: E402
                     run_dir, setting_name)

# Okabe-Ito colours (colour-blind safe), plus a line style and marker so print in grey still works.
STYLE = {"baseline": ("#000000", "-", "o"), "masked": ("#E69F00", "-", "s"), "masked_zero": ("#E69F00", "--", "D"),
         "actdiff": ("#56B4E9", "-", "^"), "adversarial": ("#009E73", "-", "v"),
         "gradmask": ("#0072B2", "-", "P"), "rrr": ("#D55E00", "-", "X")}
APPROACHES = {"baseline": "baseline", "masked": "input masking", "masked_zero": "input masking",
              "actdiff": "domain invariance", "adversarial": "domain invariance", "gradmask": "saliency-based",
              "rrr": "saliency-based"}
APPROACH_COLOURS = {"baseline": "#000000", "input masking": "#E69F00", "domain invariance": "#009E73",
                    "saliency-based": "#0072B2"}
# Figure 8: per dataset, the ratio with the covariate shift and the localisation column the paper's "IoU" is.
FIG8 = {"synthetic": (1.0, "iou"), "xray": (0.9, "iot"), "rsna": (0.9, "iot")}
FIG8_NAMES = {"synthetic": "synthetic", "xray": "SPC (xray)", "rsna": "VPC (rsna)"}
plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "legend.fontsize": 7, "pdf.fonttype": 42,
                     "axes.spines.top": False, "axes.spines.right": False})
COLUMN_WIDTH, TEXT_WIDTH = 3.25, 6.75  # inches, ICLR


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


def mask_overlay(mask):
    """An RGBA image of `mask` (H, W) in translucent red, for imshow over an image."""
    overlay = np.zeros(mask.shape + (4,))
    overlay[..., 0] = 1.0
    overlay[..., 3] = 0.6 * mask / max(mask.max(), 1e-12)
    return overlay


def blank(ax, text):
    """An empty panel that says why it is empty."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=6, color="grey")


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
            z = run_npz(row, args, ("mean_map", "mean_input", "mean_mask"), notes)
            if z is not None:
                maps.setdefault(v, []).append(z["mean_map"])
                inputs.append(z["mean_input"])
                masks.append(z["mean_mask"])
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
    skip runs (our correction) are hollow beside the release's penalize runs. A dataset the file has no run of
    is left out (a synthetic-only file draws one panel); one whose runs miss FIG8's ratio is an empty panel, with
    a note."""
    present = [d for d in FIG8 if (runs["dataset"] == d).any()] or list(FIG8)
    fig, axes = panels(len(present), height=2.6)
    for ax, dataset in zip(axes, present):
        ratio, column = FIG8[dataset]
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
    xs = "; ".join(f"{'IoU' if FIG8[d][1] == 'iou' else 'IoT'} on {FIG8_NAMES[d]}" for d in present)
    hollow = "; hollow: rsna --empty-mask skip" if "rsna" in present else ""
    fig.suptitle(f"Test AUC against localisation, every seed with a covariate shift. x: {xs} (the column the "
                 f"paper's \"IoU\" is){hollow}", fontsize=7)
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
        steps = ["trained"] + [c for c in protocol.CASCADE if c in known] + sorted(known - set(protocol.CASCADE))
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
