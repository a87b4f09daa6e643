"""Shared test helpers: tiny models and hyperparameters, a way to run train.py in-process, the X-ray data flags."""
import argparse
import contextlib
import importlib
import io
import os
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cohorts  # noqa: E402  (from the repository root, put on the path just above)
import datasets  # noqa: E402
import models  # noqa: E402
# One thread per test process: pytest.ini starts one xdist worker per core, and the suite often runs
# beside other work, where OpenMP threads that outnumber the free cores spin and slow every test.
torch.set_num_threads(1)


class Linear(nn.Module):
    """A linear classifier with the ResNet's interface; its 'features' are the flattened input."""

    def __init__(self, size=6, classes=2):
        super().__init__()
        self.fc = nn.Linear(size * size, classes)

    def features_and_logits(self, x):
        z = x.flatten(1)
        return z, self.fc(z)

    def forward(self, x):
        return self.features_and_logits(x)[1]


def hparams(**kw):
    base = dict(lam=1.0, mask_fill="shuffle", empty_mask="skip", disc_lr=1e-3, disc_ratio=3, batch_size=4)
    return types.SimpleNamespace(**{**base, **kw})


@pytest.fixture
def linear():
    torch.manual_seed(0)
    return Linear()


def _narrow_resnet_init(self, in_channels=1, num_classes=2, width=8):
    """models.ResNet18's modules by name (conv1, bn1, layer1-4, fc: what a checkpoint stores and the cascade
    randomises) and its 512 features, with each stage one `width`-channel convolution."""
    def stage(i, o, stride):
        return nn.Sequential(nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU())
    nn.Module.__init__(self)
    self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
    self.bn1, self.relu, self.maxpool = nn.BatchNorm2d(width), nn.ReLU(), nn.Identity()
    self.layer1, self.layer2, self.layer3 = stage(width, width, 1), stage(width, width, 2), stage(width, width, 2)
    self.layer4 = stage(width, models.FEATURES, 2)
    self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(models.FEATURES, num_classes)


@contextlib.contextmanager
def narrow_resnet():
    """Every models.ResNet18 built inside the block is a narrow stand-in, for tests whose subject is the
    pipeline around the network (the X-ray rehearsal's 42 runs: 250 CPU-seconds with ResNet-18, about 30
    with it). saliency memoises untrained weights per architecture;
    its cache is emptied on entry and exit, so no stand-in weights reach a test outside the block."""
    import saliency  # noqa: PLC0415  (torch's training stack, for the tests that need it)
    saliency._untrained_weights.cache_clear()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(models.ResNet18, "__init__", _narrow_resnet_init)
            yield
    finally:
        saliency._untrained_weights.cache_clear()


@pytest.fixture
def narrow():
    """For a test whose subject is the bookkeeping around the network (rows, selection, resume, files): every
    models.ResNet18 it builds is the narrow stand-in. ResNet-18 itself trains in the tests without it."""
    with narrow_resnet():
        yield


def check_script(name):
    """checks/<name>.py, a check script behind REPRODUCTION.md (`python -m checks.<name>`), as a module."""
    return importlib.import_module(f"checks.{name}")


class InProcessLauncher:
    """launch.Launcher's interface, for tests whose subject is the sweep rather than its subprocesses: each trial's
    train.py command line runs in this process, to its end, when the trial starts (so it ends in start order).
    `codes` collects the exit codes. A process per trial would pay torch's import (about 4 s) every time."""

    def __init__(self, opts):
        self.opts, self.ended, self.codes = opts, [], []

    def start(self, trial):
        import train  # noqa: PLC0415  (when first needed: most test modules never start a sweep)
        argv = trial.argv(self.opts)
        assert os.path.basename(argv[1]) == "train.py"
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = train.cli(argv[2:])
        self.ended.append((trial, code))
        self.codes.append(code)

    def wait(self):
        return self.ended.pop(0)


@pytest.fixture
def in_process_sweep(monkeypatch):
    """sweep.main starts its trials with InProcessLauncher; returns the launchers it made."""
    import launch  # noqa: PLC0415  (likewise)
    made = []

    def launcher(opts):
        made.append(InProcessLauncher(opts))
        return made[-1]
    monkeypatch.setattr(launch, "Launcher", launcher)
    return made


# ------------------------------------------------------------------ the chest X-ray data

def data_args(*argv):
    """datasets.py's data flags, parsed as train.py passes them to datasets.load."""
    p = argparse.ArgumentParser()
    datasets.add_arguments(p)
    args = p.parse_args(list(argv))
    args.batch_size = 16
    return args


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch):
    """No test reads the user's image folders: the sources' environment variables are unset."""
    for source in cohorts.SOURCES.values():
        monkeypatch.delenv(source.env, raising=False)


@pytest.fixture(scope="session")
def pools():
    """Every candidate image of both X-ray tasks, from the shipped metadata (read once)."""
    return {name: cohorts.candidates(data_args("--dataset", name)) for name in ("xray", "rsna")}


def cells_of(cohort, name):
    """Images per site x label cell in one split of a cohort."""
    return np.bincount(cohort.cells()[cohort.splits[name]], minlength=4)
