"""The bf16 bridge's verdict (REPRODUCTION.md, "The command": "The ratio 0.5 and 0.9 runs train in fp32"), whose
committed output is results/synthetic-bf16-bridge/verdict.txt: the same seeds and data trained in bf16 and in
fp32 at ratio 1.0, run by run. For each setting it prints the bf16 - fp32 difference of test AUC (the paper's
rule and the honest rule) and of gradient IoU on every seed both hold, beside the fp32 seed-to-seed spread
(std over all fp32 seeds of that setting). The ratio runs stay in bf16 only if no difference exceeds it.

    python -m checks.bf16_bridge results/synthetic-bf16-bridge/results.csv results/synthetic/results.csv
"""
import argparse
import sys

import errors
import plots
import results

MEASURES = {"test_auc": "test AUC (paper's rule)", "test_auc_by_valid_id_loss": "test AUC (honest rule)",
            "iou": "IoU grad"}


def runs_of(csv, amp):
    """The finished ratio-1.0 runs of a results CSV, selected and scored as plots.py does (gradient IoU);
    ResultsError if one of them did not train in `amp`."""
    args = plots.parse_args(["--results", csv, "--saliency", "grad", "--dataset", "synthetic"])
    runs = plots.load(args)[0]
    runs = runs[runs["ratio"] == 1.0]
    if (runs["precision"] != amp).any():
        raise results.ResultsError(f"{csv}: holds runs trained in {sorted(set(runs['precision']) - {amp})}, not only "
                                   f"{amp}; give the bf16 CSV first, the fp32 one second")
    return runs.set_index(["variant", "seed"])[list(MEASURES)]


def main(argv):
    parser = errors.ArgumentParser(prog="python -m checks.bf16_bridge", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bf16_csv", help="the bridge's results CSV (every ratio-1.0 run in bf16)")
    parser.add_argument("fp32_csv", help="the fp32 results CSV of the same seeds and data")
    args = parser.parse_args(argv)
    try:
        bf16, fp32 = runs_of(args.bf16_csv, "bf16"), runs_of(args.fp32_csv, "fp32")
    except results.ResultsError as e:
        return errors.report(e)
    both = bf16.add_suffix("_bf16").join(fp32.add_suffix("_fp32"), how="inner")
    worst = 0.0
    for variant, rows in both.groupby(level="variant"):
        for column, name in MEASURES.items():
            diff = rows[f"{column}_bf16"] - rows[f"{column}_fp32"]
            spread = fp32.loc[variant, column].std()
            # A setting whose seeds all agree (Classification's AUC is 0 on every seed) has no spread: any
            # difference there is beyond it.
            moved = diff.abs().max()
            worst = max(worst, moved / spread if spread > 0 else (float("inf") if moved > 0 else 0.0))
            seeds = ", ".join(f"s{seed} {d:+.3f}" for (_, seed), d in diff.items())
            print(f"{variant:12s} {name:26s} bf16 - fp32: {seeds}   fp32 spread (std, n={len(fp32.loc[variant])}): "
                  f"{spread:.3f}")
    print(f"{len(both)} runs in both; largest |bf16 - fp32| / fp32 spread: {worst:.2f} "
          f"({'within' if worst <= 1 else 'beyond'} the seed-to-seed spread)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
