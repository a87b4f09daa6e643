"""Train one model with one method on one dataset, and record it in the results CSV.

    python train.py --dataset synthetic --method actdiff --seed 3

Read top to bottom: the paper's tuned hyperparameters (sweep.py holds the search
ranges), argument parsing, then ``main``: load the data, build the ResNet-18 and
the method, train with Adam, evaluate the reversed valid split and the
in-distribution valid_id split after every epoch (and test, at epochs that a
selection rule could pick), keep the epoch with the lowest validation cross-entropy
from epoch ``--burn-in`` on (the paper's early-stopping rule), stop after
``--patience`` eligible epochs without improvement, and append one ``epoch`` row
per epoch and one ``final`` row per run to the shared results file. rundir.py
keeps the run directory: lock, checkpoints, best weights.
"""
import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

import attribution
import datasets
import diagnostics
import errors
import losses
import memory
import protocol
import results
import rundir
import saliency
from diagnostics import auc
from errors import UsageError
import models
from models import ResNet18
from protocol import PROBE_EPOCHS

# ------------------------------------------------------------------ hyperparameters
# Values for a hyperparameter a table entry below does not set.
FALLBACK = {"lr": 1e-3, "lam": 1.0, "disc_lr": 1e-2, "disc_ratio": 10, "mask_blur": 0.0}
# The paper's tuned values, per (dataset, ratio) and method (sweep.py holds the search ranges).
TUNED = {
    ("synthetic", 1.0): {
        "baseline": dict(lr=3.11e-4, mask_blur=0.818), "masked": dict(lr=3.11e-4, mask_blur=0.818),
        "actdiff": dict(lr=3.11e-4, lam=1.0, mask_blur=0.818),
        "adversarial": dict(lr=3.71e-4, lam=10.0, disc_lr=1e-2, disc_ratio=10, mask_blur=0.640),
        "gradmask": dict(lr=1e-2, lam=0.203, mask_blur=1.0), "rrr": dict(lr=1e-5, lam=10.0, mask_blur=0.0),
    },
    ("xray", 0.9): {
        "baseline": dict(lr=9.99e-3), "masked": dict(lr=1e-2), "actdiff": dict(lr=5.83e-4, lam=1.0),
        "adversarial": dict(lr=9.83e-4, lam=0.0194, disc_ratio=2, disc_lr=1e-2),
        "gradmask": dict(lr=9.24e-3, lam=0.385), "rrr": dict(lr=1.36e-3, lam=7.74),
    },
    ("xray", 0.5): {
        "baseline": dict(lr=1e-2), "masked": dict(lr=6.87e-4), "actdiff": dict(lr=8.92e-3, lam=1.0),
        "adversarial": dict(lr=3.82e-3, lam=5.66e-4, disc_ratio=4, disc_lr=4.27e-3),
        "gradmask": dict(lr=1e-2, lam=0.098), "rrr": dict(lr=1.39e-3, lam=10.0),
    },
    ("rsna", 0.9): {
        "baseline": dict(lr=1e-2), "masked": dict(lr=2.84e-3), "actdiff": dict(lr=4.1e-5, lam=1.0),
        "adversarial": dict(lr=3.5e-4, lam=10.0, disc_ratio=10, disc_lr=1.16e-4),
        "gradmask": dict(lr=1e-2, lam=6.57), "rrr": dict(lr=1e-2, lam=1e-4),
    },
    ("rsna", 0.5): {
        "baseline": dict(lr=5.5e-4), "masked": dict(lr=2.84e-3), "actdiff": dict(lr=1e-5, lam=1.0),
        "adversarial": dict(lr=3.4e-5, lam=1e-4, disc_ratio=6, disc_lr=2.35e-4),
        "gradmask": dict(lr=1e-2, lam=1e-4), "rrr": dict(lr=9.89e-3, lam=9.62),
    },
}


def tuned_setting(dataset, ratio):
    """The TUNED key for a dataset: the tuned ratio closest to `ratio`."""
    keys = [k for k in TUNED if k[0] == dataset]
    if not keys:
        raise UsageError(f"--dataset {dataset}: train.TUNED has no tuned hyperparameters for it; add its "
                         f"(dataset, ratio) entries (CONTRIBUTING.md, 'Adding a dataset')")
    return min(keys, key=lambda k: abs(k[1] - ratio))


# ------------------------------------------------------------------ arguments

def parse_args(argv=None):
    p = errors.ArgumentParser(prog="train.py", description=__doc__.split("\n")[0])
    datasets.add_arguments(p)
    p.add_argument("--method", default="baseline", help=f"one of {', '.join(losses.METHODS)}")
    p.add_argument("--seed", type=int, default=0, help="training seed (weights, batch order, shuffles)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--patience", type=int, default=100,
                   help="stop after this many eligible epochs without a lower valid loss (default 100 with 100 "
                        "--epochs: the release's seeds configs, so a final model trains every epoch; sweep.py's "
                        "search trials pass 20, as the release's search configs did)")
    p.add_argument("--burn-in", type=int, default=5,
                   help="epochs before this one can be neither selected nor reset patience (the released "
                        "training loop never selected an epoch before the 5th); with fewer --epochs, the "
                        "last epoch is eligible")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the paper's tuned value)")
    p.add_argument("--lam", type=float, default=None, help="weight of the method's penalty")
    p.add_argument("--disc-lr", type=float, default=None, help="adversarial: the discriminator's learning rate")
    p.add_argument("--disc-ratio", type=int, default=None, help="adversarial: discriminator steps per encoder step")
    p.add_argument("--mask-fill", choices=("shuffle", "zero"), default="shuffle",
                   help="masked: shuffle the outside pixels (paper's text) or zero them (its tables)")
    p.add_argument("--empty-mask", choices=("skip", "penalize"), default=None,
                   help="images without a mask: no penalty, never masked (skip) or treat every pixel as "
                        "outside (penalize: the released code's behaviour, a label leak on RSNA). Default: penalize on "
                        + " and ".join(k for k, v in datasets.EMPTY_MASK.items() if v == "penalize")
                        + ", as released; skip elsewhere")
    p.add_argument("--saliency", choices=tuple(attribution.SALIENCY), default="grad",
                   help="saliency scored on the positive test images: input gradients (the paper's tables), "
                        "integrated gradients (200 steps) or occlusion; saliency.py --saliency all adds the others")
    p.add_argument("--score-size", type=saliency.parse_score_size, default=None, metavar="train|PIXELS",
                   help=f"side of the test images saliency is scored on (default {saliency.SCORE_SIZE} on xray and "
                        f"rsna whatever --image-size, as the release scored; 'train': the training size; synthetic: "
                        f"always {datasets.SIZE})")
    p.add_argument("--score-images", nargs="+", choices=saliency.SCORE_IMAGES, default=["all"],
                   help="which test images saliency is scored on: all = every positive with a mask (the paper's "
                        f"text); release = the first {saliency.RELEASE_PER_CELL} of each site x label cell, then the "
                        "positives with a mask among them (the release's 50; xray and rsna only). The final row uses "
                        "the first; each further one adds a kind=saliency row as saliency.py does (all release)")
    p.add_argument("--probes", action=argparse.BooleanOptionalAction, default=True,
                   help=f"at epochs {', '.join(map(str, PROBE_EPOCHS))}, also record a kind=probe row: the model "
                        f"as it is then, measured like the final row (saliency, shortcut diagnostics)")
    p.add_argument("--amp", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: train and evaluate under bfloat16 autocast (CPU and CUDA); saliency stays fp32")
    p.add_argument("--test-every-epoch", action="store_true",
                   help="evaluate the test split after every epoch (default: only at epochs a selection rule "
                        "can pick, which leaves the other epoch rows' test columns blank)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=None,
                   help="deterministic cuDNN kernels (default: on for CPU, where it costs nothing; off on CUDA, "
                        "where cudnn.benchmark then picks the fastest kernels for the run's shapes)")
    p.add_argument("--checkpoint-every", type=float, default=60.0, metavar="SECONDS",
                   help="write the resume checkpoint when this long has passed since the last one, and after "
                        "the last epoch (0: after every epoch). A kill loses at most this much training, "
                        "which the resumed run redoes with the same result")
    p.add_argument("--results", default=os.path.join("results", "results.csv"), help="the shared results CSV")
    p.add_argument("--out", default=None, help="run directory (default results/runs/<run_id>/)")
    p.add_argument("--sweep-id", default=None, help="set by sweep.py: the sweep this run belongs to")
    p.add_argument("--trial", type=int, default=None, help="set by sweep.py: the search trial number")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (a finished run: do nothing)")
    args = p.parse_args(argv)
    try:  # a scoring the dataset cannot have is said now, not after training
        saliency.check_scoring(args)
    except UsageError as e:
        p.error(str(e))
    return args


def resolve(args):
    """Fill every unset hyperparameter from the paper's tuned table; reject bad values."""
    if args.method not in losses.METHODS:
        raise UsageError(f"--method {args.method!r} is unknown; choose one of {', '.join(losses.METHODS)}")
    if args.dataset not in datasets.DATASETS:
        raise UsageError(f"--dataset {args.dataset!r} is unknown; choose one of {', '.join(datasets.DATASETS)}")
    datasets.fill_defaults(args)  # --ratio, and on X-ray --image-size and --valid-id-fraction
    if args.empty_mask is None:
        args.empty_mask = datasets.EMPTY_MASK[args.dataset]
    if args.data_seed is None:  # the paper's variance is "over model initializations and data splits"
        args.data_seed = args.seed
    tuned = TUNED[tuned_setting(args.dataset, args.ratio)][args.method]
    for name in FALLBACK:
        if getattr(args, name) is None:
            setattr(args, name, tuned.get(name, FALLBACK[name]))
    checks = [("lr", args.lr > 0, "pass a positive learning rate such as 3e-4"),
              ("lam", args.lam >= 0, "pass a penalty weight >= 0"),
              ("disc-lr", args.disc_lr > 0, "pass a positive learning rate"),
              ("disc-ratio", args.disc_ratio >= 1, "pass an integer >= 1"),
              ("epochs", args.epochs >= 1, "pass at least 1"),
              ("patience", args.patience >= 1, "pass at least 1"),
              ("burn-in", args.burn_in >= 1, "pass at least 1 (1 = every epoch can be selected)"),
              ("batch-size", args.batch_size >= 2, "pass at least 2"),
              ("checkpoint-every", args.checkpoint_every >= 0, "pass seconds >= 0 (0 = after every epoch)")]
    for flag, ok, fix in checks:
        if not ok:
            raise UsageError(f"--{flag} {getattr(args, flag.replace('-', '_'))} is invalid; {fix}")
    args.device = str(models.resolve_device(args.device))
    if args.deterministic is None:
        args.deterministic = not args.device.startswith("cuda")
    return args


# ------------------------------------------------------------------ training

def seed_everything(seed, deterministic=True):
    """Seed every generator and choose cuDNN's kernels.

    On CPU a run is bit-for-bit repeatable either way. On CUDA, deterministic
    cuDNN kernels are the slow setting at 224x224, so by default (``--no-deterministic``)
    cudnn.benchmark times the candidate kernels once and keeps the fastest;
    results then differ in the last bits between runs (and even
    deterministic=True leaves some atomic-add backward kernels free to).
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def memory_format(device, amp):
    """channels_last for bf16 on CUDA, where tensor-core convolutions want it; CPU stays contiguous
    (measured: no gain there)."""
    cuda_bf16 = torch.device(device).type == "cuda" and amp == "bf16"
    return torch.channels_last if cuda_bf16 else torch.contiguous_format


def autocast(device, amp):
    """The forward passes' precision: bfloat16 autocast for ``--amp bf16`` (weights stay fp32), else a no-op."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp == "bf16")


def train_step(net, opt, method, x, y, mask, hp):
    """One batch: the method's loss, then one optimiser step unless the method skips it.

    With ``--amp bf16`` the method's passes run under autocast (weights and the
    optimiser stay fp32); the backward pass runs outside it, as autocast expects.
    """
    with autocast(x.device, getattr(hp, "amp", "fp32")):
        loss, terms = method(net, x, y, mask, hp)
    if loss is not None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        terms["loss"] = loss.detach()
    return terms


def to_device(batch, device, fmt=torch.contiguous_format):
    """(x, y, mask) on the training device: asynchronous from pinned memory (the X-ray batches, which
    `split.batches(..., pin_memory=True)` pins on CUDA), a no-op for splits already there (synthetic)."""
    x, y, mask = (t.to(device, non_blocking=True) for t in batch)
    return x.contiguous(memory_format=fmt), y, mask


def train_epoch(net, opt, method, split, hp, generator, device, desc):
    """One pass over the training split; returns the mean of each logged term.

    No host sync inside the loop: the terms stay tensors on the device and are
    read once, at the end of the epoch.
    """
    net.train()
    fmt = memory_format(device, getattr(hp, "amp", "fp32"))
    sums, counts = {}, {}
    batches = split.batches(hp.batch_size, generator, pin_memory=torch.device(device).type == "cuda")
    bar = tqdm(batches, total=-(-len(split) // hp.batch_size), desc=desc, leave=False, disable=None)
    for batch in bar:
        terms = train_step(net, opt, method, *to_device(batch, device, fmt), hp)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v
            counts[k] = counts.get(k, 0) + 1
    means = {k: float(sums[k]) / counts[k] for k in sums}
    if not all(np.isfinite(v) for v in means.values()):
        raise FloatingPointError(f"training loss became non-finite: {means}")
    return means


@torch.inference_mode()
def evaluate(net, split, batch_size, device, amp="fp32"):
    """Cross-entropy, AUC and accuracy of the model on a split (unmasked images), in the run's precision.

    Logits and labels stay on the device until the split is done, then come to
    the host in ONE copy; the metrics are computed there, in float64.
    """
    net.eval()
    fmt = memory_format(device, amp)
    outputs = []
    for batch in split.batches(batch_size * 8, pin_memory=torch.device(device).type == "cuda"):
        x, y, _ = to_device(batch, device, fmt)
        with autocast(device, amp):
            logits = net(x).float()
        outputs.append(torch.cat([logits, y.view(-1, 1).to(logits.dtype)], 1))  # (b, 3): logit 0, logit 1, y
    out = torch.cat(outputs).cpu().numpy().astype(np.float64)                      # the split's one copy
    logits, labels = out[:, :2], out[:, 2].astype(np.int64)
    log_p = diagnostics.log_softmax(logits)
    return {"loss": float(-log_p[np.arange(len(labels)), labels].mean()),
            "auc": auc(log_p[:, 1], labels), "acc": float((logits.argmax(1) == labels).mean())}


def measure(net, test, args, device, out_dir=None, untrained_cache=None):
    """What a final or probe row records of a model beyond its metrics: its saliency on the positive test
    images (saliency.score) and whether it uses the shortcut (diagnostics.shortcut). Eval mode, fp32; the
    training RNG streams are untouched, so a run with probes trains exactly as one without."""
    synthetic = args.dataset == "synthetic"
    # X-ray saliency is scored on the test images loaded at --score-size (224 by default, as the release did);
    # the shortcut diagnostics stay at the training size, where the test AUC was measured.
    size = saliency.score_size(args)
    return dict(saliency.score(net, saliency.scoring_split(args, test, size), args.saliency, device, out_dir=out_dir,
                               untrained_seed=args.seed, untrained_cache=untrained_cache, box=synthetic,
                               score_images=args.score_images[0], score_size=size),
                **diagnostics.shortcut(net, test, synthetic, device))


def check_splits(splits):
    for name, split in splits.items():  # an empty valid_id is X-ray's default (--valid-id-fraction 0)
        if (name != "valid_id" or len(split)) and len(torch.unique(split.y)) != 2:
            raise datasets.DataError(f"the {name} split holds only one class, so its AUC is undefined; "
                                     f"check the data or use a larger split")


# ------------------------------------------------------------------ the run

def main(args):
    """Train as `args` says; returns the final row (a dict). Raises UsageError/DataError on bad input."""
    args = resolve(args)
    rundir.prepare_paths(args)
    splits = datasets.load(args)
    check_splits(splits)
    out, run_id = rundir.new_run(args)
    with rundir.RunLock(out):  # held until the run returns or dies
        try:
            return run(args, splits, rundir.RunDir(out, args, run_id))
        except Exception as e:
            if not memory.is_out_of_memory(e):
                raise
            return memory.out_of_memory(e, args, out, rundir.checkpoint_run_id(out) or run_id)


def run(args, splits, run_dir):
    """The run itself, in a locked run directory: resume or start, train, select, score, record."""
    ckpt = run_dir.resume()
    out, run_id = run_dir.out, run_dir.run_id
    if ckpt and "final" in ckpt:  # its final row again if a kill lost it, then any --score-images row missing
        run_dir.record(ckpt["final"])
        print(f"{out} finished already (selected epoch {ckpt['final']['selected_epoch']}); nothing to do")
        return score_more(args, run_dir, ckpt["final"])
    print("config:", json.dumps(dict(vars(args), run_id=run_id, out=out)), flush=True)

    seed_everything(args.seed, args.deterministic)
    device = torch.device(args.device)
    net = ResNet18().to(device, memory_format=memory_format(device, args.amp))
    # The synthetic splits are small: kept on the training device, batches never cross the bus.
    splits = {k: v.to(device) if hasattr(v, "to") else v for k, v in splits.items()}
    opt = losses.adam(net.parameters(), args.lr)
    method = losses.build(args.method, args, device)
    generator = torch.Generator().manual_seed(args.seed)  # the batch order
    # Early-stopping state: everything a resumed run needs to continue exactly where it stopped (a checkpoint from
    # before a key keeps its initial value). The best weights are not part of it: they are in best.pt (save_best).
    state = {"epoch": 0, "best": None, "since_best": 0, "status": "ok", "elapsed": 0.0,
             "max_valid_auc": -1.0, "min_valid_id_loss": float("inf"),
             **run_dir.restore(ckpt, net, opt, method, generator)}
    base = dict(results.config_columns(args), **results.environment(device, args.deterministic), run_id=run_id,
                run_dir=out, precision=args.amp, sweep_id=args.sweep_id, trial=args.trial,
                n_bad_images=getattr(splits["train"], "n_bad_images", None))  # X-ray: what --skip-bad-images left out
    start = time.time() - state["elapsed"]
    stop = state["since_best"] >= args.patience or state["status"] != "ok"
    for epoch in range(state["epoch"] + 1, args.epochs + 1):
        if stop:
            break
        try:
            train = train_epoch(net, opt, method, splits["train"], args, generator, device,
                                desc=f"epoch {epoch}/{args.epochs}")
        except FloatingPointError as e:
            print(f"diverged at epoch {epoch}: {e}", file=sys.stderr)
            state["status"] = "diverged"
            break
        valid = evaluate(net, splits["valid"], args.batch_size, device, args.amp)
        # An empty valid_id (X-ray's default) leaves its columns blank and the third rule below idle.
        valid_id = (evaluate(net, splits["valid_id"], args.batch_size, device, args.amp)
                    if len(splits["valid_id"]) else {})
        # Three selection rules, all blind to the first burn_in - 1 epochs: the lowest valid loss (the
        # paper's, ours), the first highest valid AUC (plots.py's second column), both on the reversed
        # valid split, i.e. the test distribution; and the lowest in-distribution valid_id loss (plots.py's
        # third, the rule a practitioner without a shifted split could use).
        eligible = protocol.eligible(epoch, args.epochs, args.burn_in)
        best_loss = eligible and (state["best"] is None or valid["loss"] < state["best"]["valid_loss"])
        best_auc = eligible and valid["auc"] > state["max_valid_auc"]
        best_id = eligible and bool(valid_id) and valid_id["loss"] < state["min_valid_id_loss"]
        if best_auc:
            state["max_valid_auc"] = valid["auc"]
        if best_id:
            state["min_valid_id_loss"] = valid_id["loss"]
        # The test split is only read at an epoch a selection rule can pick. Skipping it elsewhere saves
        # a third of the evaluation time; --test-every-epoch keeps whole test curves.
        test = (evaluate(net, splits["test"], args.batch_size, device, args.amp)
                if best_loss or best_auc or best_id or args.test_every_epoch else {})
        row = dict(base, kind="epoch", status="ok", epoch=epoch, seconds=round(time.time() - start, 3),
                   train_loss=train.get("loss"), train_ce=train.get("ce"), train_penalty=train.get("penalty"),
                   train_disc=train.get("disc"), **{f"valid_{k}": v for k, v in valid.items()},
                   **{f"valid_id_{k}": v for k, v in valid_id.items()},
                   **{f"test_{k}": v for k, v in test.items()}, time=rundir.now())
        print(f"epoch {epoch}: train {train.get('loss', float('nan')):.4f}  valid loss {valid['loss']:.4f} "
              f"auc {valid['auc']:.3f}  valid_id auc " + (f"{valid_id['auc']:.3f}" if valid_id else "-")
              + "  test auc " + (f"{test['auc']:.3f}" if test else "-"), flush=True)
        if best_loss:
            state.update(best=row, since_best=0)
        elif eligible:  # burn-in epochs do not count towards patience either
            state["since_best"] += 1
        stop = state["since_best"] >= args.patience
        state.update(epoch=epoch, elapsed=time.time() - start)
        # The row first, then the weights and the checkpoint: a kill in between re-runs the epochs
        # since the last checkpoint, whose rows are then skipped and whose weights come out the same.
        run_dir.record(row)
        if args.probes and epoch in PROBE_EPOCHS and not run_dir.has("probe", epoch):
            test = test or evaluate(net, splits["test"], args.batch_size, device, args.amp)
            run_dir.record(dict(row, kind="probe", **{f"test_{k}": v for k, v in test.items()},
                                **measure(net, splits["test"], args, device,
                                          untrained_cache=os.path.join(out, "untrained-saliency"))))
        if best_loss:
            run_dir.save_best(net, epoch)
        run_dir.checkpoint(net, opt, method, generator, state, last=stop or epoch == args.epochs)

    best = state["best"]
    final = dict(best or base, kind="final", status=state["status"], selected_epoch=best and best["epoch"],
                 seconds=round(time.time() - start, 3), time=rundir.now())
    if best is not None:
        if state["status"] != "ok":  # diverged: the loop left before its checkpoint
            run_dir.promote_best(best["epoch"])
        run_dir.load_best(net, device)
        # Does the selected model look at the right pixels, and does it use the shortcut?
        final.update(measure(net, splits["test"], args, device, out_dir=out))
    run_dir.finish(final)  # the final row, then the marker a later --resume finds
    print(f"done ({final['status']}): selected epoch {final['selected_epoch']}, valid AUC "
          f"{final.get('valid_auc')}, test AUC {final.get('test_auc')}\nresults row -> {args.results}"
          + (f"\ncheckpoint -> {os.path.join(out, rundir.BEST)}" if best else ""), flush=True)
    return score_more(args, run_dir, final)


def score_more(args, run_dir, final):
    """--score-images all release: one kind=saliency row of the selected model per choice after the first (the
    final row's), as `saliency.py --run OUT --score-images CHOICE` appends it; returns `final`. Run after the
    marker is written and by every --resume of the finished run: a kill before these rows loses none."""
    for images in dict.fromkeys(args.score_images[1:]) if final["selected_epoch"] is not None else ():
        if images != args.score_images[0] and not run_dir.scored(images, args.saliency):
            saliency.main(saliency.parse_args(["--run", run_dir.out, "--score-images", images, "--saliency",
                                               args.saliency, "--results", args.results, "--device", args.device]))
    return final


def cli(argv=None):
    """Command-line entry: exit 0 when trained, 2 on bad input (one line, nothing written), 3 if diverged,
    4 out of memory (one line and a status=oom row; the run directory stays resumable)."""
    args = parse_args(argv)
    try:
        final = main(args)
    except UsageError as e:
        return errors.report(e)
    return {"diverged": 3, "oom": 4}.get(final["status"], 0)


if __name__ == "__main__":
    sys.exit(cli())
