"""How close training runs to the speed of the model's own arithmetic.

    python bench.py [--device cpu|cuda] [--size 28|224] [--methods baseline rrr] [--steps 3] [--json FILE]
    python bench.py --memory [28 128 224] [--device cpu|cuda] [--batch-size 16] [--json FILE]

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

``--memory`` instead reports each method's peak memory in one training step at each image size, in fp32
and under bf16 autocast, and that of saliency scoring (input gradients on one batch of saliency.score_batch
images, in fp32, as train.py scores them whatever --amp says). Estimated everywhere (``step_estimate``): the
state (weights, buffers, gradients, Adam's moments; the discriminator's too) plus the most bytes autograd's
saved tensors hold at once (memory.SavedTensors). On CUDA also measured: the allocator's peak over a step after a
warm-up step (an adversarial cycle: the encoder steps on one batch in disc_ratio). The estimate leaves out
what lives only inside an operation (cuDNN's workspace, a gradient on its way through the backward pass).

It also times the run directory's files on this disk (``--checkpoint``): the
resume checkpoint as train.py wrote it before (weights, Adam state and a
second copy of the best weights, every epoch) and now (weights and Adam state,
at most every ``--checkpoint-every`` seconds, plus ``best.pt`` when the best
epoch changes), as a share of a baseline epoch.
"""
import gc
import json
import os
import resource
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode

import attribution
import datasets
import errors
import losses
import memory
import models
import rundir
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
    """(MB, seconds) of the files a run directory gets, written with rundir.save_atomic (fsync) to `folder`:
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
        seconds = statistics.median(timed(lambda: rundir.save_atomic(obj, path), device) for _ in range(3))
        out[name] = (os.path.getsize(path) / 2**20, seconds)
    return out


# ---- memory per method

MEMORY_SIZES = (28, 128, 224)  # synthetic; NIH + PadChest as the release trained them; RSNA and saliency scoring
FEW = (2, 4)                   # the batches an estimate runs (see step_estimate)


def square_batch(size, n):
    """n random size x size images, labels 0, 1, 0, ..., masks covering the central square."""
    x = torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros_like(x)
    mask[..., size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1
    return x, torch.arange(n) % 2, mask


def affine(saved, n):
    """Saved bytes at n images from their values at the two batches of FEW."""
    (a, saved_a), (b, saved_b) = sorted(saved.items())
    return saved_a + (saved_b - saved_a) // (b - a) * (n - a)


def step_estimate(name, hp, size, batch_size, device):
    """(saved, state) bytes of one training step (an adversarial step on the encoder's turn, its first) with
    `batch_size` images of size x size: memory.step_bytes at 2 and 4 images, the saved bytes extrapolated.

    Every tensor autograd saves is either one per image (activations) or fixed (weights cast to bf16,
    batch-norm statistics), so the saved bytes are affine in the batch, to the byte (a test checks it), and
    two small batches give them at any batch: a CPU sizes a 224 px step in a quarter of its memory."""
    saved = {}
    for n in FEW:
        net, opt, method = fresh(name, hp, device)
        x, y, mask = train.to_device(square_batch(size, n), device, train.memory_format(device, hp.amp))
        extra = [method] if name == "adversarial" else []  # the discriminator and its Adam
        saved[n], state = memory.step_bytes(lambda: train.train_step(net, opt, method, x, y, mask, hp),
                                            [net] + [m.disc for m in extra], [opt] + [m.opt for m in extra])
    return affine(saved, batch_size), state


def scoring_estimate(size, device):
    """(saved, state) bytes of scoring input-gradient saliency on one batch of saliency.score_batch(size) images
    (eval mode, fp32): the weights, and the saved tensors of one batch, extrapolated as in step_estimate."""
    saved = {}
    for n in FEW:
        net = ResNet18().to(device)
        x = square_batch(size, n)[0].to(device)
        saved[n], state = memory.step_bytes(lambda: attribution.input_gradients(net, x), [net], [])
    return affine(saved, saliency.score_batch(size)), state


def measured_peak(prepare, device, repeat=1):
    """The CUDA allocator's peak bytes over `repeat` calls of the function that prepare() returns, after one
    warm-up call (Adam's moments then exist, and cuDNN has tried its kernels, some with large workspaces);
    None if it ran out of memory."""
    gc.collect()  # an earlier measurement that ran out of memory mid-step can leave its graph in cycles
    torch.cuda.empty_cache()
    try:
        run = prepare()
        run()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(repeat):
            run()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    except Exception as e:
        if not memory.is_out_of_memory(e):
            raise
        return None


def step_measured(name, hp, size, batch_size, device):
    """Peak bytes on CUDA of a training step (an adversarial cycle: disc_ratio steps, one the encoder's)."""
    def prepare():
        net, opt, method = fresh(name, hp, device)
        x, y, mask = train.to_device(square_batch(size, batch_size), device, train.memory_format(device, hp.amp))
        return lambda: train.train_step(net, opt, method, x, y, mask, hp)
    return measured_peak(prepare, device, hp.disc_ratio if name == "adversarial" else 1)


def scoring_measured(size, device):
    """Peak bytes on CUDA of input-gradient saliency on one scoring batch (saliency.score_batch) of images."""
    def prepare():
        net, x = ResNet18().to(device), square_batch(size, saliency.score_batch(size))[0].to(device)
        return lambda: attribution.input_gradients(net, x)
    return measured_peak(prepare, device)


def memory_rows(methods, sizes, batch_size, device):
    """Yield one row per method (then saliency scoring) and size and precision, as measured."""
    cuda = device.type == "cuda"
    for name in methods:
        for size in sizes:
            for amp in ("fp32", "bf16"):
                hp = hparams(name, device, amp, batch_size)
                saved, state = step_estimate(name, hp, size, batch_size, device)
                row = dict(method=name, size=size, amp=amp, batch_size=batch_size, state_bytes=state,
                           saved_bytes=saved, estimated_bytes=state + saved)
                if cuda:
                    row["measured_bytes"] = step_measured(name, hp, size, batch_size, device)
                yield row
    for size in sizes:
        saved, state = scoring_estimate(size, device)
        row = dict(method="saliency", size=size, amp="fp32", batch_size=saliency.score_batch(size), state_bytes=state,
                   saved_bytes=saved, estimated_bytes=state + saved)
        if cuda:
            row["measured_bytes"] = scoring_measured(size, device)
        yield row


def memory_table(methods, sizes, batch_size, device):
    """Print the peak memory table row by row, as it is measured; return its rows."""
    cuda = device.type == "cuda"
    print(f"peak memory, MiB: one training step of {batch_size} images; saliency: input gradients of "
          f"one scoring batch ({', '.join(f'{saliency.score_batch(s)} at {s} px' for s in sizes)}), fp32 under either "
          f"--amp. "
          + ("measured/estimated" if cuda else "estimated: state + autograd's saved tensors"))
    print(f"{'method':12}" + "".join(f"{f'{size} {amp}':>12}" for size in sizes for amp in ("fp32", "bf16")))
    rows, line = [], []

    def cell(row):
        est = f"{row['estimated_bytes'] / 2**20:.0f}"
        if not cuda:
            return est
        measured = row["measured_bytes"]
        return ("OOM" if measured is None else f"{measured / 2**20:.0f}") + "/" + est

    for row in memory_rows(methods, sizes, batch_size, device):
        rows.append(row)
        if row["method"] == "saliency":  # fp32 only: the same in both columns
            line += [cell(row)] * 2
        else:
            line.append(cell(row))
        if len(line) == 2 * len(sizes):
            print(f"{row['method']:12}" + "".join(f"{c:>12}" for c in line), flush=True)
            line = []
    return rows


def hparams(name, device, amp, batch_size):
    """train.py's settings for a method (its tuned synthetic hyperparameters)."""
    return train.resolve(train.parse_args(["--method", name, "--device", str(device), "--amp", amp,
                                           "--batch-size", str(batch_size)]))


def peak_memory_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def checked_device(args):
    """The device to time on, once every number bench.py is given can be timed; else a UsageError."""
    for flag, value, least in (("--steps", args.steps, 1), ("--batch-size", args.batch_size, 2),
                               ("--loader", args.loader, 0)):
        if value < least:
            raise errors.UsageError(f"{flag} {value} is invalid; pass at least {least}")
    if any(size < 1 for size in args.memory or ()):
        raise errors.UsageError(f"--memory {' '.join(map(str, args.memory))}: image sides must be positive, "
                                f"e.g. --memory 28 224")
    return models.resolve_device(args.device)


def main(argv=None):
    """Times (or, with --memory, sizes) every method; returns the rows it printed. Bad flags: UsageError."""
    p = errors.ArgumentParser(prog="bench.py", description=__doc__.split("\n")[0])
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
    p.add_argument("--memory", nargs="*", type=int, metavar="SIZE",
                   help=f"instead of timing: each method's peak memory per step at these image sizes (default "
                        f"{' '.join(map(str, MEMORY_SIZES))}), fp32 and bf16; estimated, and on CUDA measured")
    args = p.parse_args(argv)
    device = checked_device(args)
    if args.memory is not None:
        rows = memory_table(args.methods, args.memory or MEMORY_SIZES, args.batch_size, device)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"device": str(device), "batch_size": args.batch_size, "threads": torch.get_num_threads(),
                           "memory": rows}, f, indent=1)
        return rows
    splits = datasets.load_synthetic(mask_blur=0.818) if args.size == 28 else None
    rows = []
    print(f"device {device}, {torch.get_num_threads()} threads, {args.size}x{args.size}, batch {args.batch_size}, "
          f"{args.amp}")
    print(f"{'method':12} {'img/s':>8} {'step ms':>8} {'floor ms':>9} {'overhead':>9} {'GFLOP':>7} {'GFLOP/s':>8} "
          f"{'epoch s':>8} {'eval %':>7} {'valid %':>8} {'sal. s':>7} {'diag. s':>8} {'diag %':>7} {'peak MB':>8}")
    for name in args.methods:
        hp = hparams(name, args.device, args.amp, args.batch_size)
        if splits is not None:
            batch = next(splits["train"].batches(args.batch_size, torch.Generator().manual_seed(0)))
        else:
            batch = square_batch(args.size, args.batch_size)
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


def cli(argv=None):
    """Command-line entry: 0 when done, 2 with one line for a flag bench.py cannot use."""
    try:
        main(argv)
    except errors.UsageError as e:
        return errors.report(e)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
