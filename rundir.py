"""The run directory: what a run leaves on disk, and how a killed run resumes from it.

    <out>/.lock             an flock held for the life of a run (RunLock): one process per run directory
    <out>/checkpoint.pt     config and run_id; during training also the weights, the optimiser, the method's
                            own state, the RNG states and the early-stopping state; once the run has ended,
                            config, run_id and its final row only (the marker a later --resume finds)
    <out>/best.pt           the selected weights (model, config, epoch, run_id): what saliency.py scores
    <out>/best-eN.pt.next   epoch N's weights, waiting for a checkpoint that records N as the best

train.py writes it through `RunDir`; saliency.py reads best.pt back (`load_best`); sweep.py asks `lock_holder`
who runs a trial.
Every file is written with `save_atomic`, so a kill at any moment leaves either the old file or the new one.
"""
import fcntl
import os
import random
import socket
import time
import uuid

import numpy as np
import torch

import models
import results
from errors import UsageError

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
LOCK = ".lock"
# May differ between a run and its resumption (score_images and score_size change the scoring, not the training).
NOT_CONFIG = {"resume", "device", "results", "out", "test_every_epoch", "checkpoint_every", "probes",
              "score_images", "score_size"}
# Keys a dataset never reads, so a difference in them is none: older code stored image_size 224 for the
# synthetic task (current code stores None, as results.config_columns records it).
UNUSED = {"synthetic": {"image_size", "patient_split", "valid_id_fraction"}}


def new_run(args):
    """(run directory, run id) of a new run: --out, else results/runs/<run_id> beside the results file."""
    run_id = f"{args.dataset}-{args.method}-s{args.seed}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    out = args.out or os.path.join(os.path.dirname(args.results) or ".", "runs", run_id)
    os.makedirs(out, exist_ok=True)
    return out, run_id


class RunDir:
    """One run's directory and its rows in the results file, as train.py's loop uses them.

    `resume` first (it adopts a checkpoint's run id), then `restore` the training state; per epoch `record`
    its rows, `save_best` a new best and `checkpoint`; at the end `load_best` and `finish`.
    """

    def __init__(self, out, args, run_id):
        self.out, self.args, self.run_id = out, args, run_id
        self.recorded = set()  # (kind, epoch) of this run's rows in the results file
        self.last_checkpoint = time.time()

    def path(self, name):
        return os.path.join(self.out, name)

    def resume(self):
        """The checkpoint to continue from (--resume), else None; a new run writes its first one now."""
        ckpt = load_checkpoint(self.out, self.args) if self.args.resume else None
        if ckpt is None:
            # Written before any row: a run killed ahead of its first epoch checkpoint resumes under the
            # same run_id, so the rows it already appended are recognised rather than written again.
            save_atomic({"config": vars(self.args), "run_id": self.run_id}, self.path(CHECKPOINT))
            return None
        self.run_id = ckpt["run_id"]
        promote_best(self.out, (ckpt.get("state", {}).get("best") or {}).get("epoch"))  # finish what a kill interrupted
        # An oom row is not the run's end: resumed, the run records its own final row.
        self.recorded = {(r["kind"], r["epoch"]) for r in results.read_rows(self.args.results, run_id=self.run_id)
                         if r["status"] != "oom"}
        return ckpt

    def restore(self, ckpt, net, opt, method, generator):
        """Load a mid-run checkpoint into the network, the optimiser, the method and the RNGs; returns its
        early-stopping state ({} when there is nothing to restore). Starts the checkpoint interval."""
        self.last_checkpoint = time.time()
        if not ckpt or "model" not in ckpt:
            return {}
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        if hasattr(method, "load_state_dict"):
            method.load_state_dict(ckpt["method"])
        set_rng_states(ckpt["rng"], generator)
        state = dict(ckpt["state"])
        legacy = state.pop("best_weights", None)  # where checkpoints kept them before best.pt was written early
        if legacy is not None:
            save_atomic({"model": legacy, "config": vars(self.args), "epoch": state["best"]["epoch"],
                         "run_id": self.run_id}, self.path(BEST))
        print(f"resuming {self.out} after epoch {state['epoch']}", flush=True)
        return state

    def record(self, row):
        """Append a row unless this (kind, epoch) of the run is already in the results file (resumed runs)."""
        key = (row["kind"], str(row.get("epoch") or ""))
        if key not in self.recorded:
            results.append_row(self.args.results, row)
            self.recorded.add(key)

    def has(self, kind, epoch):
        return (kind, str(epoch)) in self.recorded

    def scored(self, score_images, method):
        """Whether the results file holds a kind=saliency row of this run for `method` on `score_images`."""
        return bool(results.read_rows(self.args.results, run_id=self.run_id, kind="saliency", saliency=method,
                                      score_images=score_images, randomized=""))

    def save_best(self, net, epoch):
        """The new best weights, as a candidate: <out>/best-e<epoch>.pt.next until a checkpoint records
        that epoch as the best (`promote_best`). Writing best.pt itself here could leave it ahead of
        the checkpoint after a kill; a resumed run would then hold the wrong best weights."""
        save_atomic({"model": net.state_dict(), "config": vars(self.args), "epoch": epoch, "run_id": self.run_id},
                    self.path(f"best-e{epoch}.pt.next"))

    def checkpoint(self, net, opt, method, generator, state, last=False):
        """Everything a resumed run needs, when `last` or --checkpoint-every seconds have passed since the
        previous one; then the best epoch's candidate becomes best.pt."""
        if not last and time.time() - self.last_checkpoint < self.args.checkpoint_every:
            return
        save_atomic({"config": vars(self.args), "run_id": self.run_id, "model": net.state_dict(),
                     "opt": opt.state_dict(), "method": method.state_dict() if hasattr(method, "state_dict") else None,
                     "rng": rng_states(generator), "state": state}, self.path(CHECKPOINT))
        self.promote_best(state["best"] and state["best"]["epoch"])
        self.last_checkpoint = time.time()

    def promote_best(self, epoch):
        promote_best(self.out, epoch)

    def load_best(self, net, device):
        net.load_state_dict(torch.load(self.path(BEST), map_location=device, weights_only=True)["model"])

    def finish(self, final):
        """Record the final row, then keep only a small marker: a later --resume sees it and does nothing."""
        self.record(final)
        save_atomic({"config": vars(self.args), "run_id": self.run_id, "final": final}, self.path(CHECKPOINT))


class RunLock:
    """An exclusive flock on <run dir>/.lock for the life of a run: one process per run directory.

    A restarted sweep (a Slurm requeue, a second terminal) would otherwise start
    a second --resume of a run that is still going, and the two would overwrite
    each other's checkpoints. The kernel drops the lock when its holder dies,
    SIGKILL included, so a killed run never leaves its directory locked.
    """

    def __init__(self, out):
        self.out, self.path, self.file = out, os.path.join(out, LOCK), None

    def __enter__(self):
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise UsageError(f"--out {self.out} is in use by {lock_holder(self.out) or 'another process'}; "
                             f"wait for that run to end, or pass another --out")
        except OSError as e:
            self.file.close()
            raise UsageError(f"--out {self.out}: its filesystem does not support file locks ({e.strerror}); "
                             f"put run directories on a local disk or a filesystem with locks")
        self.file.truncate(0)
        self.file.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
        self.file.flush()
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def lock_holder(out):
    """Who holds run directory `out` ("pid P on host H"), or None when no run holds it."""
    try:
        with open(os.path.join(out, LOCK)) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return f.read().strip() or "another process"
            except OSError:  # no locks on this filesystem: RunLock will say so
                return None
            fcntl.flock(f, fcntl.LOCK_UN)
            return None
    except FileNotFoundError:
        return None


def save_atomic(obj, path):
    """torch.save to a temporary file, fsync, rename: a kill leaves either the old file or the new one."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def rng_states(generator):
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "batches": generator.get_state()}


def set_rng_states(states, generator):
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    generator.set_state(states["batches"])


def promote_best(out, best_epoch):
    """Make the candidate of `best_epoch` best.pt; delete other candidates (from epochs a kill undid)."""
    for name in os.listdir(out):
        if name.startswith("best-e") and name.endswith(".pt.next"):
            path = os.path.join(out, name)
            if best_epoch is not None and name == f"best-e{best_epoch}.pt.next":
                os.replace(path, os.path.join(out, BEST))
            else:
                os.remove(path)


def checkpoint_run_id(out):
    """The run id in the run directory's checkpoint (None without one), read without loading the weights."""
    try:
        return torch.load(os.path.join(out, CHECKPOINT), map_location="cpu", weights_only=False, mmap=True)["run_id"]
    except (OSError, RuntimeError, KeyError):
        return None


def load_best(run, flag="--run"):
    """A finished run's selected network (on the CPU) and best.pt's dict (model, config, epoch, run_id), for
    scoring it again. UsageError, naming `flag` (the option that named the run), if either does not load."""
    path = os.path.join(run, BEST)
    if not os.path.isdir(run):
        raise UsageError(f"{flag} {run}: no such directory; pass a run directory such as results/runs/<run_id>")
    if not os.path.isfile(path):
        raise UsageError(f"{flag} {run}: no best.pt in it; pass the directory of a run that finished an epoch")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt file
        raise UsageError(f"{flag} {run}: cannot load best.pt ({type(e).__name__}); re-train the run or pass "
                         f"another run") from e
    if not isinstance(ckpt, dict) or not {"model", "config"} <= set(ckpt):
        raise UsageError(f"{flag} {run}: best.pt lacks the keys model and config; pass a run saved by train.py")
    try:
        net = models.with_weights(models.ResNet18, ckpt["model"])
    except RuntimeError as e:
        raise UsageError(f"{flag} {run}: best.pt's weights do not fit models.ResNet18 "
                         f"({str(e).splitlines()[0]}); pass a run saved by train.py") from e
    return net, ckpt


def run_id(run, best):
    """The run's id as its results rows give it, so that a row scored later joins the run's final row.
    best.pt holds it since c608862; before, only the finished run's checkpoint did. The directory's
    name is the last resort, for runs with neither."""
    return best.get("run_id") or checkpoint_run_id(run) or os.path.basename(os.path.abspath(run))


def differences(config, args):
    """The keys in which a checkpoint's config and `args` differ, less NOT_CONFIG and the keys the dataset
    never reads. A flag newer than the checkpoint (absent from its config) is not a difference."""
    ignored = NOT_CONFIG | UNUSED.get(config.get("dataset"), set())
    return sorted(k for k in config if k not in ignored and config[k] != getattr(args, k, None))


def load_checkpoint(out, args):
    """The run directory's checkpoint (None if there is none); refuses another configuration."""
    path = os.path.join(out, CHECKPOINT)
    if not os.path.exists(path):
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        config = ckpt["config"]
    except Exception as e:  # a truncated or foreign file: say which, never a deep torch trace
        raise UsageError(f"--resume: {path} does not load ({type(e).__name__}); delete it to start the run over")
    differs = differences(config, args)
    if differs:
        raise UsageError(f"--resume: {out} holds a run with another configuration ({', '.join(differs)} "
                         f"differ); pass the same flags or another --out")
    return ckpt


def prepare_paths(args):
    """Check, before anything is written, that the results file and the run directory are usable. Nothing is
    created yet: a run stopped by bad data afterwards leaves no empty directory behind."""
    results.check_file(args.results)
    for flag, folder in (("--results", os.path.dirname(os.path.abspath(args.results))),
                         ("--out", args.out)):
        if folder is None:
            continue
        existing = os.path.abspath(folder)  # the deepest part of the path that exists: it must be a writable folder
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise UsageError(f"{flag}: {existing} is a file, not a directory; pass a writable path")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise UsageError(f"{flag}: {existing} is not writable; pass a writable path")
    if args.resume and not args.out:
        raise UsageError("--resume needs --out RUN_DIR: the run directory to continue")


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%S")
