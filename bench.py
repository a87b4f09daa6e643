"""How close training runs to the speed of the model's own arithmetic.

    python bench.py [--device cpu|cuda] [--size 28|224] [--methods baseline rrr] [--steps 3] [--json FILE]

For each method, on one fixed batch: the training step exactly as train.py
runs it (``train.train_step``: masking, penalty, optimiser step) and, right
beside it (interleaved, so both see the same machine load), the method's
arithmetic floor: only the model passes the method needs and the optimiser
step, with no masking, metrics or logging. The overhead ratio is step / floor.
"GFLOP" counts a step's arithmetic (``CountFlops``: convolutions and matrix
products, with torch's flop_counter formulas), so GFLOP/s says how fast the
device does it; on a GPU the same count, from a CPU run, sizes a job.
At 28x28 it also times a whole synthetic epoch as train.py runs it (train,
then the valid, valid_id and test evaluations) and the saliency scoring of the
positive test images, and "diag. s" what a final or probe row adds (train.measure: saliency with
its baselines, and the shortcut diagnostics); "diag %" is a 100-epoch run's six probes (each with its
test evaluation) and final measurement as a share of its 100 epochs of training and validation.
"eval %" is valid + valid_id + test evaluation as a
share of the training pass, the cost of an epoch that could be selected;
"valid %" (valid + valid_id) the cost of the other epochs, where train.py
skips the test split. Times are medians over
repetitions after a warm-up step; peak memory is the process's maximum
resident set (CPU) or the allocator's peak (CUDA). Every method is timed with
train.py's settings: its seeding and cuDNN choice (``--deterministic``), its
memory format (channels_last for bf16 on CUDA).

It also times the run directory's files on this disk (``--checkpoint``): the
resume checkpoint as train.py wrote it before (weights, Adam state and a
second copy of the best weights, every epoch) and now (weights and Adam state,
at most every ``--checkpoint-every`` seconds, plus ``best.pt`` when the best
epoch changes), as a share of a baseline epoch.
"""
import argparse
import json
import os
import resource
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode

import datasets
import losses
import saliency
import train
import xray
from models import ResNet18


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device):
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def floor_step(name, net, opt, disc, disc_opt, x, y, hp, step):
    """The bare passes a method needs on a batch: no masking, no metrics, same shapes and graph."""
    opt.zero_grad(set_to_none=True)
    if name in ("baseline", "masked"):                      # forward + backward
        F.cross_entropy(net(x), y).backward()
    elif name == "actdiff":                                 # two forwards + one backward
        z, logits = net.features_and_logits(x)
        z2, _ = net.features_and_logits(x)
        (F.cross_entropy(logits, y) + (z2 - z).square().sum()).backward()
    elif name == "adversarial":                             # two forwards, D's step, encoder every k-th
        encoder_turn = step % hp.disc_ratio == 0
        with torch.set_grad_enabled(encoder_turn):
            z, logits = net.features_and_logits(x)
            z2, _ = net.features_and_logits(x)
        disc_opt.zero_grad(set_to_none=True)
        d = disc(torch.cat([z2.detach(), z.detach()]))
        F.binary_cross_entropy_with_logits(d, torch.ones_like(d)).backward()
        disc_opt.step()
        if not encoder_turn:
            return
        d = disc(torch.cat([z2, z]))
        (F.cross_entropy(logits, y) + F.binary_cross_entropy_with_logits(d, torch.zeros_like(d))).backward()
    else:                                                   # gradmask, rrr: input gradient + double backward
        x = x.detach().requires_grad_(True)
        logits = net(x)
        grad, = torch.autograd.grad(logits.sum(), x, create_graph=True)
        (F.cross_entropy(logits, y) + grad.square().sum()).backward()
    opt.step()


class CountFlops(TorchDispatchMode):
    """Floating-point operations of every op torch's flop_counter has a formula for (convolutions and matrix
    products: nearly all of a ResNet's arithmetic), under this mode. FlopCounterMode counts with the same
    formulas but cannot count GradMask or RRR: its module hooks refuse autograd.grad's double backward."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_counter.flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def step_flops(name, hp, batch, device):
    """FLOPs of one training step as train.py runs it, averaged over one adversarial cycle (the encoder
    trains every disc_ratio-th step): the arithmetic a step/s rate is measured against."""
    x, y, mask = train.to_device(batch, device, train.memory_format(device, hp.amp))
    net, opt, method = fresh(name, hp, device)
    period = hp.disc_ratio if name == "adversarial" else 1
    with CountFlops() as counter:
        for _ in range(period):
            train.train_step(net, opt, method, x, y, mask, hp)
    return counter.total / period


def fresh(name, hp, device):
    """The model, its optimiser and the method as train.py builds them, from seed 0."""
    train.seed_everything(0, hp.deterministic)
    net = ResNet18().to(device, memory_format=train.memory_format(device, hp.amp)).train()
    return net, losses.adam(net.parameters(), hp.lr), losses.build(name, hp, device)


def bench_steps(name, hp, batch, device, steps):
    """Median seconds per training step and per floor step, interleaved on the same batch."""
    x, y, mask = train.to_device(batch, device, train.memory_format(device, hp.amp))
    results = {}
    for kind in ("step", "floor"):
        net, opt, method = fresh(name, hp, device)
        results[kind] = (net, opt, method, getattr(method, "disc", None), getattr(method, "opt", None))
    times = {"step": [], "floor": []}
    period = hp.disc_ratio if name == "adversarial" else 1   # one full encoder/discriminator cycle
    for rep in range(steps + 1):
        n = period if rep else 1                                # rep 0: one warm-up step (builds the kernels)
        for kind in ("step", "floor"):
            net, opt, method, disc, disc_opt = results[kind]
            if kind == "step":
                fn = lambda: [train.train_step(net, opt, method, x, y, mask, hp) for _ in range(n)]
            else:
                def fn():
                    with train.autocast(device, hp.amp):
                        for s in range(n):
                            floor_step(name, net, opt, disc, disc_opt, x, y, hp, s)
            seconds = timed(fn, device) / n
            if rep:
                times[kind].append(seconds)
    return statistics.median(times["step"]), statistics.median(times["floor"])


def bench_epoch(name, hp, splits, device):
    """Seconds for one synthetic epoch as train.py runs it: train, then the valid, valid_id and test
    evaluations (test only runs at epochs a selection rule could pick)."""
    net, opt, method = fresh(name, hp, device)
    generator = torch.Generator().manual_seed(0)
    train_s = timed(lambda: train.train_epoch(net, opt, method, splits["train"], hp, generator, device, "bench"),
                    device)
    valid_s, valid_id_s, test_s = (
        timed(lambda: train.evaluate(net, splits[s], hp.batch_size, device, hp.amp), device)
        for s in ("valid", "valid_id", "test"))
    saliency_s = timed(lambda: saliency.score(net, splits["test"], "grad", device), device)
    measure_s = timed(lambda: train.measure(net, splits["test"], hp, device), device)
    return train_s, valid_s + valid_id_s, test_s, saliency_s, measure_s


def bench_cached_loader(n_images, size=224, batch_size=16):
    """Images/s that the X-ray loader's --cache path delivers: xray.CachedSplit over an
    (N, S, S) float16 memmap like the one --cache writes (ellipse masks, shuffled batches)."""
    import tempfile
    import types

    import numpy as np
    with tempfile.TemporaryDirectory() as tmp:
        pixels = np.lib.format.open_memmap(os.path.join(tmp, "cache.npy"), mode="w+", dtype=np.float16,
                                           shape=(n_images, size, size))
        pixels[:] = np.random.default_rng(0).uniform(-1024, 1024, pixels.shape[1:]).astype(np.float16)
        pixels.flush()
        pixels = np.load(os.path.join(tmp, "cache.npy"), mmap_mode="r")
        masks = xray.Masks(types.SimpleNamespace(dataset="xray", table=None), size)
        split = xray.CachedSplit(pixels, np.full((n_images, 2), 1024), np.arange(n_images),
                                     torch.zeros(n_images, dtype=torch.long), masks)
        rates = []
        for _ in range(3):  # the first pass reads from disk, the later ones from the page cache
            start = time.perf_counter()
            for _batch in split.batches(batch_size, torch.Generator().manual_seed(0)):
                pass
            rates.append(n_images / (time.perf_counter() - start))
    return rates


def bench_checkpoint(hp, device, folder):
    """(MB, seconds) of the files a run directory gets, written with train.save_atomic (fsync) to `folder`:
    "before": the old checkpoint (weights + Adam state + the best weights again), "checkpoint": today's
    (weights + Adam state), "best": best.pt (the weights)."""
    net, opt, method = fresh("baseline", hp, device)
    x, y, mask = train.to_device(next(datasets.load_synthetic(n_train=16, n_eval=16)["train"].batches(16)), device)
    train.train_step(net, opt, method, x, y, mask, hp)  # Adam's moments exist from the first step on
    weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
    files = {"before": {"model": net.state_dict(), "opt": opt.state_dict(), "state": {"best_weights": weights}},
             "checkpoint": {"model": net.state_dict(), "opt": opt.state_dict(), "state": {}},
             "best": {"model": net.state_dict(), "epoch": 1}}
    out = {}
    for name, obj in files.items():
        path = os.path.join(folder, f"{name}.pt")
        seconds = statistics.median(timed(lambda: train.save_atomic(obj, path), device) for _ in range(3))
        out[name] = (os.path.getsize(path) / 2**20, seconds)
    return out


def peak_memory_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=28, choices=(28, 224))
    p.add_argument("--methods", nargs="+", default=list(losses.METHODS), choices=list(losses.METHODS))
    p.add_argument("--steps", type=int, default=3, help="timed repetitions per method (after one warm-up step)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--amp", choices=("fp32", "bf16"), default="fp32", help="as train.py's --amp")
    p.add_argument("--no-epoch", action="store_true", help="skip the whole-epoch timing")
    p.add_argument("--json", default=None, help="also write the numbers to this file")
    p.add_argument("--loader", type=int, default=2000, metavar="N",
                   help="also time the X-ray --cache loader on N 224x224 images (0: skip)")
    p.add_argument("--checkpoint", default="results", metavar="DIR",
                   help="time the run directory's checkpoint files on DIR's disk (''; skip)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    splits = datasets.load_synthetic(mask_blur=0.818) if args.size == 28 else None
    rows = []
    print(f"device {device}, {torch.get_num_threads()} threads, {args.size}x{args.size}, batch {args.batch_size}, "
          f"{args.amp}")
    print(f"{'method':12} {'img/s':>8} {'step ms':>8} {'floor ms':>9} {'overhead':>9} {'GFLOP':>7} {'GFLOP/s':>8} "
          f"{'epoch s':>8} {'eval %':>7} {'valid %':>8} {'sal. s':>7} {'diag. s':>8} {'diag %':>7} {'peak MB':>8}")
    for name in args.methods:
        hp = train.resolve(train.parse_args(["--method", name, "--device", args.device, "--amp", args.amp,
                                             "--batch-size", str(args.batch_size)]))
        if splits is not None:
            batch = next(splits["train"].batches(args.batch_size, torch.Generator().manual_seed(0)))
        else:
            g = torch.Generator().manual_seed(0)
            x = torch.randn(args.batch_size, 1, args.size, args.size, generator=g)
            mask = torch.zeros_like(x)
            mask[..., args.size // 4: 3 * args.size // 4, args.size // 4: 3 * args.size // 4] = 1
            batch = (x, torch.arange(args.batch_size) % 2, mask)
        step, floor = bench_steps(name, hp, batch, device, args.steps)
        flops = step_flops(name, hp, batch, device)
        row = {"method": name, "images_per_s": args.batch_size / step, "step_ms": 1e3 * step,
               "floor_ms": 1e3 * floor, "overhead": step / floor, "step_gflop": flops / 1e9,
               "gflop_per_s": flops / 1e9 / step}
        if splits is not None and not args.no_epoch:
            train_s, valid_s, test_s, saliency_s, measure_s = bench_epoch(name, hp, splits, device)
            # A 100-epoch run measures its model 7 times (6 probes, each with a test evaluation, and the
            # final row), against at least 100 x (train + valid) of training.
            run_s = 100 * (train_s + valid_s)
            row.update(epoch_s=train_s + valid_s + test_s, train_s=train_s, valid_s=valid_s, test_s=test_s,
                       eval_fraction=(valid_s + test_s) / train_s, valid_fraction=valid_s / train_s,
                       saliency_s=saliency_s, measure_s=measure_s,
                       measure_fraction=(len(train.PROBE_EPOCHS) * (measure_s + test_s) + measure_s) / run_s)
        row["peak_mb"] = peak_memory_mb(device)
        rows.append(row)
        print(f"{name:12} {row['images_per_s']:8.1f} {row['step_ms']:8.1f} {row['floor_ms']:9.1f} "
              f"{row['overhead']:9.3f} {row['step_gflop']:7.1f} {row['gflop_per_s']:8.1f} "
              f"{row.get('epoch_s', float('nan')):8.2f} "
              f"{100 * row.get('eval_fraction', float('nan')):7.1f} "
              f"{100 * row.get('valid_fraction', float('nan')):8.1f} "
              f"{row.get('saliency_s', float('nan')):7.2f} {row.get('measure_s', float('nan')):8.2f} "
              f"{100 * row.get('measure_fraction', float('nan')):7.2f} {row['peak_mb']:8.0f}", flush=True)
    files = None
    if args.checkpoint:
        os.makedirs(args.checkpoint, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=args.checkpoint) as folder:
            files = bench_checkpoint(hp, device, folder)
        epoch = next((r["epoch_s"] for r in rows if r["method"] == "baseline" and "epoch_s" in r), None)
        share = (lambda s: f" = {100 * s / epoch:.1f}% of a baseline epoch") if epoch else (lambda s: "")
        (mb0, s0), (mb1, s1), (mb2, s2) = files["before"], files["checkpoint"], files["best"]
        print(f"checkpoint before: {mb0:.0f} MB in {s0:.2f} s every epoch{share(s0)}\n"
              f"checkpoint now:    {mb1:.0f} MB in {s1:.2f} s at most every --checkpoint-every seconds "
              f"(60 by default; 0: every epoch{share(s1)}), plus best.pt {mb2:.0f} MB in {s2:.2f} s "
              f"when the best epoch changes{share(s2)}")
    loader = None
    if args.loader:
        rates = bench_cached_loader(args.loader, batch_size=args.batch_size)
        loader = {"images": args.loader, "first_pass_images_per_s": rates[0], "images_per_s": max(rates[1:])}
        print(f"X-ray --cache loader, {args.loader} images 224x224 float16: {loader['images_per_s']:.0f} images/s "
              f"({rates[0]:.0f} on the first pass)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "size": args.size, "batch_size": args.batch_size, "amp": args.amp,
                       "threads": torch.get_num_threads(), "rows": rows, "loader": loader,
                       "checkpoint": files}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
