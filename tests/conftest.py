"""Shared test helpers: tiny models and hyperparameters, and a way to run train.py in-process."""
import importlib.util
import os
import sys
import types

import pytest
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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


def check_script(name):
    """results/synthetic/<name>.py, a check script behind REPRODUCTION.md, imported as a module (main() not run)."""
    path = os.path.join(os.path.dirname(__file__), "..", "results", "synthetic", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
