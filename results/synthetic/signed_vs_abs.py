"""A check behind REPRODUCTION.md: does scoring IG or occlusion by the signed attribution, instead of its
absolute value, move a run's IoU? Prints both (and the positive part) for each run; records nothing.

    OMP_NUM_THREADS=1 python results/synthetic/signed_vs_abs.py occlusion results/synthetic/runs/<run> ...

Needs the runs' best.pt (not committed: run it where the runs were trained).
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import datasets  # noqa: E402
import saliency  # noqa: E402
from models import ResNet18  # noqa: E402

method, runs = sys.argv[1], sys.argv[2:]
for run in runs:
    ckpt = saliency.load_run(run)
    net = ResNet18()
    net.load_state_dict(ckpt["model"])
    test = datasets.load(argparse.Namespace(**ckpt["config"]))["test"]
    keep = (test.y == saliency.TARGET) & (test.mask.flatten(1).amax(1) > 0)  # the images score() scores
    x, mask = test.x[keep], test.mask[keep]
    s = saliency.SALIENCY[method](net, x)
    iou = {}
    for name, m in (("abs", s.abs()), ("signed", s), ("positive part", s.clamp(min=0))):
        scores, _ = saliency.top_k_localisation(m, mask)
        iou[name] = round(scores["iou"].mean().item(), 3)
    print(os.path.basename(run.rstrip("/")), method, iou, flush=True)
