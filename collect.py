"""The results CSV as one row per run: which rows make a run, its IoU, and the epoch each rule selects.

Read by plots.py (the tables) and figures.py (the figures); torch-free.

A *run* is its last ``kind=final`` row (several rows for one run_id: the last
counts); only ``status=ok`` runs enter tables and figures. Its IoU comes from
the last row of that run_id (``final`` or ``saliency``, optionally of one
``--saliency`` method) that has one, with the chance and untrained IoU of that
same row; cascading-randomisation rows (``randomized`` set) never count as a
run's IoU. Every saliency method's scores are also columns of their own
(``per_method``). Besides the final row's own epoch (the lowest validation
loss, the paper's rule), two more rules are re-selected from the ``epoch``
rows (``RULES``), every one ignoring the epochs before the run's ``burn_in``
as train.py does (``protocol.eligible``).
"""
import os

import numpy as np
import pandas as pd

import protocol
import results

# Table rows: the methods in protocol.METHODS order; masked with zero fill is its own row.
VARIANTS = [v for m in protocol.METHODS for v in ((m, "masked_zero") if m == "masked" else (m,))]
LABELS = {"baseline": "Classification", "masked": "Masked", "masked_zero": "Masked (zero fill)",
          "actdiff": "ActDiff", "adversarial": "Adversarial", "gradmask": "GradMask", "rrr": "RRR"}
SHIFT_RATIOS = {"xray": (0.9, 0.5), "rsna": (0.9, 0.5)}  # (with shift, without shift): the paper's tables
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
# Our saliency methods -> the authors' IoU columns; load() puts ours in iou_<method>.
PAPER_IOU = {"grad": "iou_grad", "ig": "iou_ig", "occlusion": "iou_occlude"}


def run_dir(row, csv_path):
    """The run's directory: as recorded, else relative to the results file's folder."""
    d = row["run_dir"]
    return d if os.path.isabs(d) or os.path.isdir(d) else os.path.join(os.path.dirname(csv_path), d)


def load(args):
    """(runs, epochs, cascade, trials, excluded) from the CSV, filtered; ResultsError when there is nothing.

    `excluded` counts the runs left out by status ({"diverged": n, "oom": m, ...}): only ``status=ok`` runs
    have metrics to show.

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
    excluded = runs.loc[runs["status"] != "ok", "status"].value_counts().to_dict()
    runs = runs[runs["status"] == "ok"].copy()
    epochs = df[(df["kind"] == "epoch") & df["run_id"].isin(runs["run_id"])]
    for name, (column, highest, _) in RULES.items():
        runs[name] = runs["run_id"].map(select_epoch(epochs, column, highest))
    cascade = df[(df["kind"] == "saliency") & (df["randomized"] != "") & df["iou"].notna()
                 & df["run_id"].isin(runs["run_id"])].drop_duplicates(["run_id", "saliency", "randomized"], keep="last")
    return runs, epochs, cascade, trials, excluded


def per_method(measure, method, scoring="all"):
    """The column of `load`'s runs holding `measure` (iou, iot, iou_chance, iou_untrained) of saliency
    `method` under a scoring ("all" or "release")."""
    return f"{measure}_{method}" + ("_release" if scoring == "release" else "")


def select_epoch(epochs, column, highest):
    """Per run_id: the test AUC of the eligible epoch with the highest (or lowest) `column`, the first
    such epoch on ties. Eligible as in train.py (protocol.eligible): from the run's burn_in on, or its last
    epoch when it ran fewer (rows written before burn_in existed count every epoch)."""
    e = epochs.dropna(subset=[column]).sort_values(["run_id", "epoch"], kind="stable")
    e = e[protocol.eligible(e["epoch"], e["epochs"], e["burn_in"].fillna(1))]
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


def present(runs, dataset, ratios):
    """The table rows: the variants with a run at one of the ratios, in VARIANTS order."""
    return [v for v in VARIANTS if any(len(at(runs, dataset, r, v)) for r in ratios)]
