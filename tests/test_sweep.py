"""sweep.py's search and seeds phases: on tiny synthetic runs (recorded, resumable, concurrent), and with a fake
launcher for the pool's scheduling, run directories in use, X-ray caches, GPUs and Slurm options."""
import math
import os
import stat
import types

import pytest
import torch

import launch
import results
import sweep
from conftest import InProcessLauncher, narrow_resnet

# One xdist worker runs this whole file, so its module-scoped runs are trained once (pytest.ini).
pytestmark = pytest.mark.xdist_group("sweep")

# --no-probes: no test here is about probe rows, and each probe is a saliency scoring the trial would pay for.
TINY = ["--n-train", "8", "--batch-size", "4", "--n-eval", "8", "--epochs", "1", "--no-probes"]


@pytest.fixture(scope="module", autouse=True)
def one_thread_per_trial():
    """Each train.py process the sweep starts runs on one thread, as this process does (conftest.py): the
    launcher's default splits the machine's cores between --jobs, and beside the other xdist worker those
    threads spin on cores that are not free (several times the CPU time). setdefault keeps a value given."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        yield


def search(csv, *extra):
    return sweep.main(["--phase", "search", "--dataset", "synthetic", "--method", "actdiff", "--results", str(csv),
                       "--n-init", "2", *TINY, *extra])


def trials(csv):
    rows = results.read_rows(str(csv), sweep_id="search-synthetic-r1.0-actdiff-s0", kind="final")
    return {int(r["trial"]): (r["lr"], r["lam"], r["mask_blur"]) for r in rows}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """Three search trials, run in this process (InProcessLauncher) on the narrow stand-in network: the subject is
    the sweep's bookkeeping."""
    csv = tmp_path_factory.mktemp("sweep") / "results.csv"
    with pytest.MonkeyPatch.context() as mp, narrow_resnet():
        mp.setattr(launch, "Launcher", InProcessLauncher)
        assert search(csv, "--budget", "3") == 0
    return csv


def test_search_records_its_trials_with_distinct_points(searched):
    done = trials(searched)
    assert sorted(done) == [1, 2, 3] and len(set(done.values())) == 3
    space = sweep.search_space("synthetic", "actdiff")
    for lr, lam, blur in done.values():
        assert 1e-5 <= float(lr) <= 1e-2 and 1e-4 <= float(lam) <= 10 and 0 <= float(blur) <= 2
    assert set(space) == {"lr", "lam", "mask_blur"}


def test_restarting_continues_rather_than_repeats(searched, in_process_sweep, capsys):
    before = trials(searched)
    assert search(searched, "--budget", "3") == 0        # nothing left to do
    assert trials(searched) == before
    assert search(searched, "--budget", "4") == 0        # one more trial, the first three untouched
    after = trials(searched)
    assert sorted(after) == [1, 2, 3, 4] and all(after[t] == before[t] for t in before)


def test_seeds_phase_trains_the_best_trial_on_new_seeds(searched, in_process_sweep, narrow):
    assert sweep.main(["--phase", "seeds", "--dataset", "synthetic", "--method", "actdiff", "--results",
                       str(searched), "--seeds", "2", *TINY]) == 0
    finals = results.read_rows(str(searched), kind="final")
    best = max((r for r in finals if r["sweep_id"].startswith("search-")), key=lambda r: float(r["valid_auc"]))
    runs = [r for r in finals if r["sweep_id"] == "seeds-synthetic-r1.0-actdiff"]
    assert sorted(r["seed"] for r in runs) == ["1", "2"]                  # distinct from the search seed 0
    # the release's configs: search trials with patience 20, final models with train.py's 100
    assert {r["patience"] for r in finals if r["sweep_id"].startswith("search-")} == {"20"}
    assert {r["patience"] for r in runs} == {"100"}
    assert all((r["lr"], r["lam"], r["mask_blur"]) == (best["lr"], best["lam"], best["mask_blur"]) for r in runs)
    n = len(finals)
    assert sweep.main(["--phase", "seeds", "--dataset", "synthetic", "--method", "actdiff", "--results",
                       str(searched), "--seeds", "2", *TINY]) == 0      # finished seeds are skipped
    assert len(results.read_rows(str(searched), kind="final")) == n


def test_two_jobs_run_concurrently_without_corrupting_the_csv(tmp_path, capsys):
    csv = tmp_path / "results.csv"
    assert sweep.main(["--phase", "seeds", "--dataset", "synthetic", "--methods", "baseline",
                       "--results", str(csv), "--seeds", "2", "--jobs", "2", *TINY]) == 0
    events = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()
              if line.startswith("started") or "test AUC" in line]
    assert events[0].startswith("started") and events[1].startswith("started")  # two at once
    rows = results.read_rows(str(csv))
    assert len([r for r in rows if r["kind"] == "final"]) == 2
    assert len([r for r in rows if r["kind"] == "epoch"]) == 2
    assert all(len(r) == len(results.COLUMNS) and None not in r.values() for r in rows)


def test_submitit_local_launcher_runs_a_trial(tmp_path):
    csv = tmp_path / "results.csv"
    assert sweep.main(["--phase", "seeds", "--dataset", "synthetic", "--method", "baseline", "--results", str(csv),
                       "--seeds", "1", "--launcher", "submitit-local", *TINY]) == 0
    assert [r["status"] for r in results.read_rows(str(csv), kind="final")] == ["ok"]


def test_a_patience_passed_to_the_sweep_wins_in_both_phases():
    opts = sweep.parse_args(["--phase", "search", "--results", "r.csv", "--patience", "7"])
    setting = sweep.Setting("synthetic", 1.0, "actdiff")
    for trial in (1, None):
        argv = sweep.Trial(setting, "s", 0, {}, "out", trial=trial).argv(opts)
        assert train_args(argv).patience == 7


def test_empty_masks_make_two_rsna_settings_and_change_nothing_elsewhere():
    opts = sweep.parse_args(["--phase", "seeds", "--datasets", "rsna", "xray", "--methods", "actdiff",
                             "--empty-masks", "penalize", "skip"])
    names = [s.name for s in sweep.settings(opts)]
    assert names == ["rsna-r0.9-actdiff-penalize", "rsna-r0.9-actdiff-skip", "xray-r0.9-actdiff"]
    argv = [sweep.Trial(s, "x", 1, {}, "out").argv(opts) for s in sweep.settings(opts)]
    given = [a[a.index("--empty-mask") + 1] if "--empty-mask" in a else None for a in argv]
    assert given == ["penalize", "skip", None]  # xray: train.py's default


def train_args(argv):
    return sweep.train.parse_args(argv[2:])


def test_several_score_images_pass_through_to_every_trial_in_order(tmp_path):
    opts = sweep.parse_args(["--phase", "search", "--dataset", "rsna", "--method", "actdiff", "--results",
                             str(tmp_path / "r.csv"), "--score-images", "all", "release", "--epochs", "3"])
    sweep.check(opts)  # accepted: rsna has the release's subset
    argv = sweep.Trial(next(sweep.settings(opts)), "s", 0, {"lr": 1e-3}, "out", trial=1).argv(opts)
    args = train_args(argv)
    assert args.score_images == ["all", "release"] and args.epochs == 3


def test_every_method_has_its_hyperparameters_and_every_dataset_its_ranges():
    import datasets
    import protocol
    assert tuple(sweep.USES) == protocol.METHODS
    assert set(sweep.RANGES) == set(datasets.DATASETS)
    assert all(set(sweep.USES[m]) <= set(sweep.RANGES[d]) for m in sweep.USES for d in sweep.RANGES)


def test_a_dataset_without_ranges_is_searched_over_the_synthetic_ones_with_one_note(monkeypatch, capsys):
    monkeypatch.setattr(sweep, "RANGES", {k: v for k, v in sweep.RANGES.items() if k != "rsna"})
    monkeypatch.setattr(sweep, "_noted", set())
    assert sweep.search_space("rsna", "rrr") == sweep.search_space("synthetic", "rrr")
    assert sweep.search_space("rsna", "baseline") == {"lr": sweep.RANGES["synthetic"]["lr"]}
    assert capsys.readouterr().err.count("note: sweep.RANGES has no search ranges for rsna") == 1


def test_dry_run_prints_without_running(tmp_path, capsys):
    csv = tmp_path / "results.csv"
    assert sweep.main(["--phase", "seeds", "--methods", "all", "--results", str(csv), "--seeds", "2",
                       "--dry-run", *TINY]) == 0
    out = capsys.readouterr().out
    assert out.count("would run:") == 12 and not csv.exists()


def test_dry_run_of_a_search_names_only_the_points_that_need_no_result(tmp_path, capsys):
    assert sweep.main(["--phase", "search", "seeds", "--method", "actdiff", "--results", str(tmp_path / "r.csv"),
                       "--budget", "5", "--n-init", "2", "--dry-run", *TINY]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("--trial ")[1].split()[0] for line in out if line.startswith("would run:")] == ["1", "2"]
    assert out[-1] == ("search-synthetic-r1.0-actdiff-s0: then 3 trials suggested from the results before them, "
                       "then the seeds phase with the best of them")


@pytest.mark.parametrize("argv,needle", [
    (["--phase", "seeds", "--methods", "dropout"], "--methods"),
    (["--phase", "seeds", "--lr", "-1"], "--lr"),
    (["--method", "baseline"], "--phase"),
    (["--phase", "seeds", "--slurm-account", "lab"], "--slurm-account"),          # Slurm options need slurm
    (["--phase", "seeds", "--launcher", "slurm", "--slurm-extra", "=a100"], "--slurm-extra"),
    (["--phase", "seeds", "--launcher", "slurm", "--slurm-extra=--exclusive"], "--slurm-extra"),  # dashes given
    (["--phase", "seeds", "--launcher", "slurm", "--mem", "lots"], "--mem"),
    (["--phase", "seeds", "--seed", "3"], "--seed is set by the sweep"),           # not read as --seeds 3
    (["--phase", "seeds", "--mask-fill=zero"], "--mask-fill is set by the sweep"),
    (["--phase", "seeds", "--out", "elsewhere"], "--out is set by the sweep"),
    (["--phase", "search", "--method", "actdiff", "--lam", "2"], "--lam is searched"),  # the GP would be fooled
])
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, argv, needle):
    assert sweep.main([*argv, "--results", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err


def test_slurm_launcher_without_slurm_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun here
    assert sweep.main(["--phase", "seeds", "--launcher", "slurm", "--results", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--launcher slurm" in err


# ---- the pool, with a fake launcher: no training, each "run" appends the final row train.py would

def fake_valid_auc(params):
    """A made-up score with its best at lr = 3e-4, so that the searches have something to find."""
    return round(1 - abs(math.log10(params.get("lr", 1e-3)) + 3.5) / 10, 6)


class FakeLauncher:
    """Launcher's interface. Trials end in the order they started (exit code from `codes`, default 0); an ending
    trial with code 0 gets a final row, one with code 4 (out of memory) a final row with status=oom, as train.py
    writes them. `busy` is how many trials were running at each wait."""

    def __init__(self, opts, codes=None, events=None):
        self.opts, self.codes, self.events = opts, codes or {}, [] if events is None else events
        self.running, self.started, self.busy = [], [], []

    def start(self, trial):
        self.running.append(trial)
        self.started.append(trial.label())
        self.events.append(("start", trial))

    def wait(self):
        self.busy.append(len(self.running))
        trial = self.running.pop(0)
        code = self.codes.get(trial.label(), 0)
        if code in (0, 4):
            s = trial.setting
            scores = dict(valid_auc=fake_valid_auc(trial.params), test_auc=0.5) if code == 0 else {}
            results.append_row(self.opts.results, dict(
                kind="final", status="ok" if code == 0 else "oom", sweep_id=trial.sweep_id, trial=trial.trial,
                seed=trial.seed, dataset=s.dataset, ratio=s.ratio, method=s.method, mask_fill=s.mask_fill,
                run_dir=trial.out, **scores, **trial.params))
        return trial, code


@pytest.fixture
def fake(monkeypatch):
    """sweep.main with FakeLauncher (the last one made is fake.launcher) and no run directory in use."""
    made = types.SimpleNamespace(codes={}, events=[], launcher=None)

    def launcher(opts):
        made.launcher = FakeLauncher(opts, made.codes, made.events)
        return made.launcher
    monkeypatch.setattr(launch, "Launcher", launcher)
    monkeypatch.setattr(sweep.rundir, "lock_holder", lambda out: None)
    return made


def seeds(csv, *extra):
    return sweep.main(["--phase", "seeds", "--methods", "baseline", "masked", "--results", str(csv), *extra])


def test_one_pool_keeps_every_slot_busy_across_settings(tmp_path, fake):
    assert seeds(tmp_path / "r.csv", "--seeds", "3", "--jobs", "2") == 0
    # 2 settings x 3 seeds: draining each setting before the next would leave a slot idle at its last seed
    assert fake.launcher.busy == [2, 2, 2, 2, 2, 1]
    assert sorted(fake.launcher.started) == sorted(f"seeds-synthetic-r1.0-{m} seed {s}"
                                                   for m in ("baseline", "masked") for s in (1, 2, 3))
    assert seeds(tmp_path / "r.csv", "--seeds", "3", "--jobs", "2") == 0        # all recorded: nothing runs again
    assert fake.launcher.started == []


def test_interleaved_searches_suggest_what_each_search_alone_would(tmp_path, fake):
    """With a slot per setting, each search runs one trial at a time, as a lone search with --jobs 1 does."""
    def search(csv, methods, jobs):
        assert sweep.main(["--phase", "search", "--methods", *methods, "--results", str(csv), "--budget", "4",
                           "--n-init", "2", "--jobs", jobs]) == 0
        return {(r["sweep_id"], r["trial"]): (r["lr"], r["mask_blur"]) for r in results.read_rows(str(csv))}
    together = search(tmp_path / "both.csv", ["baseline", "masked"], "2")
    assert fake.launcher.busy == [2] * 7 + [1]
    alone = {**search(tmp_path / "baseline.csv", ["baseline"], "1"), **search(tmp_path / "masked.csv", ["masked"], "1")}
    assert together == alone and len(together) == 8


def test_a_run_directory_in_use_is_skipped_not_failed(tmp_path, fake, monkeypatch, capsys):
    csv = tmp_path / "r.csv"
    held = os.path.join(str(tmp_path), "runs", "synthetic-r1.0-baseline-s2")
    monkeypatch.setattr(sweep.rundir, "lock_holder", lambda out: "pid 123 on host node7" if out == held else None)
    assert seeds(csv, "--methods", "baseline", "--seeds", "3") == 0
    assert fake.launcher.started == ["seeds-synthetic-r1.0-baseline seed 1", "seeds-synthetic-r1.0-baseline seed 3"]
    assert f"skipped seeds-synthetic-r1.0-baseline seed 2: {held} is in use by pid 123 on host node7" in \
        capsys.readouterr().out.splitlines()
    assert [r["seed"] for r in results.read_rows(str(csv))] == ["1", "3"]      # no failed row for seed 2


def test_a_held_search_trial_counts_against_the_budget_and_is_not_retried(tmp_path, fake, monkeypatch):
    monkeypatch.setattr(sweep.rundir, "lock_holder", lambda out: "pid 9 on host a" if out.endswith("-t2") else None)
    assert sweep.main(["--phase", "search", "--method", "baseline", "--results", str(tmp_path / "r.csv"),
                       "--budget", "3", "--n-init", "2"]) == 0
    assert fake.launcher.started == ["search-synthetic-r1.0-baseline-s0 trial 1",
                                     "search-synthetic-r1.0-baseline-s0 trial 3"]


def test_search_seed_names_its_own_search_and_trains_every_trial_with_that_seed(tmp_path, fake):
    assert sweep.main(["--phase", "search", "--method", "baseline", "--results", str(tmp_path / "r.csv"),
                       "--budget", "2", "--n-init", "2", "--search-seed", "3"]) == 0
    assert fake.launcher.started == ["search-synthetic-r1.0-baseline-s3 trial 1",
                                     "search-synthetic-r1.0-baseline-s3 trial 2"]
    assert {r["seed"] for r in results.read_rows(str(tmp_path / "r.csv"))} == {"3"}


@pytest.mark.parametrize("holder,exit_code", [("pid 7 on host b", 0), (None, 2)])
def test_exit_2_is_a_lost_race_for_the_directory_or_a_refusal(tmp_path, fake, monkeypatch, capsys, holder, exit_code):
    """Exit 2 with the directory now held: another process won it, skip the trial (once). Without a holder,
    train.py refused the flags: the sweep stops with train.py's one-line reason."""
    loser = "seeds-synthetic-r1.0-baseline seed 1"
    fake.codes[loser] = 2
    monkeypatch.setattr(sweep.rundir, "lock_holder", lambda out: holder if loser in fake.launcher.started else None)
    out_dir = tmp_path / "runs" / "synthetic-r1.0-baseline-s1"
    out_dir.mkdir(parents=True)
    (out_dir / "train.log").write_text("config: ...\nerror: --lr -1.0 is invalid; pass a positive learning rate\n")
    assert seeds(tmp_path / "r.csv", "--methods", "baseline", "--seeds", "2") == exit_code
    out, err = capsys.readouterr()
    assert fake.launcher.started.count(loser) == 1
    assert all(r["kind"] != "failed" for r in results.read_rows(str(tmp_path / "r.csv")))
    if holder:
        assert f"skipped {loser}: {out_dir} is in use by {holder}" in out.splitlines()
    else:
        assert err.strip().splitlines() == [f"error: {loser} was refused by train.py: error: --lr -1.0 is invalid; "
                                            f"pass a positive learning rate"]


def test_a_seed_out_of_memory_ends_its_setting_here_and_a_restart_counts_it_as_finished(tmp_path, fake, capsys):
    """rrr runs out of memory on seed 1: its seed 2 would need as much, so it is not started; masked goes on. A
    restarted sweep does not retry seed 1 (it would run out again) and runs seed 2."""
    fake.codes["seeds-synthetic-r1.0-rrr seed 1"] = 4
    csv = tmp_path / "r.csv"
    assert seeds(csv, "--methods", "rrr", "masked", "--seeds", "2") == 0
    assert fake.launcher.started == ["seeds-synthetic-r1.0-rrr seed 1", "seeds-synthetic-r1.0-masked seed 1",
                                     "seeds-synthetic-r1.0-masked seed 2"]
    out = capsys.readouterr().out.splitlines()
    assert "synthetic-r1.0-rrr: out of memory; its other trials are not started (each needs as much)" in out
    assert out[-1].startswith("sweep: 3 trials ended: 2 ok, 1 oom; oom = out of memory")
    assert seeds(csv, "--methods", "rrr", "masked", "--seeds", "2") == 0
    assert fake.launcher.started == ["seeds-synthetic-r1.0-rrr seed 2"]
    assert [(r["method"], r["seed"], r["status"]) for r in results.read_rows(str(csv), kind="final")] == [
        ("rrr", "1", "oom"), ("masked", "1", "ok"), ("masked", "2", "ok"), ("rrr", "2", "ok")]


def test_a_search_trial_out_of_memory_counts_against_the_budget_and_is_not_resumed(tmp_path, fake):
    fake.codes["search-synthetic-r1.0-baseline-s0 trial 1"] = 4
    argv = ["--phase", "search", "--method", "baseline", "--results", str(tmp_path / "r.csv"), "--budget", "3",
            "--n-init", "2"]
    assert sweep.main(argv) == 0
    assert fake.launcher.started == ["search-synthetic-r1.0-baseline-s0 trial 1"]
    assert sweep.main(argv) == 0
    assert fake.launcher.started == ["search-synthetic-r1.0-baseline-s0 trial 2",
                                     "search-synthetic-r1.0-baseline-s0 trial 3"]


FAKE_OOM = """
import torch
import losses


def out_of_memory(*args):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


losses.METHODS["rrr"] = out_of_memory
"""


def test_train_py_out_of_memory_through_the_local_launcher_is_recorded_as_oom(tmp_path, monkeypatch, capsys):
    """A real train.py process whose rrr training step raises CUDA's out-of-memory error (a sitecustomize
    module on PYTHONPATH swaps the method in before train.py starts): exit 4 and an oom row, which the sweep
    reports with train.py's advice and counts."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(FAKE_OOM)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "site"), launch.REPO]))
    csv = tmp_path / "r.csv"
    assert sweep.main(["--phase", "seeds", "--methods", "rrr", "--results", str(csv), "--seeds", "1", *TINY]) == 0
    out, err = capsys.readouterr()
    assert [(r["method"], r["status"]) for r in results.read_rows(str(csv), kind="final")] == [("rrr", "oom")]
    assert "seeds-synthetic-r1.0-rrr seed 1: out of memory (CUDA) in training: rrr, batch 4, 28x28 px, fp32; " \
           "lower --batch-size (4), or pass --amp bf16" in err
    assert "sweep: 1 trial ended: 1 oom" in out


def test_each_xray_cache_is_built_once_before_the_trials_that_read_it(tmp_path, fake, monkeypatch):
    monkeypatch.setattr(sweep.datasets, "load", lambda args: fake.events.append(
        ("build", (args.dataset, args.ratio, args.data_seed))))
    assert sweep.main(["--phase", "seeds", "--datasets", "xray", "--ratios", "0.9", "0.5", "--methods", "baseline",
                       "masked", "--seeds", "2", "--jobs", "3", "--results", str(tmp_path / "r.csv"),
                       "--cache", str(tmp_path / "cache")]) == 0
    builds = [key for kind, key in fake.events if kind == "build"]
    # the cohort is drawn with the data seed, which defaults to the training seed: one cache per ratio and seed
    assert sorted(builds) == sorted({("xray", r, s) for r in (0.9, 0.5) for s in (1, 2)})
    for i, (kind, trial) in enumerate(fake.events):
        if kind == "start":
            assert ("build", ("xray", trial.setting.ratio, trial.seed)) in fake.events[:i]
    assert len(fake.launcher.started) == 8


# ---- which GPU a local job sees

@pytest.mark.parametrize("visible,count,jobs,extra,expected", [
    ("2,3", 4, 4, [], ["2", "3", "2", "3"]),                 # the user's GPUs, shared when jobs outnumber them
    (None, 2, 2, [], ["0", "1"]),                            # no variable: every GPU torch sees
    (None, 0, 2, [], [None, None]),                          # no GPU: nothing set
    ("GPU-5c3d,GPU-a1b2", 2, 3, [], ["GPU-5c3d", "GPU-a1b2", "GPU-5c3d"]),  # UUIDs pass through
    (None, 2, 2, ["--device", "cuda:1"], [None, None]),      # a device named for every trial keeps every GPU
])
def test_each_job_slot_gets_one_visible_gpu(tmp_path, monkeypatch, visible, count, jobs, extra, expected):
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    launcher = launch.Launcher(sweep.parse_args(["--jobs", str(jobs), "--results", str(tmp_path / "r.csv"), *extra]))
    assert [launcher.env(slot).get("CUDA_VISIBLE_DEVICES") for slot in range(jobs)] == expected


# ---- Slurm, through submitit, with stand-ins for srun and sbatch

def test_slurm_options_reach_the_sbatch_script(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("srun", "exit 0"), ("sbatch", "echo Submitted batch job 42")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    opts = sweep.parse_args(["--phase", "seeds", "--launcher", "slurm", "--partition", "gpu", "--slurm-account", "lab",
                             "--slurm-qos", "high", "--mem", "16G", "--slurm-extra", "constraint=a100",
                             "mail-type=END", "exclusive", "--results", str(tmp_path / "r.csv")])
    sweep.check(opts)
    trial = sweep.Trial(sweep.Setting("synthetic", 1.0, "baseline"), "seeds-x", 1, {}, str(tmp_path / "run"))
    launch.Launcher(opts).start(trial)
    script = next((tmp_path / "submitit").glob("42_submission.sh")).read_text().splitlines()
    for line in ("--partition=gpu", "--account=lab", "--qos=high", "--mem=16G", "--constraint=a100",
                 "--mail-type=END", "--exclusive", "--time=1440", "--cpus-per-task=4", "--gpus-per-node=1"):
        assert f"#SBATCH {line}" in script
