"""Memory: how much a training step needs, and what a run does when it runs out.

    python bench.py --memory 28 128 224    # every method's peak at each image size, fp32 and bf16

A step's memory has two parts. The state is fixed: weights, buffers,
gradients and Adam's two moments (the discriminator's too, for adversarial).
The rest is what autograd saves for the backward pass, which grows with the
batch and the image: ``SavedTensors`` measures its peak with autograd's
saved-tensor hooks, so a CPU can size a GPU job (bench.py reports both).

A run that runs out of memory anywhere (training step, evaluation, saliency
scoring) ends with one line on stderr naming what to lower (``advice``), a
final row with ``status=oom`` (``out_of_memory``) and exit code 4. Nothing
recorded before is touched and the run directory's checkpoint stays as it
was, so ``--resume`` with the same flags continues it (say, once the GPU is
free); with other flags it is a new run, in another ``--out``.
"""
import sys
import time
import traceback

import torch

import datasets
import results
import saliency


# ------------------------------------------------------------------ what a step needs

def storages(tensors):
    """{(device, address): bytes} of the storages under `tensors` (None skipped): a view and its base, or a
    tensor listed twice, share one storage and count once."""
    out = {}
    for t in tensors:
        if t is not None:
            s = t.untyped_storage()
            out[(str(s.device), s.data_ptr())] = s.nbytes()
    return out


def state_tensors(modules, optimizers):
    """What a run holds from step to step: parameters, buffers, gradients and optimiser state."""
    for m in modules:
        yield from m.parameters()
        yield from m.buffers()
        yield from (p.grad for p in m.parameters())
    for opt in optimizers:
        for state in opt.state.values():
            yield from (v for v in state.values() if torch.is_tensor(v))


class _Held:
    """A saved tensor as autograd holds it under SavedTensors: counted from packing until autograd lets it go
    (after the backward pass that reads it), when CPython drops the last reference and calls __del__."""

    def __init__(self, tensor, counter):
        self.tensor, self.counter = tensor, counter
        self.key = counter.hold(tensor)

    def __del__(self):
        self.counter.release(self.key)


class SavedTensors:
    """The most bytes that autograd's saved tensors held at once inside the block (``peak``), each storage
    counted once; storages in `exclude` (the weights, which the state counts) are left out.

    The peak, not the sum: a step that runs two backward passes (the adversarial discriminator's, then the
    encoder's) frees the first graph's tensors before the second needs its own.
    """

    def __init__(self, exclude=()):
        self.exclude, self.live, self.bytes, self.now, self.peak = set(exclude), {}, {}, 0, 0

    def hold(self, tensor):
        (key, nbytes), = storages([tensor]).items()
        if key in self.exclude:
            return None
        if self.live.get(key, 0) == 0:
            self.bytes[key] = nbytes
            self.now += nbytes
            self.peak = max(self.peak, self.now)
        self.live[key] = self.live.get(key, 0) + 1
        return key

    def release(self, key):
        if key is None:
            return
        self.live[key] -= 1
        if self.live[key] == 0:
            self.now -= self.bytes[key]

    def __enter__(self):
        self.hooks = torch.autograd.graph.saved_tensors_hooks(lambda t: _Held(t, self), lambda held: held.tensor)
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self.hooks.__exit__(*exc)


def step_bytes(step, modules, optimizers):
    """(saved, state): run step() once and return the peak bytes autograd saved meanwhile, and the bytes of the
    state after it (`modules`' weights, buffers and gradients, `optimizers`' state), each storage once."""
    weights = storages(t for m in modules for t in (*m.parameters(), *m.buffers()))
    with SavedTensors(exclude=weights) as saved:
        step()
    return saved.peak, sum(storages(state_tensors(modules, optimizers)).values())


# ------------------------------------------------------------------ when a run runs out

def is_out_of_memory(error):
    """Whether `error` says the device or the host ran out of memory: torch's OutOfMemoryError (CUDA), and the
    RuntimeErrors of the other allocators (CPU: "can't allocate memory"; cuDNN, cuBLAS: ..._ALLOC_FAILED)."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(
        s in str(error) for s in ("can't allocate memory", "out of memory", "ALLOC_FAILED"))


# Where in train.py's run the memory ran out: the innermost of these functions on the traceback.
PHASES = {"train_epoch": "training", "evaluate": "evaluation", "measure": "saliency scoring"}


def phase(error):
    """Which part of the run raised `error`: one of PHASES' values, or None (elsewhere: moving the model...)."""
    names = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    return next((PHASES[n] for n in reversed(names) if n in PHASES), None)


def advice(error, args):
    """One line: out of memory, where, the run's method, batch, image size and precision, and what to lower."""
    where = phase(error)
    xray = args.dataset != "synthetic"
    size = args.image_size if xray else datasets.SIZE
    device = "CUDA" if isinstance(error, torch.OutOfMemoryError) else args.device
    if where == "saliency scoring":  # 64 images at a time in fp32 whatever --batch-size and --amp
        score = saliency.score_size(args)
        fix = (f"lower --score-size ({score} px; 'train' scores at --image-size)" if xray else
               "free memory on the device")
        what = f"{args.method}, 64 images at a time, {score}x{score} px, fp32"
    else:  # evaluation batches are 8 x --batch-size
        lower = [f"--batch-size ({args.batch_size})"] + ([f"--image-size ({size})"] if xray else [])
        fix = f"lower {' or '.join(lower)}" + (", or pass --amp bf16" if args.amp == "fp32" else "")
        what = f"{args.method}, batch {args.batch_size}, {size}x{size} px, {args.amp}"
    return (f"out of memory ({device}) in {where or 'the run'}: {what}; {fix} "
            f"(python bench.py --memory lists what each method needs)")


def out_of_memory(error, args, out, run_id):
    """After `error` (is_out_of_memory) in run `run_id` in directory `out`: the advice on stderr, and the
    run's final row with status=oom and no metrics (no epoch was selected), which is returned.

    A later --resume of the same run records its own final row: train.py does not count an oom row as
    the run's final one, and readers take a run's last final row."""
    print(advice(error, args), file=sys.stderr, flush=True)
    row = dict(results.config_columns(args), **results.environment(args.device, args.deterministic),
               kind="final", status="oom", run_id=run_id, run_dir=out, precision=args.amp,
               sweep_id=args.sweep_id, trial=args.trial, time=time.strftime("%Y-%m-%dT%H:%M:%S"))
    results.append_row(args.results, row)
    return row
