"""Launching a sweep's trials: local processes, or Slurm (or its local stand-in) through submitit.

sweep.py decides which trial runs next; a Launcher starts it (at most --jobs at once) and says when one
ended. Local jobs share the CPU's threads, and each sees one of the visible GPUs, round robin; Slurm gives
each job its own. Every trial is a train.py command run from the repository's root.
"""
import os
import subprocess
import time

import torch

import train
from errors import UsageError

REPO = os.path.dirname(os.path.abspath(__file__))  # train.py's folder, where every trial runs


def visible_gpus(environ, device_count):
    """The GPUs jobs may use, as CUDA_VISIBLE_DEVICES names them: the user's list when it is set (indices, or
    UUIDs such as GPU-5c3d..., passed through as written), else 0 .. device_count-1."""
    if "CUDA_VISIBLE_DEVICES" in environ:
        return [d.strip() for d in environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    return [str(i) for i in range(device_count)]


def gpu_for_slot(slot, visible):
    """Round robin: job slot k runs on visible GPU k mod n, so more jobs than GPUs share them; None: no GPU."""
    return visible[slot % len(visible)] if visible else None


def slurm_extra(items):
    """--slurm-extra KEY=VALUE or KEY ... as submitit's slurm_additional_parameters: sbatch options, values as
    strings; a bare KEY is an option without a value (submitit writes True as `#SBATCH --KEY`)."""
    extra = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key or key.startswith("-"):
            raise UsageError(f"--slurm-extra {item!r}: give an sbatch option without its dashes, as KEY=VALUE "
                             f"(constraint=a100) or KEY (exclusive)")
        extra[key] = value if sep else True
    return extra


class Launcher:
    """Starts trials (at most --jobs at once) and reports those that ended."""

    def __init__(self, opts):
        self.opts, self.running, self.executor = opts, {}, None
        # One GPU per local job, unless the user named one device for every trial (--device cuda:1 keeps its
        # meaning only if the job sees every GPU). Slurm gives each job its own GPUs.
        device = train.parse_args(opts.passthrough).device  # every trial's: the sweep passes --device through
        self.gpus = visible_gpus(os.environ, torch.cuda.device_count()) if device in ("auto", "cuda") else []
        if opts.launcher != "local":
            try:
                import submitit
            except ImportError:
                raise UsageError(f"--launcher {opts.launcher} needs submitit: pip install submitit")
            folder = os.path.join(os.path.dirname(os.path.abspath(opts.results)), "submitit")
            if opts.launcher == "slurm":
                try:
                    self.executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
                except RuntimeError as e:  # submitit finds no srun: not on a Slurm cluster
                    raise UsageError(f"--launcher slurm: {e}; run the sweep on a cluster's login node")
                # None leaves submitit's (and so Slurm's) default.
                self.executor.update_parameters(
                    slurm_partition=opts.partition, gpus_per_node=opts.gpus_per_job, timeout_min=opts.time,
                    cpus_per_task=opts.cpus_per_job, slurm_account=opts.slurm_account, slurm_qos=opts.slurm_qos,
                    slurm_mem=opts.mem, slurm_additional_parameters=slurm_extra(opts.slurm_extra) or None)
            else:
                self.executor = submitit.LocalExecutor(folder=folder)
                self.executor.update_parameters(timeout_min=opts.time)
            self.command = submitit.helpers.CommandFunction

    def env(self, slot):
        """Threads split between local jobs; each local job one of the visible GPUs."""
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // self.opts.jobs)))
        gpu = gpu_for_slot(slot, self.gpus)
        if self.executor is None and gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        return env

    def start(self, trial):
        os.makedirs(trial.out, exist_ok=True)
        slot = min(set(range(self.opts.jobs)) - {s for s, _ in self.running.values()})
        cmd, env = trial.argv(self.opts), self.env(slot)
        if self.executor is None:
            log = open(os.path.join(trial.out, "train.log"), "ab")
            handle = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
            log.close()
        else:
            handle = self.executor.submit(self.command(cmd, cwd=REPO, env=env))
        self.running[id(trial)] = (slot, (trial, handle))
        print(f"started {trial.label()}: {' '.join(cmd[2:])}", flush=True)

    def wait(self):
        """Block until a trial ends; return (trial, exit code or None if unknown)."""
        while True:
            for key, (_, (trial, handle)) in list(self.running.items()):
                code = self._exit_code(handle)
                if code != "running":
                    del self.running[key]
                    return trial, code
            time.sleep(0.5)

    @staticmethod
    def _exit_code(handle):
        if isinstance(handle, subprocess.Popen):
            code = handle.poll()
            return "running" if code is None else code
        if not handle.done():
            return "running"
        try:
            handle.result()
            return 0
        except Exception:  # submitit reports a failed command as an exception; the CSV tells why
            return None
