"""Nothing recorded is lost: resume after SIGKILL, concurrent writers, torn rows, bad input."""
import csv
import importlib
import multiprocessing
import os
import random
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import torch
from tqdm import tqdm

import memory
import results
import rundir
import train
from test_datasets import write_release

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOLATILE = {"time", "run_id", "seconds", "run_dir", "saliency_seconds"}
# The smallest synthetic run: 2 training steps per epoch (8 images, batches of 4), 16 images per eval split.
TINY = ["--n-train", "8", "--batch-size", "4", "--n-eval", "16"]
QUICK = [*TINY, "--epochs", "3", "--method", "adversarial", "--disc-ratio", "2", "--no-probes",
         "--checkpoint-every", "0"]  # a checkpoint after every epoch: kills land between checkpoints


def final_row(path):
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "final"]
    assert len(rows) == 1
    return {k: v for k, v in rows[0].items() if k not in VOLATILE}


def train_to_be_killed(argv):
    """train.py's process, forked: its exit code is train.cli's. tqdm's default lock is a multiprocessing
    semaphore, which a killed process would leave behind (the resource tracker warns of it at exit)."""
    tqdm.set_lock(threading.RLock())
    sys.exit(train.cli(argv))


def test_sigkill_at_random_moments_then_resume_gives_the_same_final_row(tmp_path, monkeypatch):
    start = time.monotonic()
    assert train.cli(["--results", str(tmp_path / "ref.csv"), "--out", str(tmp_path / "ref"), *QUICK]) == 0
    # Each kill lands at a random moment within a quarter of a run's length (the reference run's) after the attempt
    # starts: three kills together get through at most 3/4 of the work, whatever this machine's speed, so all three
    # land in a running process.
    longest_wait = (time.monotonic() - start) / 4
    argv = ["--results", str(tmp_path / "killed.csv"), "--out", str(tmp_path / "killed"), "--resume", *QUICK]
    # Each attempt is a process of its own, forked from a server that has imported train.py once: a fresh
    # interpreter per attempt would spend most of the test importing torch.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as this process (conftest): the same numbers need the same threads
    processes = multiprocessing.get_context("forkserver")
    processes.set_forkserver_preload(["train"])
    rng = random.Random(0)
    kills = 0
    for attempt in range(8):
        proc = processes.Process(target=train_to_be_killed, args=(argv,))
        proc.start()
        if kills < 3:
            time.sleep(rng.uniform(0.0, longest_wait))
            if proc.is_alive():
                proc.kill()  # SIGKILL
                kills += 1
        proc.join(timeout=300)
        if proc.exitcode == 0:
            break
    assert kills == 3
    assert final_row(tmp_path / "killed.csv") == final_row(tmp_path / "ref.csv")
    with open(tmp_path / "killed.csv", newline="") as f:
        epochs = [r["epoch"] for r in csv.DictReader(f) if r["kind"] == "epoch"]
    assert epochs == ["1", "2", "3"]  # every epoch recorded exactly once


class Killed(BaseException):
    """Stands for the process dying: nothing in train.py catches it."""


def test_a_kill_after_the_first_row_and_before_its_checkpoint_is_resumed_without_a_duplicate(tmp_path,
                                                                                              monkeypatch, narrow):
    argv = ["--results", str(tmp_path / "r.csv"), "--out", str(tmp_path / "run"), "--resume", *TINY,
            "--epochs", "2", "--checkpoint-every", "0"]
    save = rundir.save_atomic

    def die_at_the_first_epoch_checkpoint(obj, path):
        if "model" in obj:
            raise Killed
        save(obj, path)

    monkeypatch.setattr(rundir, "save_atomic", die_at_the_first_epoch_checkpoint)
    with pytest.raises(Killed):
        train.cli(argv)
    got_out = [(r["kind"], r["epoch"]) for r in results.read_rows(str(tmp_path / "r.csv"))]
    assert got_out == [("epoch", "1"), ("probe", "1")]  # the epoch's row and its probe got out
    monkeypatch.setattr(rundir, "save_atomic", save)
    assert train.cli(argv) == 0
    rows = results.read_rows(str(tmp_path / "r.csv"))
    assert [(r["kind"], r["epoch"]) for r in rows[:4]] == [("epoch", "1"), ("probe", "1"), ("epoch", "2"),
                                                           ("probe", "2")]  # epoch 1 redone, not recorded twice
    assert rows[4]["kind"] == "final" and len(rows) == 5 and len({r["run_id"] for r in rows}) == 1

@pytest.fixture
def finished(tmp_path, capsys):
    """A finished one-epoch run started with --resume: (its argv, its results CSV's bytes)."""
    argv = ["--results", str(tmp_path / "r.csv"), "--out", str(tmp_path / "run"), "--resume", *TINY,
            "--epochs", "1", "--no-probes"]
    assert train.cli(argv) == 0
    capsys.readouterr()
    return argv, (tmp_path / "r.csv").read_bytes()


def test_resuming_a_finished_run_does_nothing(tmp_path, capsys, finished):
    argv, before = finished
    assert train.cli(argv) == 0
    assert "finished already" in capsys.readouterr().out
    assert (tmp_path / "r.csv").read_bytes() == before


def test_resume_with_another_configuration_is_refused(tmp_path, capsys, finished):
    argv, before = finished
    assert train.cli(argv + ["--lr", "0.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lr" in err and "another configuration" in err
    assert (tmp_path / "r.csv").read_bytes() == before


def test_flags_that_change_only_the_scoring_and_a_marker_of_older_code_resume_as_the_same_run(
        tmp_path, capsys, finished):
    """--score-size and --score-images change no training. Older code stored image_size 224 for the synthetic task,
    which never reads it (current code: None), and knew no score_images, score_size or valid_id_fraction: its
    finished runs' markers are the same runs, not another configuration."""
    argv, before = finished
    assert train.cli(argv + ["--score-size", "train", "--score-images", "all", "all"]) == 0
    path = tmp_path / "run" / rundir.CHECKPOINT
    marker = torch.load(path, weights_only=False)
    old = {k: v for k, v in marker["config"].items() if k not in ("score_images", "score_size", "valid_id_fraction")}
    torch.save(dict(marker, config=dict(old, image_size=224)), path)
    assert train.cli(argv) == 0
    assert capsys.readouterr().out.count("finished already") == 2
    assert (tmp_path / "r.csv").read_bytes() == before


WRITER = textwrap.dedent("""
    import sys, results
    for i in range(200):
        results.append_row(sys.argv[1], {"kind": "epoch", "run_id": f"w{sys.argv[2]}", "epoch": i,
                                         "method": "x" * 300})
""")


def test_eight_concurrent_writers_leave_1600_whole_rows(tmp_path, capsys):
    path = str(tmp_path / "r.csv")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, path, str(w)], cwd=REPO) for w in range(8)]
    reads = 0
    while any(p.poll() is None for p in procs):  # a reader running meanwhile never sees a partial row
        rows = results.read_rows(path) if os.path.exists(path) else []
        assert all(r["method"] == "x" * 300 and r["kind"] == "epoch" for r in rows)
        reads += 1
    assert all(p.wait() == 0 for p in procs)
    assert reads > 1 and "partial" not in capsys.readouterr().err
    rows = results.read_rows(path)
    assert len(rows) == 1600
    for w in range(8):
        assert [r["epoch"] for r in rows if r["run_id"] == f"w{w}"] == [str(i) for i in range(200)]


def test_a_torn_last_row_is_moved_aside_not_lost(tmp_path, capsys):
    path = str(tmp_path / "r.csv")
    results.append_row(path, {"kind": "epoch", "epoch": 1})
    with open(path, "a") as f:
        f.write("2026-01-01T00:00:00,run-x,ep")  # a writer killed mid-row
    assert len(results.read_rows(path)) == 1  # readers skip it
    results.append_row(path, {"kind": "epoch", "epoch": 2})
    assert "partial row" in capsys.readouterr().err
    assert [r["epoch"] for r in results.read_rows(path)] == ["1", "2"]
    assert open(path + ".torn").read() == "2026-01-01T00:00:00,run-x,ep\n"


def test_a_report_interrupted_while_written_leaves_the_old_one_whole_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "tables.md"
    results.write_atomic(str(path), "old table\n")

    def fail(fd):
        raise KeyboardInterrupt  # the writer stopped after the text, before it reached the disk
    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(KeyboardInterrupt):
        results.write_atomic(str(path), "new table, half written\n")
    assert path.read_text() == "old table\n"
    assert os.listdir(tmp_path) == ["tables.md"]


# ------------------------------------------------------------------ bad input: exit 2, one line, nothing written

def _release(tmp_path, edit):
    root = tmp_path / "release"
    root.mkdir()
    write_release(root, n_per_class=24)
    edit(root)
    return ["--data-root", str(root), "--n-train", "32", "--n-eval", "16"]


def _bad_size(root):
    np.save(root / "distractor1_img_0.npy", np.zeros((32, 32), np.float32))


def _bad_mask(root):
    np.save(root / "distractor1_seg_3.npy", np.zeros((28, 14), np.float32))


def _bad_label(root):
    text = (root / "distractor1_labels.csv").read_text().splitlines()
    text[2] = text[2].rsplit(",", 1)[0] + ",2"
    (root / "distractor1_labels.csv").write_text("\n".join(text) + "\n")


def _one_class(root):
    text = (root / "distractor2_labels.csv").read_text().splitlines()
    rows = [l.rsplit(",", 1)[0] + ",0" for l in text[1:]]
    (root / "distractor2_labels.csv").write_text("\n".join(text[:1] + rows) + "\n")


BAD = {
    "results file is not a CSV": (lambda t: ["--results", str(t / "bin.csv")], "--results"),
    "results file has another header": (lambda t: ["--results", str(t / "other.csv")], "--results"),
    "results directory unwritable": (lambda t: ["--results", str(t / "afile" / "r.csv")], "--results"),
    "run directory unwritable": (lambda t: ["--out", str(t / "afile" / "run")], "--out"),
    "checkpoint does not load": (lambda t: ["--out", str(t / "badrun"), "--resume"], "checkpoint.pt"),
    "resume without --out": (lambda t: ["--resume"], "--out"),
    "a device torch does not know": (lambda t: ["--device", "gpu0"], "--device gpu0: not a device"),
    "images of the wrong size": (lambda t: _release(t, _bad_size), "28x28"),
    "masks that do not match images": (lambda t: _release(t, _bad_mask), "mask"),
    "labels outside 0/1": (lambda t: _release(t, _bad_label), "classes outside"),
    "a split with one class": (lambda t: _release(t, _one_class), "class 1"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, case):
    (tmp_path / "bin.csv").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "other.csv").write_text("x,y\n1,2\n")
    (tmp_path / "afile").write_text("not a directory")
    (tmp_path / "badrun").mkdir()
    (tmp_path / "badrun" / "checkpoint.pt").write_bytes(b"\x80\x02 truncated")
    path = tmp_path / "r.csv"
    results.append_row(str(path), {"kind": "final"})
    # Every file, in every folder; a run directory's .lock (an empty flock file, kept by design) aside.
    files = lambda: {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != rundir.LOCK}
    make_argv, needle = BAD[case]
    argv = make_argv(tmp_path)  # writes the case's bad input files first
    snapshot = files()
    code = train.cli(["--results", str(path), "--epochs", "1", "--n-train", "32", "--n-eval", "16", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error:") and needle in err, err
    assert files() == snapshot
    assert not list(tmp_path.glob("runs"))


@pytest.mark.parametrize("argv,needle", [([*TINY, "--ratio", "1.5"], "--ratio 1.5"),
                                         (["--dataset", "xray", "--method", "baseline"], "--nih-dir")])
def test_a_run_stopped_by_its_data_flags_or_folders_leaves_no_directory_behind(tmp_path, capsys, monkeypatch, argv,
                                                                               needle):
    """The run directory and the results folder are checked before the data loads but made only after it: an
    --out (and a --results folder) that did not exist still do not."""
    monkeypatch.delenv("NIH_DIR", raising=False)
    out, csv = tmp_path / "new" / "run", tmp_path / "fresh" / "r.csv"
    code = train.cli(["--results", str(csv), "--out", str(out), "--epochs", "1", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("entry,argv", [
    ("train.cli", ["--amp", "fp16"]), ("sweep.main", ["--phase", "seeds", "--dataset", "synthetic", "--amp", "fp16"]),
    ("saliency.cli", ["--run", "x", "--saliency", "smooth"]), ("plots.cli", ["--kind", "every"]),
    ("diagnosis.cli", ["--results", "r.csv", "--bootstrap", "many"]), ("bench.cli", ["--size", "32"]),
    ("datasets.cli", ["--figure"]), ("results.cli", ["--upgrade"]), ("train.cli", ["--no-such-flag"])])
def test_a_flag_argparse_itself_refuses_is_one_line_naming_the_help_too(capsys, entry, argv):
    """A wrong choice, type or count, or an unknown flag, is refused by argparse before our own checks run: one
    line naming the flag, and which --help lists the flags (train.py's for the flags sweep.py passes on), exit
    2; not the whole usage first."""
    module, function = entry.split(".")
    with pytest.raises(SystemExit) as stop:
        getattr(importlib.import_module(module), function)(argv)
    err = capsys.readouterr().err
    target = "train" if module == "sweep" else module
    assert stop.value.code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert err.rstrip().endswith(f"; see {target}.py --help"), err


def test_non_finite_loss_records_diverged_and_exits_3(tmp_path):
    path = tmp_path / "r.csv"
    code = train.cli(["--results", str(path), "--out", str(tmp_path / "run"), *TINY, "--epochs", "2", "--no-probes",
                      "--method", "gradmask", "--lam", "1e38", "--lr", "10"])
    assert code == 3
    rows = results.read_rows(str(path), kind="final")
    assert len(rows) == 1 and rows[0]["status"] == "diverged"


# ------------------------------------------------------------------ out of memory: exit 4, one line, a row, resumable

CUDA_OOM = "CUDA out of memory. Tried to allocate 2.00 GiB"


def test_out_of_memory_is_one_line_a_row_and_exit_4_and_the_resumed_run_ends_as_if_it_never_ran_out(
        tmp_path, capsys, monkeypatch, narrow):
    quick = [*TINY, "--epochs", "2", "--checkpoint-every", "0", "--no-probes"]
    assert train.cli(["--results", str(tmp_path / "ref.csv"), "--out", str(tmp_path / "ref"), *quick]) == 0
    argv = ["--results", str(tmp_path / "r.csv"), "--out", str(tmp_path / "run"), "--resume", *quick]
    step, steps = train.train_step, []

    def out_of_memory_in_epoch_2(*args):  # 8 images in batches of 4: epoch 2 starts at the third step
        steps.append(1)
        if len(steps) == 3:
            raise torch.OutOfMemoryError(CUDA_OOM)
        return step(*args)

    monkeypatch.setattr(train, "train_step", out_of_memory_in_epoch_2)
    capsys.readouterr()
    assert train.cli(argv) == 4
    assert capsys.readouterr().err.strip().splitlines() == [
        "out of memory (CUDA) in training: baseline, batch 4, 28x28 px, fp32; lower --batch-size (4), or pass "
        "--amp bf16 (python bench.py --memory lists what each method needs)"]
    rows = results.read_rows(str(tmp_path / "r.csv"))
    assert [(r["kind"], r["epoch"], r["status"]) for r in rows] == [("epoch", "1", "ok"), ("final", "", "oom")]
    assert rows[1]["method"] == "baseline" and rows[1]["test_auc"] == "" and rows[0]["run_id"] == rows[1]["run_id"]
    # Resumed with the same flags (say, once the GPU is free), it goes on from epoch 1's checkpoint.
    monkeypatch.setattr(train, "train_step", step)
    assert train.cli(argv) == 0
    rows = results.read_rows(str(tmp_path / "r.csv"))
    assert [(r["kind"], r["epoch"], r["status"]) for r in rows] == [
        ("epoch", "1", "ok"), ("final", "", "oom"), ("epoch", "2", "ok"), ("final", "2", "ok")]
    assert len({r["run_id"] for r in rows}) == 1
    assert final_rows(tmp_path / "r.csv", "ok") == final_rows(tmp_path / "ref.csv", "ok")


def final_rows(path, status):
    return [{k: v for k, v in r.items() if k not in VOLATILE}
            for r in results.read_rows(str(path), kind="final", status=status)]


def test_out_of_memory_while_scoring_saliency_names_what_scoring_uses(tmp_path, capsys, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(train.saliency, "score", out_of_memory)
    assert train.cli(["--results", str(tmp_path / "r.csv"), "--out", str(tmp_path / "run"), *TINY,
                      "--epochs", "1", "--no-probes", "--method", "rrr"]) == 4
    err = capsys.readouterr().err.strip()
    assert err.startswith("out of memory (cpu) in saliency scoring: rrr, 64 images at a time, 28x28 px, fp32;"), err
    assert [(r["kind"], r["status"]) for r in results.read_rows(str(tmp_path / "r.csv"))] == [
        ("epoch", "ok"), ("final", "oom")]


def raised_in(function_name):
    """An out-of-memory error whose traceback passes through a function of that name."""
    def raise_it():
        raise torch.OutOfMemoryError(CUDA_OOM)
    raise_it.__code__ = raise_it.__code__.replace(co_name=function_name)
    try:
        raise_it()
    except torch.OutOfMemoryError as e:
        return e


@pytest.mark.parametrize("where,amp,fix", [
    ("train_epoch", "fp32", "in training: rrr, batch 16, 128x128 px, fp32; lower --batch-size (16) or "
                            "--image-size (128), or pass --amp bf16"),
    ("evaluate", "bf16", "in evaluation: rrr, batch 16, 128x128 px, bf16; lower --batch-size (16) or "
                         "--image-size (128) ("),
    ("measure", "bf16", "in saliency scoring: rrr, 64 images at a time, 224x224 px, fp32; lower --score-size (224 px"),
])
def test_the_advice_names_what_uses_memory_where_it_ran_out(where, amp, fix):
    """X-ray trains at 128 px and scores saliency at 224, 64 images at a time in fp32 whatever --amp says."""
    args = train.resolve(train.parse_args(["--dataset", "xray", "--method", "rrr", "--device", "cpu", "--amp", amp]))
    assert fix in memory.advice(raised_in(where), args)


@pytest.mark.parametrize("error,out_of_memory", [
    (torch.OutOfMemoryError(CUDA_OOM), True),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1125899906842624 bytes"), True),
    (RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"), True),
    (MemoryError(), True),
    (RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 5x5)"), False),
    (ValueError("out of memory"), False),
])
def test_only_allocation_failures_count_as_out_of_memory(error, out_of_memory):
    assert memory.is_out_of_memory(error) == out_of_memory
