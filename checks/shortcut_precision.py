"""A check behind REPRODUCTION.md ("Can saliency diagnose the shortcut?"): does the precision in which the shortcut
columns rank the test images move the swing that labels a model?

The swing is test_auc_train_rule - test_auc. train.py's test_auc ranks the images by their float64 log-probability
of class 1, which ties images only past a logit gap of about 35 (counted below). The shortcut columns the
100-epoch set recorded (at b4d27f7) rank by the float32 softmax probability instead, which rounds to exactly 1.0
once the logit gap passes about 17 and so ties every confident image: a tie between a positive and a negative
counts one half, whatever their logits say. So the two AUCs of one swing can rank the same outputs differently.

For each finished run in the CSV whose run directory still holds its best.pt, this reloads the selected model,
redraws the test split from the run's config, and prints beside the recorded swing the swing with both AUCs
ranked by float64 log-probability; and, to show where the recorded values came from, the train-rule AUC
recomputed the float32 way (it should equal the recorded one). It records nothing.

    OMP_NUM_THREADS=1 python -m checks.shortcut_precision results/synthetic-100-epochs/results.csv

Needs the runs' best.pt (not committed: run it where the runs were trained).
"""
import argparse
import os
import sys

import numpy as np
import torch

import collect
import datasets
import diagnostics
import errors
import plots
import results
import rundir

THRESHOLD = 0.5  # the registered label: swing >= 0.5


def swing_both_ways(logits, y):
    """{"train_rule_float32": the AUC as recorded, "train_rule_float64", "test_float64", and the shares of the test
    images whose p rounds to 1 in float32 ("saturated") and whose log p rounds to 0 in float64 ("saturated64")}."""
    rule = lambda scores: np.where(y == 1, scores["right"], scores["left"])
    # The recorded way: the fp32 logits' float32 softmax (the float64 logits hold fp32 values exactly).
    p32 = {k: torch.softmax(torch.from_numpy(v).float(), 1)[:, 1].numpy().astype(np.float64)
           for k, v in logits.items()}
    log_p64 = {k: diagnostics.log_softmax(v)[:, 1] for k, v in logits.items()}
    return {"train_rule_float32": diagnostics.auc(rule(p32), y),
            "train_rule_float64": diagnostics.auc(rule(log_p64), y),
            "test_float64": diagnostics.auc(log_p64["x"], y),
            "saturated": float((p32["x"] == 1.0).mean()), "saturated64": float((log_p64["x"] == 0.0).mean())}


def main(argv=None):
    parser = errors.ArgumentParser(prog="python -m checks.shortcut_precision", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", help="a results CSV with the shortcut columns")
    parser.add_argument("--root", default=".", help="the folder the CSV's run_dir paths are relative to (default: "
                                                    "here), e.g. the worktree the runs were trained in")
    args = parser.parse_args(argv)
    try:
        runs = collect.load(plots.parse_args(["--results", args.csv, "--dataset", "synthetic"]))[0]
    except results.ResultsError as e:
        return errors.report(e)
    print("| run | swing recorded | swing, both float64 | train-rule AUC: recorded / float32 again / float64 | "
          "test AUC: recorded / float64 again | share of test images with p = 1 in float32 / log p = 0 in float64 | "
          "label flips |")
    print("|---|---|---|---|---|---|---|")
    flips = n = 0
    for _, run in runs.sort_values(["seed", "variant"]).iterrows():
        run_dir = os.path.join(args.root, run["run_dir"])
        if not os.path.isfile(os.path.join(run_dir, "best.pt")):
            print(f"{run_dir}: no best.pt here; left out", file=sys.stderr)
            continue
        try:
            net, ckpt = rundir.load_best(run_dir, flag="run_dir")
            test = datasets.load(argparse.Namespace(**ckpt["config"]))["test"]
        except errors.UsageError as e:  # a damaged best.pt (DataError too): one line, exit 2
            return errors.report(e)
        logits, y, _ = diagnostics.shortcut_logits(net, test, True, "cpu")  # the passes the columns come from
        got = swing_both_ways(logits, y)
        recorded = float(run["test_auc_train_rule"]) - float(run["test_auc"])
        corrected = got["train_rule_float64"] - got["test_float64"]
        flip = (recorded >= THRESHOLD) != (corrected >= THRESHOLD)
        flips, n = flips + flip, n + 1
        print(f"| {collect.LABELS[run['variant']]} s{int(run['seed'])} | {recorded:+.4f} | {corrected:+.4f} | "
              f"{float(run['test_auc_train_rule']):.4f} / {got['train_rule_float32']:.4f} / "
              f"{got['train_rule_float64']:.4f} | {float(run['test_auc']):.4f} / {got['test_float64']:.4f} | "
              f"{got['saturated']:.2f} / {got['saturated64']:.2f} | {'yes' if flip else ''} |", flush=True)
    print(f"\n{n} runs; the label (swing >= {THRESHOLD}) flips in {flips}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
