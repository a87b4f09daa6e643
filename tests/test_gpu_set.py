"""results/synthetic-100-epochs/gpu.sh, the 100-epoch set's runs on a lent GPU, on its bookkeeping: what it
packs names the set's commit, and merging what comes back keeps every recorded row. (Its `run` step trains
the real set; by hand on this CPU it trained two one-epoch runs from a pack and scored their cascades.)"""
import io
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPU_SH = os.path.join(REPO, "results", "synthetic-100-epochs", "gpu.sh")
CSV = "results/synthetic-100-epochs/results.csv"
HEADER = "time,run_id,kind,seed\n"


def sh(*args, cwd, check=True, **env):
    done = subprocess.run(["bash", GPU_SH, *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, PYTHON=sys.executable, **env))
    assert not check or done.returncode == 0, done.stderr
    return done


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path):
    """A repository whose commit holds code and tracked results, and a set's worktree with a CSV."""
    repo = tmp_path / "repo"
    (repo / "results" / "synthetic").mkdir(parents=True)
    (repo / "train.py").write_text("print('train')\n")
    (repo / "results" / "synthetic" / "bridge.py").write_text("x = 1\n")
    (repo / "results" / "synthetic" / "results.csv").write_text(HEADER + "t,a,final,1\n")
    git("init", "-q", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x", cwd=repo)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "the set's commit", cwd=repo)
    worktree = tmp_path / "worktree"
    (worktree / "results" / "synthetic-100-epochs").mkdir(parents=True)
    (worktree / CSV).write_text(HEADER + "t1,run-1,epoch,1\nt2,run-1,final,1\n")
    return repo, worktree


def device_tarball(path, csv_text, maps=()):
    """What a device call brings back: the set's CSV as it grew there and the new runs' saliency maps."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [(CSV, csv_text.encode())] + [(m, np.zeros(3).tobytes()) for m in maps]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in ("sweep.log", "score.log"):
            info = tarfile.TarInfo(name)
            tar.addfile(info, io.BytesIO(b""))


def test_the_packed_code_says_it_is_the_sets_commit_and_clean(checkout, tmp_path):
    repo, worktree = checkout
    commit = git("rev-parse", "--short", "HEAD", cwd=repo)
    sh("pack", str(worktree), cwd=repo, COMMIT=commit)
    out = tmp_path / "unpacked"
    out.mkdir()
    with tarfile.open(repo / ".gpu" / "set.tar.gz") as tar:
        tar.extractall(out, filter="tar")
    packed = out / "set"
    # The rows a run writes there carry results.git_commit(): the commit, without "+dirty".
    assert git("rev-parse", "--short", "HEAD", cwd=packed) == commit
    assert git("status", "--porcelain", "--untracked-files=no", "--", "*.py", cwd=packed) == ""
    assert (packed / "results" / "synthetic" / "bridge.py").exists()
    assert not (packed / "results" / "synthetic" / "results.csv").exists()  # data stays here
    assert (packed / CSV).read_text() == (worktree / CSV).read_text()
    # What the device call sends leaves the tracked results out, and merge puts them back in the index.
    assert git("ls-files", "results", cwd=repo) == ""
    device_tarball(tmp_path / "back.tar.gz", (worktree / CSV).read_text())
    sh("merge", str(tmp_path / "back.tar.gz"), str(worktree), cwd=repo)
    assert git("ls-files", "results", cwd=repo).splitlines() == ["results/synthetic/bridge.py",
                                                                "results/synthetic/results.csv"]
    assert git("status", "--porcelain", cwd=repo) == ""  # .gpu/ is ignored


def test_pack_refuses_a_worktree_without_the_sets_csv(checkout, tmp_path):
    repo, _ = checkout
    done = sh("pack", str(tmp_path / "nowhere"), cwd=repo, check=False)
    assert done.returncode == 2 and "results.csv not found" in done.stderr
    assert git("ls-files", "results", cwd=repo) != ""  # nothing hidden


def test_merge_appends_only_the_rows_the_worktree_lacks_and_can_be_rerun(checkout, tmp_path):
    repo, worktree = checkout
    before = (worktree / CSV).read_text()
    grown = before + "t3,run-2,epoch,6\nt4,run-2,final,6\n"
    new_map = "results/synthetic-100-epochs/runs/synthetic-r1.0-baseline-s6/saliency.npz"
    device_tarball(tmp_path / "back.tar.gz", grown, maps=[new_map])
    sh("merge", str(tmp_path / "back.tar.gz"), str(worktree), cwd=repo)
    assert (worktree / CSV).read_text() == grown
    assert (worktree / new_map).exists()
    sh("merge", str(tmp_path / "back.tar.gz"), str(worktree), cwd=repo)
    assert (worktree / CSV).read_text() == grown


def test_merge_keeps_rows_written_here_since_the_pack(checkout, tmp_path):
    repo, worktree = checkout
    packed = (worktree / CSV).read_text()
    with open(worktree / CSV, "a") as f:
        f.write("t5,run-3,epoch,7\n")
    device_tarball(tmp_path / "back.tar.gz", packed + "t3,run-2,final,6\n")
    sh("merge", str(tmp_path / "back.tar.gz"), str(worktree), cwd=repo)
    assert (worktree / CSV).read_text() == packed + "t5,run-3,epoch,7\n" + "t3,run-2,final,6\n"


def test_merge_refuses_a_csv_of_other_columns_and_changes_nothing(checkout, tmp_path):
    repo, worktree = checkout
    before = (worktree / CSV).read_text()
    device_tarball(tmp_path / "back.tar.gz", "time,run_id,kind,seed,extra\nt3,run-2,final,6,x\n")
    done = sh("merge", str(tmp_path / "back.tar.gz"), str(worktree), cwd=repo, check=False)
    assert done.returncode != 0 and "different columns" in done.stderr
    assert (worktree / CSV).read_text() == before


def test_merge_never_overwrites_a_saliency_map_it_has(checkout, tmp_path):
    repo, worktree = checkout
    kept = "results/synthetic-100-epochs/runs/synthetic-r1.0-rrr-s1/saliency.npz"
    (worktree / kept).parent.mkdir(parents=True)
    (worktree / kept).write_bytes(b"recorded here")
    device_tarball(tmp_path / "back.tar.gz", (worktree / CSV).read_text(), maps=[kept])
    sh("merge", str(tmp_path / "back.tar.gz"), str(worktree), cwd=repo)
    assert (worktree / kept).read_bytes() == b"recorded here"
