"""Can saliency diagnose the shortcut? The analysis REPRODUCTION.md fixed before the 100-epoch numbers.

    python diagnosis.py --results results/synthetic-100-epochs/results.csv \
        --out results/synthetic-100-epochs/diagnosis.md

On the synthetic task every model gets a ground-truth label from its AUC
swing, test_auc_train_rule - test_auc (diagnostics.py): it *uses the
shortcut* when the swing is at least SWING (0.5); the amended label also asks
that moving the box move the output by MIN_EFFECT on average (box_effect). Each diagnostic a
practitioner could look at is then asked two things, in two pools of models
(the final models, and the same runs' probes):

    Spearman's rho   with the swing, with box_effect and with test AUC
    AUROC            for telling shortcut models from the others, the diagnostic
                     oriented as SALIENCY_MEASURES and OTHERS declare (0.5 = chance)
    dAUROC           a saliency measure's AUROC minus mask_effect's

each with a 95% interval from a bootstrap that resamples seeds (all of a
seed's models together). Reads only the results CSV: no torch.
"""
import os
import sys

import numpy as np

import errors
import results

SWING = 0.5          # the label's threshold, fixed before the numbers (REPRODUCTION.md says why)
MIN_EFFECT = 0.05    # the amended label's floor on box_effect (REPRODUCTION.md: why, and when it was added)
LABELS = {  # name -> which models use the shortcut; the first is the registered label
    f"swing >= {SWING}": lambda t, idx: t["swing"][idx] >= SWING,
    f"swing >= {SWING} and box_effect >= {MIN_EFFECT}":
        lambda t, idx: (t["swing"][idx] >= SWING) & (t["box_effect"][idx] >= MIN_EFFECT),
}
BOOTSTRAP = 2000     # resamples of the seeds
MIN_CLASS = 5        # fewer models than this in either class: no AUROC
# name -> (column, +1 if a high value points at the shortcut else -1, family). Saliency measures come in one
# version per saliency method; "grad" is the column of the final/probe row itself.
SALIENCY_MEASURES = {"IoU": ("iou", -1), "IoP": ("iop", -1), "IoT": ("iot", -1),
                     "outside mass": ("outside_mass", +1), "box mass": ("box_mass", +1),
                     "pointing": ("pointing", -1)}
OTHERS = {"mask effect": ("mask_effect", +1), "valid_id AUC": ("valid_id_auc", +1),
          "reversed valid loss": ("valid_loss", +1), "reversed valid AUC": ("valid_auc", -1)}
REFERENCE = "mask effect"


def _float(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


def pools(rows):
    """{"final": table, "probe": table}: each a dict column -> array, one entry per model.

    A run is its last final row; its probes are the probe rows with its run_id. IG and
    occlusion versions of the saliency measures come from the run's saliency rows (final pool only).
    """
    finals = {}
    for r in rows:
        if r["kind"] == "final" and r["status"] == "ok" and r["box_effect"] != "":
            finals[r["run_id"]] = r
    extra = {}
    for r in rows:
        if r["kind"] == "saliency" and r["randomized"] == "" and r["saliency"] in ("ig", "occlusion") \
                and r["run_id"] in finals:
            extra.setdefault(r["run_id"], {}).update({f"{col}@{r['saliency']}": r[col] for col, _ in
                                                      SALIENCY_MEASURES.values()})
    probes = [r for r in rows if r["kind"] == "probe" and r["run_id"] in finals and r["box_effect"] != ""]
    columns = ["seed", "method", "mask_fill", "epoch", "test_auc", "test_auc_train_rule", "box_effect"] + \
        [c for c, _ in list(SALIENCY_MEASURES.values()) + list(OTHERS.values())]
    ig_columns = [f"{c}@{m}" for m in ("ig", "occlusion") for c, _ in SALIENCY_MEASURES.values()]

    def table(models, extras):
        t = {c: np.array([_float(m[c]) for m in models]) for c in columns if c not in ("method", "mask_fill")}
        t["setting"] = np.array([m["method"] + ("-zero" if m["mask_fill"] == "zero" and m["method"] == "masked"
                                                else "") for m in models])
        for c in ig_columns if extras else ():
            t[c] = np.array([_float(extra.get(m["run_id"], {}).get(c)) for m in models])
        t["swing"] = t["test_auc_train_rule"] - t["test_auc"]
        return t

    final_rows = sorted(finals.values(), key=lambda r: (int(r["seed"]), r["method"], r["mask_fill"]))
    return {"final": table(final_rows, True), "probe": table(probes, False)}


def diagnostics_of(table):
    """The (name, column, direction, is_saliency) rows compared in this pool."""
    out = [(f"{name} (grad)", col, d, True) for name, (col, d) in SALIENCY_MEASURES.items()]
    for method in ("ig", "occlusion"):
        out += [(f"{name} ({method})", f"{col}@{method}", d, True) for name, (col, d) in SALIENCY_MEASURES.items()
                if np.isfinite(table.get(f"{col}@{method}", np.array([np.nan]))).any()]
    return out + [(name, col, d, False) for name, (col, d) in OTHERS.items()]


def average_ranks(x):
    """1-based ranks of x, ties sharing their mean rank: what Spearman's rho and the Mann-Whitney U rank by.
    Written out rather than scipy.stats.rankdata: the bootstrap ranks ~10^5 short vectors, where scipy's
    per-call checks cost ten times the ranking."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])  # the first position of each tie group
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def auroc(score, label):
    """P(a shortcut model scores above another), ties one half: Mann-Whitney U / (n1 n0). nan if one class."""
    n1 = int(label.sum())
    n0 = len(label) - n1
    if n1 == 0 or n0 == 0:
        return np.nan
    u = average_ranks(score)[label].sum() - n1 * (n1 + 1) / 2
    return u / (n1 * n0)


def spearman(a, b):
    """Spearman's rho over the pairs where both are finite: Pearson's r of their average ranks."""
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3 or np.ptp(a[keep]) == 0 or np.ptp(b[keep]) == 0:
        return np.nan
    ra, rb = average_ranks(a[keep]), average_ranks(b[keep])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float(ra @ rb / np.sqrt((ra @ ra) * (rb @ rb)))


def statistics(table, idx, label_of=LABELS[f"swing >= {SWING}"]):
    """Every statistic of every diagnostic on the models `idx` of `table`: {name: {stat: value}}."""
    label = label_of(table, idx)
    out = {}
    for name, col, direction, _ in diagnostics_of(table):
        x = table[col][idx]
        keep = np.isfinite(x)
        out[name] = {"rho_swing": spearman(x, table["swing"][idx]),
                     "rho_box_effect": spearman(x, table["box_effect"][idx]),
                     "rho_test_auc": spearman(x, table["test_auc"][idx]),
                     "auroc": auroc(direction * x[keep], label[keep]), "n": int(keep.sum()),
                     "n_shortcut": int(label[keep].sum())}
    ref = out.get(REFERENCE, {}).get("auroc", np.nan)
    for name, _, _, is_saliency in diagnostics_of(table):
        out[name]["d_auroc"] = out[name]["auroc"] - ref if is_saliency else np.nan
    return out


def analyse(table, n_boot=BOOTSTRAP, seed=0, label_of=LABELS[f"swing >= {SWING}"]):
    """{name: {stat: (estimate, low, high, resamples left out)}} with the seed bootstrap's 95% percentile
    intervals; a resample is left out of a statistic it cannot define (an AUROC lacking a class)."""
    all_idx = np.arange(len(table["seed"]))
    point = statistics(table, all_idx, label_of)
    seeds = np.unique(table["seed"])
    by_seed = {s: all_idx[table["seed"] == s] for s in seeds}
    rng = np.random.default_rng(seed)
    draws = {name: {k: [] for k in stats_} for name, stats_ in point.items()}
    for _ in range(n_boot):
        idx = np.concatenate([by_seed[s] for s in rng.choice(seeds, size=len(seeds))])
        for name, st in statistics(table, idx, label_of).items():
            for k, v in st.items():
                draws[name][k].append(v)
    out = {}
    for name, st in point.items():
        out[name] = {}
        for k, v in st.items():
            d = np.array(draws[name][k], dtype=float)
            d = d[np.isfinite(d)]
            low, high = (np.percentile(d, [2.5, 97.5]) if len(d) else (np.nan, np.nan))
            out[name][k] = (v, low, high, n_boot - len(d))
    return out


def _fmt(stat):
    v, low, high, _ = stat
    return "n/a" if not np.isfinite(v) else f"{v:+.2f} [{low:+.2f}, {high:+.2f}]"


def report(tables, n_boot=BOOTSTRAP):
    """The markdown the answer is written from: per pool and label, the models and every diagnostic."""
    lines = [f"# Can saliency diagnose the shortcut?\n\nswing = test_auc_train_rule - test_auc. Intervals: 95%, "
             f"{n_boot} bootstrap resamples of the seeds. AUROC oriented so that 1 = the diagnostic ranks every "
             f"shortcut model above every other; dAUROC = AUROC - {REFERENCE}'s AUROC. The first label is the "
             f"registered one; the second was added later (REPRODUCTION.md says why) and is reported beside it.\n"]
    for pool, table in tables.items():
        n = len(table["swing"])
        if n == 0:
            lines.append(f"## Pool: {pool} models\n\nNo models yet.\n")
            continue
        seeds = np.unique(table["seed"]).astype(int)
        all_idx = np.arange(n)
        lines.append(f"## Pool: {pool} models\n\n{n} models from {len(seeds)} seeds ({', '.join(map(str, seeds))}).\n")
        lines.append("| setting | models | " + " | ".join(f"label: {k}" for k in LABELS) +
                     " | swing median | box_effect median |\n|---|---|" + "---|" * len(LABELS) + "---|---|")
        for s in sorted(set(table["setting"])):
            m = table["setting"] == s
            counts = " | ".join(str(int(f(table, all_idx)[m].sum())) for f in LABELS.values())
            lines.append(f"| {s} | {int(m.sum())} | {counts} | {np.median(table['swing'][m]):.2f} | "
                         f"{np.nanmedian(table['box_effect'][m]):.2f} |")
        for label_name, label_of in LABELS.items():
            label = label_of(table, all_idx)
            estimable = label.sum() >= MIN_CLASS and (~label).sum() >= MIN_CLASS
            result = analyse(table, n_boot, label_of=label_of)
            lines.append(f"\n### {pool} models, label: {label_name} ({int(label.sum())} of {n} use the shortcut)\n")
            lines.append("| diagnostic | n | rho with swing | rho with box_effect | rho with test AUC | AUROC | "
                         "dAUROC vs mask effect |\n|---|---|---|---|---|---|---|")
            too_few = []  # diagnostics scored on too few models of a class (IG and occlusion: some seeds only)
            for name, st in result.items():
                has = st["n_shortcut"][0] >= MIN_CLASS and st["n"][0] - st["n_shortcut"][0] >= MIN_CLASS
                if not has:
                    too_few.append(name)
                auc_cell = _fmt(st["auroc"]) if has else "not estimable"
                d_cell = _fmt(st["d_auroc"]) if has and np.isfinite(st["d_auroc"][0]) else ""
                lines.append(f"| {name} | {st['n'][0]} | {_fmt(st['rho_swing'])} | {_fmt(st['rho_box_effect'])} | "
                             f"{_fmt(st['rho_test_auc'])} | {auc_cell} | {d_cell} |")
            if not estimable:
                lines.append(f"\nAUROC not estimable: fewer than {MIN_CLASS} models in a class.")
            elif too_few:
                lines.append(f"\nAUROC not estimable for {', '.join(too_few)}: fewer than {MIN_CLASS} of the "
                             f"models it scored in a class.")
        lines.append("")
    return "\n".join(lines)


def cli(argv=None):
    p = errors.ArgumentParser(prog="diagnosis.py", description=__doc__.split("\n")[0])
    p.add_argument("--results", required=True, help="a results CSV with the shortcut columns")
    p.add_argument("--out", default=None, help="write the markdown here too")
    p.add_argument("--bootstrap", type=int, default=BOOTSTRAP, help="bootstrap resamples of the seeds")
    args = p.parse_args(argv)
    try:
        if not os.path.isfile(args.results):
            raise results.ResultsError(f"--results {args.results}: no such file; pass a results CSV")
        if args.bootstrap < 1:
            raise results.ResultsError(f"--bootstrap {args.bootstrap}: pass at least 1")
        tables = pools(results.read_rows(args.results))
    except errors.UsageError as e:
        return errors.report(e)
    text = results.drawn_by("diagnosis.py", argv) + "\n\n" + report(tables, args.bootstrap)
    print(text)
    if args.out:
        results.write_atomic(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
