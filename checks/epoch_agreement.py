"""Same seed, same numbers: the epochs that two results files share, run against run (REPRODUCTION.md, "Against
the 20-epoch set"). Two runs are a pair when they share dataset, ratio, method, mask fill and seed (each file's
finished seed runs, the last final row of a run counting); their epoch rows are compared epoch by epoch over
the epochs both have. On one CPU the training is deterministic, so train_loss must agree to the last digit; the
evaluation columns agree exactly where both files evaluated alike.

    python -m checks.epoch_agreement results/synthetic/results.csv results/synthetic-100-epochs/results.csv

Per pair: the epochs compared, whether every train_loss agrees, the largest relative difference of valid_loss
and valid_id_loss, how many valid_auc and test_auc values differ (and by how much at most), whether every rule
(plots.py's three) picks the same epoch within the shared epochs, and the commits that wrote the first file's
epoch rows; and, since runs trained on different devices are not expected to agree, the test AUC of the
epoch the paper's rule picks in each and the device each trained on.
"""
import argparse
import sys

import numpy as np
import pandas as pd

import errors
import protocol
import results

KEY = ["dataset", "ratio", "method", "mask_fill", "seed"]
RULES = {"paper's": ("valid_loss", False), "max valid AUC": ("valid_auc", True), "honest": ("valid_id_loss", False)}


def epochs_by_run(csv):
    """{pair key: that run's epoch rows, by epoch} for each finished seed run (no trial) of the file."""
    rows = pd.DataFrame(results.read_rows(csv), columns=results.COLUMNS)
    finals = rows[(rows["kind"] == "final") & (rows["trial"] == "")].drop_duplicates("run_id", keep="last")
    finals = finals[finals["status"] == "ok"].drop_duplicates(KEY, keep="last")
    epochs = rows[rows["kind"] == "epoch"].copy()
    epochs["epoch"] = epochs["epoch"].astype(int)
    by_id = dict(tuple(epochs.drop_duplicates(["run_id", "epoch"], keep="last").groupby("run_id")))
    return {tuple(f[KEY]): (by_id[f["run_id"]].set_index("epoch").sort_index(), int(f["burn_in"] or 1))
            for _, f in finals.iterrows() if f["run_id"] in by_id}


def picked(frame, column, highest, burn_in):
    """The epoch a rule picks among `frame`'s epochs (first on ties), as protocol.eligible allows."""
    values = pd.to_numeric(frame[column], errors="coerce")
    values = values[protocol.eligible(values.index.to_numpy(), len(values), burn_in)].dropna()
    return int(values.idxmax() if highest else values.idxmin()) if len(values) else None


def compare(a, b, burn_in):
    """One pair's agreement over the epochs both runs have (a dict of the columns printed)."""
    shared = a.index.intersection(b.index)
    a, b = a.loc[shared], b.loc[shared]
    num = lambda frame, c: pd.to_numeric(frame[c], errors="coerce").to_numpy(float)
    out = {"epochs": len(shared), "train_loss identical": bool((a["train_loss"] == b["train_loss"]).all())}
    for c in ("valid_loss", "valid_id_loss"):
        x, y = num(a, c), num(b, c)
        rel = np.abs(x - y) / np.abs(y)
        out[f"{c} max rel diff"] = f"{np.nanmax(rel):.2g}" if np.isfinite(rel).any() else "–"
    for c in ("valid_auc", "test_auc"):
        x, y = num(a, c), num(b, c)
        differ = (x != y) & np.isfinite(x) & np.isfinite(y)
        out[f"{c} differ"] = f"{differ.sum()}" + (f" (max {np.abs(x - y)[differ].max():.3g})" if differ.any() else "")
    out["rules agree"] = all(picked(a, c, h, burn_in) == picked(b, c, h, burn_in) for c, h in RULES.values())
    # Where the devices differ the runs are two draws of floating-point noise: what the paper's rule then
    # reports from each, over the shared epochs (the test split is evaluated at the epochs a rule picks).
    pick = lambda frame: num(frame.loc[[picked(frame, "valid_loss", False, burn_in)]], "test_auc")[0]
    out["paper's pick test AUC"] = " ".join("–" if np.isnan(v) else f"{v:.3f}" for v in (pick(a), pick(b)))
    out["devices"] = " ".join(str(frame["device"].iloc[-1] or "–") for frame in (a, b))
    out["commits (first file)"] = " ".join(sorted(set(a["git_commit"])))
    return out


def main(argv=None):
    parser = errors.ArgumentParser(prog="python -m checks.epoch_agreement", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", help="a results CSV")
    parser.add_argument("second", help="another results CSV with runs of the same seeds")
    args = parser.parse_args(argv)
    try:
        first, second = epochs_by_run(args.first), epochs_by_run(args.second)
    except (OSError, results.ResultsError) as e:
        return errors.report(e)
    pairs = sorted(set(first) & set(second))
    if not pairs:
        print(f"error: {args.first} and {args.second} share no finished run (dataset, ratio, method, mask fill, "
              f"seed)", file=sys.stderr)
        return 2
    table = pd.DataFrame([{"run": " ".join(k), **compare(first[k][0], second[k][0], first[k][1])} for k in pairs])
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.max_colwidth", 40):
        print(table.to_string(index=False))
    apart = table[table["devices"].map(lambda d: len(set(d.split())) > 1)]
    if len(apart):  # REPRODUCTION.md's measure of what the device does to a reported number
        picks = apart["paper's pick test AUC"].str.split(expand=True).apply(pd.to_numeric, errors="coerce")
        gap = (picks[1] - picks[0]).dropna()
        print(f"{len(apart)} pairs on different devices: the test AUC at the paper's pick differs by "
              f"{gap.abs().mean():.3f} on average (at most {gap.abs().max():.3f}; mean signed second - first "
              f"{gap.mean():+.3f}, over {len(gap)} pairs with both)")
    print(f"{len(pairs)} pairs; train_loss identical in {int(table['train_loss identical'].sum())}; every rule "
          f"picks the same epoch in {int(table['rules agree'].sum())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
