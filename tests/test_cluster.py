"""What a GPU workstation or a Slurm cluster needs, checked on a CPU: one process per run directory,
clear errors on filesystems without locks, small checkpoints, and no host syncs while training."""
import errno
import os
import socket
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import datasets
import losses
import results
import rundir
import train
from models import ResNet18

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The smallest synthetic run: 2 training steps per epoch (8 images, batches of 4), 16 images per eval split, and
# no probe rows (none of these tests is about them; each costs a saliency scoring).
TINY = ["--n-train", "8", "--batch-size", "4", "--n-eval", "16", "--no-probes"]


# ------------------------------------------------------------------ one run per run directory

def test_a_second_process_on_a_locked_run_directory_exits_2_naming_the_holder(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, rundir
            with rundir.RunLock({str(run)!r}):
                print("locked", flush=True)
                sys.stdin.read()  # hold the lock until the test closes our stdin
        """)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert rundir.lock_holder(str(run)) == f"pid {holder.pid} on host {socket.gethostname()}"
        argv = ["--results", str(tmp_path / "r.csv"), "--out", str(run), "--resume", "--epochs", "1", *TINY]
        assert train.cli(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(run) in err and f"pid {holder.pid}" in err
        assert not (tmp_path / "r.csv").exists()  # the refused run wrote nothing
    finally:
        holder.communicate("")  # the holder exits; the kernel drops its lock
    assert rundir.lock_holder(str(run)) is None
    assert train.cli(argv) == 0  # free again


def test_a_filesystem_without_locks_is_one_line_naming_the_results_file_and_the_fix(tmp_path, capsys, monkeypatch):
    def no_locks(f, how):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(results.fcntl, "flock", no_locks)
    path = str(tmp_path / "r.csv")
    with pytest.raises(results.ResultsError, match="local disk"):
        results.append_row(path, {"kind": "epoch"})
    monkeypatch.setattr(rundir.fcntl, "flock", no_locks)
    assert train.cli(["--results", path, "--epochs", "1", *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "file locks" in err


# ------------------------------------------------------------------ checkpoints

@pytest.fixture
def saves(monkeypatch):
    """Every file rundir.save_atomic writes during a test: (basename, the object)."""
    written, save = [], rundir.save_atomic

    def recording(obj, path):
        written.append((os.path.basename(path), obj))
        save(obj, path)

    monkeypatch.setattr(rundir, "save_atomic", recording)
    return written


def test_best_weights_are_written_only_when_they_change_and_the_checkpoint_holds_no_second_copy(tmp_path, saves,
                                                                                                narrow):
    argv = ["--results", str(tmp_path / "r.csv"), "--out", str(tmp_path / "run"), "--epochs", "4",
            "--burn-in", "1", "--checkpoint-every", "0", *TINY]
    assert train.cli(argv) == 0
    losses_by_epoch = [float(r["valid_loss"]) for r in results.read_rows(str(tmp_path / "r.csv"), kind="epoch")]
    improved = [e + 1 for e, v in enumerate(losses_by_epoch) if v < min(losses_by_epoch[:e], default=float("inf"))]
    assert [obj["epoch"] for name, obj in saves if name.startswith("best-")] == improved
    epoch_checkpoints = [obj for name, obj in saves if name == rundir.CHECKPOINT and "model" in obj]
    assert len(epoch_checkpoints) == 4
    for ckpt in epoch_checkpoints:  # the weights once (with Adam's state); the early-stopping state holds none
        assert not any(isinstance(t, torch.Tensor) for v in ckpt["state"].values() if isinstance(v, dict)
                       for t in v.values())
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    final = results.read_rows(str(tmp_path / "r.csv"), kind="final")[0]
    assert best["epoch"] == int(final["selected_epoch"]) == improved[-1]
    assert not [f for f in os.listdir(tmp_path / "run") if f.endswith(".next")]  # every candidate promoted or gone


def test_the_checkpoint_interval_skips_epoch_checkpoints_but_not_the_last(tmp_path, saves):
    argv = ["--results", str(tmp_path / "r.csv"), "--out", str(tmp_path / "run"), "--epochs", "3",
            "--checkpoint-every", "3600", *TINY]
    assert train.cli(argv) == 0
    assert [obj["state"]["epoch"] for name, obj in saves if name == rundir.CHECKPOINT and "model" in obj] == [3]


def test_a_kill_after_a_best_epoch_but_before_its_checkpoint_leaves_best_pt_at_the_checkpoint_s_best(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"epoch": 2}, out / "best.pt")
    torch.save({"epoch": 3}, out / "best-e3.pt.next")  # written, then the process died before its checkpoint
    rundir.promote_best(str(out), 2)                    # the resumed checkpoint's best epoch is 2
    assert os.listdir(out) == ["best.pt"] and torch.load(out / "best.pt")["epoch"] == 2
    torch.save({"epoch": 4}, out / "best-e4.pt.next")  # the checkpoint got out, the rename did not
    rundir.promote_best(str(out), 4)
    assert os.listdir(out) == ["best.pt"] and torch.load(out / "best.pt")["epoch"] == 4


# ------------------------------------------------------------------ host syncs

class HostSyncs(TorchDispatchMode):
    """Counts the ops that would stall a GPU: reading a tensor's value on the host (.item(),
    float(t), bool(t), `if t:` -> aten._local_scalar_dense) and copies to the host (.cpu(),
    .tolist(), which on a CPU tensor dispatch nothing, so they are counted at the call). .numpy()
    is not counted: it refuses a CUDA tensor, so it can only follow a counted copy."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))

    def __enter__(self):
        self.patched = []
        for name in ("cpu", "tolist", "item"):
            original = getattr(torch.Tensor, name)

            def counted(t, *a, _original=original, **k):
                self.count += 1
                return _original(t, *a, **k)

            setattr(torch.Tensor, name, counted)
            self.patched.append((name, original))
        return super().__enter__()

    def __exit__(self, *exc):
        for name, original in self.patched:
            setattr(torch.Tensor, name, original)
        return super().__exit__(*exc)


def hyperparameters(method):
    return SimpleNamespace(lr=1e-3, lam=1.0, disc_lr=1e-3, disc_ratio=2, mask_fill="shuffle", empty_mask="skip",
                           amp="fp32", batch_size=8)


@pytest.mark.parametrize("method", list(losses.METHODS))
def test_a_training_step_never_reads_a_tensor_on_the_host(method):
    torch.manual_seed(0)
    split = datasets.load_synthetic(n_train=16, n_eval=16)["train"]
    x, y, mask = split.x[:8], split.y[:8], split.mask[:8]
    net = ResNet18()
    hp = hyperparameters(method)
    opt, step = losses.adam(net.parameters(), hp.lr), losses.build(method, hp, "cpu")
    train.train_step(net, opt, step, x, y, mask, hp)  # warm-up: lazy state (Adam's moments) is built here
    with HostSyncs() as syncs:
        for _ in range(2):  # both the discriminator's and the encoder's turn of adversarial
            train.train_step(net, opt, step, x, y, mask, hp)
    assert syncs.count == 0


def test_evaluation_copies_to_the_host_once_per_split():
    torch.manual_seed(0)
    split = datasets.load_synthetic(n_train=16, n_eval=48)["valid"]
    with HostSyncs() as syncs:
        metrics = train.evaluate(ResNet18(), split, batch_size=2, device="cpu")  # 48 / 16 = 3 batches
    assert syncs.count == 1
    assert set(metrics) == {"loss", "auc", "acc"}


# ------------------------------------------------------------------ start-up

def test_auc_agrees_with_scikit_learn_including_ties():
    import numpy as np
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = rng.integers(0, 12, 300) + 0.5 * labels  # many ties, some signal
    assert train.auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert train.auc(np.array([0.1, 0.9]), np.array([0, 1])) == 1.0
    assert train.auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5


def test_a_training_run_does_not_import_scikit_learn_or_pandas():
    code = "import sys, train; print(sorted(m for m in ('sklearn', 'pandas', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ cuDNN and memory format

@pytest.fixture
def cudnn_flags():
    """Puts torch.backends.cudnn's flags back as they were: the tests below set them, as train.py does."""
    before = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before


def test_cudnn_benchmark_is_on_unless_deterministic_kernels_are_asked_for(cudnn_flags):
    train.seed_everything(0, deterministic=False)
    assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
    train.seed_everything(0, deterministic=True)
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark


def test_deterministic_defaults_to_on_for_cpu_and_off_for_cuda_and_is_recorded(tmp_path, cudnn_flags, monkeypatch):
    assert train.resolve(train.parse_args(["--device", "cpu"])).deterministic is True
    with monkeypatch.context() as m:  # resolve only names the device: no GPU is needed to see the default
        m.setattr(torch.cuda, "is_available", lambda: True)
        assert train.resolve(train.parse_args(["--device", "cuda"])).deterministic is False
        assert train.resolve(train.parse_args(["--device", "auto"])).deterministic is False
    assert train.resolve(train.parse_args(["--device", "cpu", "--no-deterministic"])).deterministic is False
    final = train.main(train.parse_args(["--results", str(tmp_path / "r.csv"), "--epochs", "1",
                                         "--no-deterministic", *TINY]))
    assert final["deterministic"] is False


def test_channels_last_only_for_bf16_on_cuda():
    assert train.memory_format("cuda", "bf16") == torch.channels_last
    assert train.memory_format("cuda", "fp32") == torch.contiguous_format
    assert train.memory_format("cpu", "bf16") == torch.contiguous_format
