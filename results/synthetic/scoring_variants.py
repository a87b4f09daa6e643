"""A check behind REPRODUCTION.md: does another way of scoring an IG or occlusion map, than saliency.py's
|attribution| -> blur (sigma 1, the paper's) -> top-k, move a run's IoU? It tries the signed attribution, its
positive part, and |attribution| without the blur, and prints each IoU beside ours; it records nothing.

    OMP_NUM_THREADS=1 python results/synthetic/scoring_variants.py occlusion results/synthetic/runs/<run> ...

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

VARIANTS = {  # name: (transform of the raw attribution, blur sigma)
    "ours (abs, blur)": (torch.abs, 1.0),
    "signed, blur": (lambda s: s, 1.0),
    "positive part, blur": (lambda s: s.clamp(min=0), 1.0),
    "abs, no blur": (torch.abs, 0.0),
}

method, runs = sys.argv[1], sys.argv[2:]
for run in runs:
    try:
        ckpt = saliency.load_run(run)
    except saliency.UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    net = ResNet18()
    net.load_state_dict(ckpt["model"])
    test = datasets.load(argparse.Namespace(**ckpt["config"]))["test"]
    keep = (test.y == saliency.TARGET) & (test.mask.flatten(1).amax(1) > 0)  # the images score() scores
    x, mask = test.x[keep], test.mask[keep]
    s = saliency.SALIENCY[method](net, x)
    iou = {name: round(saliency.top_k_localisation(f(s), mask, sigma)[0]["iou"].mean().item(), 3)
           for name, (f, sigma) in VARIANTS.items()}
    print(os.path.basename(run.rstrip("/")), method, iou, flush=True)
