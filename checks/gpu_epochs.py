"""Epoch times and peak memory of every X-ray setting at the published protocol, measured on stand-ins: the numbers
that would replace the estimates in docs/speed.md ("How long a table takes", "Memory"). Meant for a GPU:

    python -m checks.gpu_epochs --out DIR                       # cuda, fp32 and bf16, 250 images per cell
    python -m checks.gpu_epochs --out DIR --device cpu --n-per-cell 20 --image-sizes 16 16 --amp fp32   # a trial

For xray and rsna it writes stand-in images (datasets.py --stand-in: synthetic files in the real formats, not
X-rays), then trains the seven settings of a table (rsna at its default --empty-mask penalize; skip penalises
fewer images, so costs no more) two epochs at the release's sizes (xray 128 px, rsna 224 px; batch 16;
cudnn.benchmark as train.py sets it on CUDA), in this process through train.py's own cli. It
times each epoch's training pass and its evaluation (valid and test splits), each ended by a device sync, and
reads the allocator's peak over the training pass. Epoch 1 includes cudnn.benchmark's kernel search; epoch 2 is
the steady state that the other 99 epochs repeat. The last columns scale epoch 2 to the tables' cohorts (from the
real metadata, as `datasets.py --summary` counts them) by image count: the cost per image is the same at any
cohort size, since every batch but the last is full. The final scoring runs at the training size (--score-size
train), to keep the check short; it is not timed. Stand-ins are 64-px files, so decoding is cheaper than for
the real images; with --cache (the table commands') an epoch reads the cache, not the files.
"""
import argparse
import contextlib
import io
import os
import shlex
import sys
import time

import torch

import datasets
import errors
import models
import train
import xray
from errors import UsageError

SIZES = {"xray": 128, "rsna": 224}  # the release's training sizes (train.py's defaults)
SETTINGS = [("baseline", []), ("masked", []), ("masked", ["--mask-fill", "zero"]), ("actdiff", []),
            ("adversarial", []), ("gradmask", []), ("rrr", [])]


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def timed(device, log):
    """Wrap train.train_epoch and train.evaluate so that each call appends (name, images, seconds, peak bytes)."""
    def wrap(name, fn, split_at):
        def timed_call(*args, **kw):
            sync(device)
            if torch.device(device).type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            out = fn(*args, **kw)
            sync(device)
            peak = torch.cuda.max_memory_allocated(device) if torch.device(device).type == "cuda" else 0
            log.append((name, len(args[split_at]), time.perf_counter() - start, peak))
            return out
        return timed_call
    epoch, evaluate = train.train_epoch, train.evaluate
    train.train_epoch, train.evaluate = wrap("train", epoch, 3), wrap("eval", evaluate, 1)
    try:
        yield
    finally:
        train.train_epoch, train.evaluate = epoch, evaluate


def full_cohort(dataset, ratio):
    """(train images, valid + test images) of the table's cohort drawn from the real metadata. train.py evaluates
    test only at an epoch a selection rule could pick, so valid + test bounds an epoch's evaluation from above."""
    parser = argparse.ArgumentParser()
    datasets.add_arguments(parser)
    cohort = xray.xray_cohort(parser.parse_args(["--dataset", dataset, "--ratio", str(ratio)]))[2]
    sizes = {name: len(idx) for name, idx in cohort.splits.items()}
    return sizes["train"], sizes["valid"] + sizes["test"]


def main(argv=None):
    p = errors.ArgumentParser(prog="python -m checks.gpu_epochs", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="a folder for the stand-ins, runs and results.csv")
    p.add_argument("--device", default="cuda")
    p.add_argument("--amp", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--n-per-cell", type=int, default=250, help="stand-in images per site x label cell")
    p.add_argument("--image-sizes", type=int, nargs=2, default=[SIZES["xray"], SIZES["rsna"]],
                   metavar=("XRAY", "RSNA"), help="training sizes (default: the release's)")
    p.add_argument("--ratio", type=float, default=0.9)
    args = p.parse_args(argv)
    try:
        models.resolve_device(args.device)  # before anything is written: no GPU here is one line
    except UsageError as e:
        return errors.report(e)
    sizes = dict(zip(SIZES, args.image_sizes))
    header = ("| dataset | px | setting | amp | train images | epoch 1 train s | epoch 2 train s | eval s (images) "
              "| train peak MiB | epoch at the table's size, s |")
    rows = [header, "|" + "---|" * (header.count("|") - 1)]
    for dataset in SIZES:
        try:
            data_flags = datasets.write_stand_ins(os.path.join(args.out, dataset), dataset, args.n_per_cell)
        except UsageError as e:
            return errors.report(e)
        full_train, full_eval = full_cohort(dataset, args.ratio)
        for amp in args.amp:
            for method, extra in SETTINGS:
                log, name = [], "-".join([dataset, method, *extra[1:], amp])
                argv = [*data_flags, "--method", method, *extra, "--amp", amp, "--device", args.device,
                        "--ratio", str(args.ratio), "--epochs", "2", "--batch-size", "16", "--no-probes",
                        "--score-size", "train", "--image-size", str(sizes[dataset]),
                        "--results", os.path.join(args.out, "results.csv"),
                        "--out", os.path.join(args.out, "runs", name), "--cache", os.path.join(args.out, "cache")]
                with timed(args.device, log), contextlib.redirect_stdout(io.StringIO()):
                    code = train.cli(argv)
                if code:
                    print(f"{name}: train.py exited {code}: python train.py {shlex.join(argv)}", file=sys.stderr)
                    return code
                second_at = [i for i, entry in enumerate(log) if entry[0] == "train"][1]
                (_, n_train, first, peak), (_, _, second, _) = log[0], log[second_at]
                evals = [entry for entry in log[second_at + 1:] if entry[0] == "eval"]  # epoch 2's valid, test
                n_eval, eval_s = sum(entry[1] for entry in evals), sum(entry[2] for entry in evals)
                scaled = second * full_train / n_train + eval_s * full_eval / n_eval
                rows.append(f"| {dataset} | {sizes[dataset]} | {method}{' ' + ' '.join(extra) if extra else ''} "
                            f"| {amp} | {n_train} | {first:.2f} | {second:.2f} | {eval_s:.2f} ({n_eval}) "
                            f"| {peak / 2 ** 20:.0f} | {scaled:.1f} |")
                print(rows[-1] if len(rows) > 3 else "\n".join(rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
