"""Hyper-parameter sweep: the paper's search and seeds phases, every trial a train.py run.

    python sweep.py --dataset synthetic --method actdiff --phase search --budget 25
    python sweep.py --dataset synthetic --method actdiff --phase seeds --seeds 10
    python sweep.py --benchmark branin|hartmann6   # the optimiser against random search

What lives in this module, top to bottom:

  0. the search space                RANGES, USES, search_space (train.TUNED holds the defaults)
  1. the search and seeds phases     Search, Seeds, Phases (optimizer.py suggests the points)
  2. one pool over every setting     run_pool, build_cache, finish (launch.py starts the trials:
                                     local processes or Slurm through submitit)
  3. main()
"""
import collections
import os
import re
import sys
import time
from dataclasses import dataclass

import numpy as np

import datasets
import errors
import launch
import losses
import optimizer
import results
import rundir
import train
from errors import UsageError


# ----------------------------------------------------------------------------
# 0. the search space: per dataset, name -> (scale, low, high); the defaults are train.TUNED's

_COMMON = {
    "lr": ("log", 1e-5, 1e-2),
    "lam": ("log", 1e-4, 10.0),
    "disc_lr": ("log", 1e-4, 1e-2),
    "disc_ratio": ("int", 2, 10),
}
# mask_blur (the dilation of the training masks) is searched on the synthetic task only.
RANGES = {"synthetic": dict(_COMMON, mask_blur=("real", 0.0, 2.0)), "xray": _COMMON, "rsna": _COMMON}
# Which hyperparameters each method uses (and the sweep searches).
USES = {
    "baseline": ("lr",),
    "masked": ("lr",),
    "actdiff": ("lr", "lam"),
    "adversarial": ("lr", "lam", "disc_lr", "disc_ratio"),
    "gradmask": ("lr", "lam"),
    "rrr": ("lr", "lam"),
}
_noted = set()  # the datasets search_space has said it has no ranges for


def search_space(dataset, method):
    """The sweep's space for a method on a dataset: the RANGES of the hyperparameters it USES, and mask_blur
    where the dataset's ranges hold it (but for the baseline, which reads no mask). A dataset without ranges
    gets the synthetic task's, with a note the first time."""
    if dataset not in RANGES and dataset not in _noted:
        _noted.add(dataset)
        print(f"note: sweep.RANGES has no search ranges for {dataset}; using the synthetic task's",
              file=sys.stderr, flush=True)
    ranges = RANGES.get(dataset, RANGES["synthetic"])
    names = USES[method] + (("mask_blur",) if "mask_blur" in ranges and method != "baseline" else ())
    return {name: ranges[name] for name in names}


# ----------------------------------------------------------------------------
# 1. the search and seeds phases: every trial is a train.py run recorded in the results CSV
#
# Nothing is pickled: a restarted sweep reads its finished trials back from the
# results CSV (rows tagged with its sweep id and trial number), resumes the
# trials that were interrupted (train.py --resume) and only then asks the
# optimiser for new points. Suggestions are seeded by (search seed, trial), so
# a restart asks for the same points.
#
# One pool runs the trials of every setting (--jobs at once): each setting's
# phase hands it one trial at a time, and a freed slot goes to whichever
# setting has a trial ready, so no slot idles while another setting has work.
#
# A trial that ran out of memory (train.py's exit 4: a final row with status=oom) counts as finished, with
# the worst score: a restarted sweep neither resumes nor retries it, since it would run out again. Its
# setting starts no more trials in this sweep either (no searched hyperparameter and no seed changes what a
# step needs); other settings go on, and the summary counts it. To train such settings with less memory
# (--amp bf16, a smaller --batch-size), run them into a new --results file, whose run directories sit beside it.

SEARCH_PATIENCE = 20  # the release's search configs; its seeds configs trained 100 epochs with patience 100


@dataclass
class Setting:
    """One row of a table: a method on a dataset at a ratio (and, for masked, a fill; on rsna, what images
    without a box count as: --empty-masks, None for train.py's default)."""
    dataset: str
    ratio: float
    method: str
    mask_fill: str = "shuffle"
    empty_mask: str = None

    @property
    def name(self):  # e.g. synthetic-r1.0-masked-zero, rsna-r0.9-actdiff-skip: names sweep ids and run directories
        fill = "-zero" if self.method == "masked" and self.mask_fill == "zero" else ""
        empty = f"-{self.empty_mask}" if self.empty_mask else ""
        return f"{self.dataset}-r{self.ratio}-{self.method}{fill}{empty}"

    def train_argv(self):
        fill = ["--mask-fill", self.mask_fill] if self.method == "masked" else []
        empty = ["--empty-mask", self.empty_mask] if self.empty_mask else []
        return ["--dataset", self.dataset, "--ratio", str(self.ratio), "--method", self.method, *fill, *empty]


@dataclass(eq=False)  # compared by identity: the pool tracks running trials by object
class Trial:
    """One train.py run of a sweep: a search trial (trial = 1, 2, ...) or a seeds-phase run (trial None)."""
    setting: Setting
    sweep_id: str
    seed: int
    params: dict
    out: str
    trial: int = None

    def argv(self, opts):
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in self.params.items()]
        # A search trial stops after SEARCH_PATIENCE epochs without improvement, as the release's search
        # configs did; a seeds-phase run keeps train.py's default (100, the release's seeds configs). A
        # --patience passed to the sweep comes later in argv, so it wins in both phases.
        tag = ["--trial", str(self.trial), "--patience", str(SEARCH_PATIENCE)] if self.trial is not None else []
        return [sys.executable, os.path.join(launch.REPO, "train.py"), *self.setting.train_argv(), *flags,
                "--seed", str(self.seed), "--results", opts.results, "--out", self.out, "--resume",
                "--sweep-id", self.sweep_id, *tag, *opts.passthrough]

    def label(self):
        return f"{self.sweep_id} " + (f"trial {self.trial}" if self.trial is not None else f"seed {self.seed}")


def run_params(row, space):
    """The searched hyperparameters of a results row, typed as the space says."""
    return {k: (int(float(row[k])) if kind == "int" else float(row[k])) for k, (kind, _, _) in space.items()}


def recorded(opts, sweep_id):
    """The sweep's final rows (last per run) and the epoch rows of its runs that never finished."""
    rows = results.read_rows(opts.results, sweep_id=sweep_id)
    finals = {r["run_dir"]: r for r in rows if r["kind"] in ("final", "failed")}
    unfinished = {r["run_dir"]: r for r in rows if r["kind"] == "epoch" and r["run_dir"] not in finals}
    return list(finals.values()), list(unfinished.values())


def objective(row):
    """What the search minimises: minus the selected epoch's validation AUC (NaN for a failed trial,
    which the optimiser scores as the worst value seen)."""
    return -float(row["valid_auc"]) if row["status"] == "ok" and row["valid_auc"] else float("nan")


def search_id(setting, opts):
    return f"search-{setting.name}-s{opts.search_seed}"


def runs_folder(opts):
    """Trial run directories sit beside the results CSV, relative as given, so rows stay portable."""
    return os.path.join(os.path.dirname(opts.results), "runs")


# ---- the two phases of a setting, each handing the pool one trial at a time

class Search:
    """Bayesian search for one setting: n_init random trials, then GP-EI, opts.budget trials in all. A point is
    suggested when the pool has a slot for it, from this setting's results so far, with the setting's trials
    still running as pending points (the kriging believer)."""

    def __init__(self, setting, opts):
        self.opts, self.setting = opts, setting
        self.space = search_space(setting.dataset, setting.method)
        self.sweep_id = search_id(setting, opts)
        finals, unfinished = recorded(opts, self.sweep_id)
        self.observed = [(run_params(r, self.space), objective(r)) for r in finals]
        self.resume = [self.trial(int(r["trial"]), run_params(r, self.space)) for r in unfinished]
        self.taken = {int(r["trial"]) for r in finals + unfinished}
        # Started and not scored yet: running here, or held by another process (a trial skipped because its
        # run directory is in use), which is that process's to finish. Both count against the budget.
        self.pending = {}

    def trial(self, t, params):
        return Trial(self.setting, self.sweep_id, self.opts.search_seed, params,
                     os.path.join(runs_folder(self.opts), f"{self.sweep_id}-t{t}"), trial=t)

    def next_trial(self):
        if len(self.observed) + len(self.pending) >= self.opts.budget:
            return None
        if self.resume:
            trial = self.resume.pop()
        else:
            t = max(self.taken, default=0) + 1
            rng = np.random.default_rng([self.opts.search_seed, t])
            pending = [p.params for p in self.pending.values()]
            params = optimizer.suggest(self.space, self.observed, rng, pending=pending, n_init=self.opts.n_init)
            trial = self.trial(t, params)
        self.taken.add(trial.trial)
        self.pending[trial.trial] = trial
        return trial

    def ended(self, trial, row):
        """row: its final (or failed) row; None when another process holds it, which then stays pending."""
        if row is None:
            return
        del self.pending[trial.trial]
        self.observed.append((run_params(row, self.space), objective(row)))
        print(f"{trial.label()} ({len(self.observed)}/{self.opts.budget}): {trial.params} -> valid AUC "
              f"{row.get('valid_auc') or row['status']}", flush=True)

    def preview(self):
        """--dry-run: the trials that can be named before any result, i.e. the interrupted ones and the random
        initial points (the GP's depend on results); `unnamed` then counts the rest."""
        trials = []
        while self.resume or len(self.observed) + len(self.pending) < min(self.opts.n_init, self.opts.budget):
            trial = self.next_trial()
            if trial is None:
                break
            trials.append(trial)
        return trials

    @property
    def unnamed(self):
        return max(0, self.opts.budget - len(self.observed) - len(self.pending))

    def close(self):
        report_best(self.sweep_id, self.space, self.opts)


def report_best(sweep_id, space, opts):
    """The best finished trial's row; warns when its point sits on the edge of the search range."""
    finals, _ = recorded(opts, sweep_id)
    ok = [r for r in finals if objective(r) == objective(r)]
    if not ok:
        print(f"{sweep_id}: no successful trial")
        return None
    best = min(ok, key=objective)
    print(f"{sweep_id}: best trial {best['trial']} of {len(finals)}: valid AUC {float(best['valid_auc']):.4f} "
          f"with {run_params(best, space)}")
    u = optimizer.to_unit(run_params(best, space), space)
    for (name, (kind, lo, hi)), ui in zip(space.items(), u):
        if ui < 0.02 or ui > 0.98:
            print(f"warning: {sweep_id}: the best {name} lies on the edge of its range [{lo}, {hi}]; "
                  f"the range may be too narrow", file=sys.stderr)
    return best


class Seeds:
    """The best search trial's hyperparameters (or the paper's tuned defaults) on opts.seeds new seeds; a seed
    with a final row already is skipped."""
    unnamed = 0

    def __init__(self, setting, opts):
        space = search_space(setting.dataset, setting.method)
        searched = results.read_rows(opts.results, sweep_id=search_id(setting, opts))
        best = report_best(search_id(setting, opts), space, opts) if searched else None
        params = run_params(best, space) if best else {}
        if not best:
            print(f"{setting.name}: no search in {opts.results}; using the paper's tuned defaults (train.py)")
        self.sweep_id = f"seeds-{setting.name}"
        done = {r["seed"] for r in results.read_rows(opts.results, sweep_id=self.sweep_id, kind="final")}
        wanted = [s for s in range(1, opts.seeds + 2) if s != opts.search_seed][:opts.seeds]
        self.todo = [Trial(setting, self.sweep_id, s, params, os.path.join(runs_folder(opts), f"{setting.name}-s{s}"))
                     for s in wanted if str(s) not in done]
        print(f"{self.sweep_id}: seeds {wanted}, {len(wanted) - len(self.todo)} finished already")

    def next_trial(self):
        return self.todo.pop(0) if self.todo else None

    def ended(self, trial, row):
        if row is not None:
            print(f"{trial.label()}: test AUC {row.get('test_auc') or row['status']}", flush=True)

    def preview(self):
        trials, self.todo = self.todo, []
        return trials

    def close(self):
        pass


class Phases:
    """A setting's phases in order. The seeds phase is set up only when the setting's search has ended, as it
    trains the best search trial's hyperparameters; other settings' trials keep the pool busy meanwhile."""

    def __init__(self, setting, opts):
        self.setting, self.opts, self.phase, self.running = setting, opts, None, 0
        self.todo = [{"search": Search, "seeds": Seeds}[p] for p in ("search", "seeds") if p in opts.phase]
        self.out_of_memory = False  # a trial ran out of memory: start no more (they would need as much)

    def next_trial(self):
        """The trial to start now, or None: this setting is done, or waits for its running trials."""
        while True:
            if self.phase is None:
                if not self.todo or self.out_of_memory:
                    return None
                self.phase = self.todo.pop(0)(self.setting, self.opts)
            trial = None if self.out_of_memory else self.phase.next_trial()
            if trial is not None or self.running:
                return trial
            self.phase.close()
            self.phase = None

    def ended(self, trial, row):
        self.phase.ended(trial, row)
        if row is not None and row["status"] == "oom" and not self.out_of_memory:
            self.out_of_memory = True
            print(f"{self.setting.name}: out of memory; its other trials are not started (each needs as much)",
                  flush=True)

    def preview(self):
        """--dry-run: print what each phase would run, up to the first trial that depends on a result."""
        for i, make in enumerate(self.todo):
            phase = make(self.setting, self.opts)
            for trial in phase.preview():
                print("would run:", " ".join(trial.argv(self.opts)[2:]))
            if phase.unnamed:
                print(f"{phase.sweep_id}: then {phase.unnamed} trials suggested from the results before them"
                      + (", then the seeds phase with the best of them" if i + 1 < len(self.todo) else ""))
                return


# ---- the pool

def run_pool(plans, opts, launcher):
    """Run every setting's trials in one pool of opts.jobs slots. A free slot goes to the setting with the fewest
    trials running (the earliest in the sweep's order on ties): settings advance together, and each search keeps
    as few points pending as it can. Given the same order of finishing, trials start in the same order."""
    owner, caches = {}, set()  # the running trials' plans; the X-ray caches built
    ended = collections.Counter()  # the statuses of the trials that ended here
    while True:
        while len(owner) < opts.jobs:
            trial, plan = next_trial(plans)
            if trial is None:
                break
            if held_elsewhere(trial):
                plan.ended(trial, None)
                continue
            build_cache(trial, opts, caches)
            launcher.start(trial)
            owner[trial] = plan
            plan.running += 1
        if not owner:
            summarize(ended)
            return
        trial, code = launcher.wait()
        plan = owner.pop(trial)
        plan.running -= 1
        row = finish(trial, code, opts)
        if row is not None:
            ended[row["status"]] += 1
        plan.ended(trial, row)


def summarize(ended):
    """One line on how the trials run by this sweep ended, by status (ok, diverged, oom, failed)."""
    if not ended:
        return
    order = ["ok", "diverged", "oom", "failed"]
    statuses = [s for s in order if ended[s]] + sorted(set(ended) - set(order))
    counts = ", ".join(f"{ended[s]} {s}" for s in statuses)
    n = sum(ended.values())
    print(f"sweep: {n} trial{'s' if n > 1 else ''} ended: {counts}" + (
        "; oom = out of memory: each train.log says what to lower, and a restart counts them as finished"
        if ended["oom"] else ""), flush=True)


def held_elsewhere(trial):
    """True, and says so, when another process holds the trial's run directory (say, a job of an earlier sweep
    still running): that process records the trial, so it is neither failed nor retried."""
    holder = rundir.lock_holder(trial.out)
    if holder:
        print(f"skipped {trial.label()}: {trial.out} is in use by {holder}", flush=True)
    return bool(holder)


def next_trial(plans):
    """The trial to start next and its setting's plan, or (None, None) when no setting has one ready."""
    for plan in sorted(plans, key=lambda p: p.running):  # a stable sort: ties keep the sweep's order
        trial = plan.next_trial()
        if trial is not None:
            return trial, plan
    return None, None


def build_cache(trial, opts, built):
    """Build the X-ray --cache a trial reads, here and once, before the trial starts: trials started together
    would each decode every image of the cohort into the same file. `built` holds the caches seen so far."""
    args = train.resolve(train.parse_args(trial.argv(opts)[2:]))
    if not args.cache or args.dataset == "synthetic":  # only the X-ray sets read a cache
        return
    # The cohort, hence the cache, depends on these; every other data flag is the same for all trials.
    key = (args.dataset, args.ratio, args.data_seed)
    if key in built:
        return
    print(f"{trial.label()}: preparing the {args.dataset} cache (ratio {args.ratio}, data seed "
          f"{args.data_seed}) in {args.cache}", flush=True)
    datasets.load(args)  # builds the cache when it is missing; when present, reads only the metadata
    built.add(key)


def finish(trial, code, opts):
    """After a trial ended: its final row; None if it lost its run directory to another process (its row is
    that process's to write); else a recorded failure (a crash must not be retried forever)."""
    # A refusal for a run directory in use shows as exit 2, or as a failed job under submitit.
    if code in (2, None) and held_elsewhere(trial):
        return None
    if code == 2:
        raise UsageError(f"{trial.label()} was refused by train.py: {log_line(trial, 'error:') or '(see train.log)'}")
    finals = [r for r in results.read_rows(opts.results, sweep_id=trial.sweep_id, run_dir=trial.out)
              if r["kind"] == "final"]
    if finals:
        if finals[-1]["status"] == "oom":
            print(f"{trial.label()}: {log_line(trial, 'out of memory') or 'out of memory'}; recorded as oom",
                  file=sys.stderr, flush=True)
        return finals[-1]
    row = dict(kind="failed", status="failed", sweep_id=trial.sweep_id, trial=trial.trial, seed=trial.seed,
               dataset=trial.setting.dataset, method=trial.setting.method, ratio=trial.setting.ratio,
               mask_fill=trial.setting.mask_fill, empty_mask=trial.setting.empty_mask, run_dir=trial.out,
               time=time.strftime("%Y-%m-%dT%H:%M:%S"), **trial.params)
    results.append_row(opts.results, row)
    print(f"{trial.label()} failed (exit {code}); recorded as failed, see {trial.out}/train.log", file=sys.stderr)
    return row


def log_line(trial, start):
    """The last line of the trial's train.log that starts with `start`; None without one (or without the log:
    under submitit, the job's output is in submitit's folder)."""
    try:
        with open(os.path.join(trial.out, "train.log"), errors="replace") as f:
            return ([l for l in f.read().splitlines() if l.startswith(start)] or [None])[-1]
    except FileNotFoundError:
        return None


# ----------------------------------------------------------------------------
# 3. command line

def parse_args(argv=None):
    # No abbreviations: with them, train.py's --seed would be read as the sweep's --seeds, silently.
    p = errors.ArgumentParser(prog="sweep.py", description=__doc__.split("\n")[0], allow_abbrev=False,
                              epilog="Any other flag (--epochs, --patience, --n-train, --device, ...) is "
                                     "passed to every train.py run unchanged.")
    p.add_argument("--benchmark", choices=sorted(optimizer.BENCHMARKS), help="run the optimiser on a test function")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--phase", nargs="+", choices=("search", "seeds"),
                   help="search: Bayesian search; seeds: the best (or the paper's) setting on new seeds; "
                        "both: --phase search seeds")
    p.add_argument("--dataset", "--datasets", dest="datasets", nargs="+", default=["synthetic"])
    p.add_argument("--ratio", "--ratios", dest="ratios", nargs="+", type=float, default=None,
                   help="default: train.py's per-dataset default")
    p.add_argument("--method", "--methods", dest="methods", nargs="+", default=None, help="names, or all")
    p.add_argument("--mask-fills", nargs="+", choices=("shuffle", "zero"), default=["shuffle"],
                   help="the masked method once per fill (zero: the paper's tables' 'Masked')")
    p.add_argument("--empty-masks", nargs="+", choices=("penalize", "skip"), default=None,
                   help="rsna: each setting once per choice of train.py's --empty-mask (penalize: the release; "
                        "skip: our correction); default: train.py's (penalize on rsna)")
    p.add_argument("--budget", type=int, default=25, help="search trials per setting (benchmark: evaluations)")
    p.add_argument("--n-init", type=int, default=5, help="random trials before the GP takes over")
    p.add_argument("--search-seed", type=int, default=0, help="training seed of the search trials")
    p.add_argument("--seeds", type=int, default=10, help="seeds phase: how many seeds")
    p.add_argument("--results", default=os.path.join("results", "results.csv"))
    p.add_argument("--jobs", type=int, default=1,
                   help="trials at once, over all settings (local: processes, each on one of the visible GPUs)")
    p.add_argument("--launcher", choices=("local", "slurm", "submitit-local"), default="local",
                   help="slurm: submit through submitit; submitit-local: the same path on this machine")
    p.add_argument("--gpus-per-job", type=int, default=1)
    p.add_argument("--cpus-per-job", type=int, default=4)
    p.add_argument("--time", type=int, default=24 * 60, help="minutes per job")
    s = p.add_argument_group("--launcher slurm only")
    s.add_argument("--partition", default=None)
    s.add_argument("--slurm-account", default=None, help="the account jobs are charged to (sbatch --account)")
    s.add_argument("--slurm-qos", default=None, help="quality of service (sbatch --qos)")
    s.add_argument("--mem", default=None, help="memory per job as sbatch --mem takes it: 16G, 16000M, ...")
    s.add_argument("--slurm-extra", nargs="+", default=[], metavar="KEY[=VALUE]",
                   help="more sbatch options, e.g. constraint=a100 mail-type=END exclusive")
    p.add_argument("--dry-run", action="store_true", help="print the trials it would run")
    opts, passthrough = p.parse_known_args(argv)
    opts.passthrough = passthrough
    return opts


def settings(opts):
    methods = list(losses.METHODS) if opts.methods in (None, ["all"]) else opts.methods
    for m in methods:
        if m not in losses.METHODS:
            raise UsageError(f"--methods {m!r} is unknown; choose from all, {', '.join(losses.METHODS)}")
    for dataset in opts.datasets:
        if dataset not in datasets.DEFAULT_RATIO:
            raise UsageError(f"--datasets {dataset!r} is unknown; choose from {', '.join(datasets.DEFAULT_RATIO)}")
        for ratio in opts.ratios or [datasets.DEFAULT_RATIO[dataset]]:
            for method in methods:
                for fill in (opts.mask_fills if method == "masked" else ["shuffle"]):
                    # Only RSNA has images without a mask (its negatives): elsewhere the choice changes nothing.
                    for empty in (opts.empty_masks if dataset == "rsna" and opts.empty_masks else [None]):
                        yield Setting(dataset, ratio, method, fill, empty)


# train.py flags the sweep sets for every trial itself: passed through too, the last one given would win.
SET_BY_SWEEP = {
    "--seed": "the sweep gives each trial its seed; pass --seeds N (seeds phase) or --search-seed N (search)",
    "--mask-fill": "pass the sweep's --mask-fills",
    "--empty-mask": "pass the sweep's --empty-masks",
    "--out": "the sweep names each run's directory", "--resume": "the sweep resumes every run",
    "--sweep-id": "the sweep names itself", "--trial": "the sweep numbers its trials",
}


def check_passthrough(opts):
    """Refuse a passed-through flag that would override what the sweep sets: its own per-trial flags, and in
    the search phase a hyperparameter the search chooses (every trial would run at the given value)."""
    given = {token.split("=", 1)[0] for token in opts.passthrough if token.startswith("--")}
    for flag, why in SET_BY_SWEEP.items():
        if flag in given:
            raise UsageError(f"{flag} is set by the sweep ({why}); drop it")
    if "search" in opts.phase:
        searched = {f"--{name.replace('_', '-')}" for setting in settings(opts)
                    for name in search_space(setting.dataset, setting.method)}
        overridden = sorted(given & searched)
        if overridden:
            raise UsageError(f"{overridden[0]} is searched in --phase search, so every trial would run at the "
                             f"value given; drop it, or narrow the range in sweep.RANGES")


def check(opts):
    """Refuse bad flags before any trial starts, including the flags passed through to train.py."""
    check_passthrough(opts)
    if opts.jobs < 1 or opts.budget < 1 or opts.seeds < 1:
        raise UsageError("--jobs, --budget and --seeds must be at least 1")
    slurm_only = {"--partition": opts.partition, "--slurm-account": opts.slurm_account,
                  "--slurm-qos": opts.slurm_qos, "--mem": opts.mem, "--slurm-extra": opts.slurm_extra}
    given = [flag for flag, value in slurm_only.items() if value]
    if given and opts.launcher != "slurm":
        raise UsageError(f"{given[0]} applies to --launcher slurm only; drop it or pass --launcher slurm")
    if opts.mem is not None and not re.fullmatch(r"\d+([KMGT]B?)?", opts.mem, re.IGNORECASE):
        raise UsageError(f"--mem {opts.mem!r} is not a memory size sbatch takes; pass e.g. 16G or 16000M")
    launch.slurm_extra(opts.slurm_extra)
    # A passed-through flag train.py's parser refuses ends here, in one line that points at train.py --help.
    for setting in settings(opts):  # each with its dataset: --score-images release, say, is X-ray's only
        train.resolve(train.parse_args(["--results", opts.results, *setting.train_argv(), *opts.passthrough]))
    results.check_file(opts.results)


def main(argv=None):
    opts = parse_args(argv)
    if opts.benchmark:
        optimizer.run_benchmark(opts.benchmark, opts.repeats, opts.budget)
        return 0
    try:
        if opts.phase is None:
            raise UsageError("pass --phase search or --phase seeds (or --benchmark NAME)")
        check(opts)
        plans = [Phases(setting, opts) for setting in settings(opts)]
        if opts.dry_run:
            for plan in plans:
                plan.preview()
        else:
            run_pool(plans, opts, launch.Launcher(opts))
    except UsageError as e:  # results.ResultsError too: e.g. a results file on a filesystem without locks
        return errors.report(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
