"""A check behind REPRODUCTION.md (the occlusion table under "What does not match, and what we think causes
it"; docs/saliency.md, docs/differences.md): does another way of scoring an IG or occlusion map, than
saliency.py's |attribution| -> blur (sigma 1, the paper's) -> top-k, move a run's IoU? It tries the signed
attribution, its positive part, |attribution| without the blur, and that binarised with ties left out, and
prints each IoU, IoP and IoT beside ours (IoT / IoP = |A| / |B|, the binarised map's size over the mask's); it
records nothing.

    OMP_NUM_THREADS=1 python -m checks.scoring_variants occlusion results/synthetic/runs/<run> ...

Needs the runs' best.pt (not committed: run it where the runs were trained).
"""
import argparse
import os
import sys

import torch

import attribution
import datasets
import errors
import saliency


def above_next(s, mask, sigma):
    """A = the pixels of smooth(s, sigma) strictly above its (k+1)-th highest value: k pixels on a map
    without ties, fewer where the pixels around the k-th are tied (occlusion's 2x2 patches are). How the
    authors' occlusion scores look binarised: their rows have |A| < |B|, grad's and IG's |A| = |B| exactly."""
    flat = attribution.smooth(s, sigma).flatten(1)
    k = (mask.flatten(1) > 0).sum(1)
    next_value = flat.sort(dim=1, descending=True).values.gather(1, k[:, None])  # (B, 1): the (k+1)-th
    return attribution.localisation((flat > next_value).view_as(s).float(), mask)


VARIANTS = {  # name: (transform of the raw attribution, blur sigma, binarisation)
    "ours (abs, blur)": (torch.abs, 1.0, attribution.top_k_localisation),
    "signed, blur": (lambda s: s, 1.0, attribution.top_k_localisation),
    "positive part, blur": (lambda s: s.clamp(min=0), 1.0, attribution.top_k_localisation),
    "abs, no blur": (torch.abs, 0.0, attribution.top_k_localisation),
    "abs, no blur, ties out": (torch.abs, 0.0, above_next),
}


def main(argv):
    parser = errors.ArgumentParser(prog="python -m checks.scoring_variants", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method", choices=attribution.SALIENCY, help="the saliency method whose maps are scored")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="a finished run's directory (with its best.pt)")
    args = parser.parse_args(argv)
    method = args.method
    for run in args.runs:
        try:
            net, x, mask = saliency.scored_test_images(run)
        except (saliency.UsageError, datasets.DataError) as e:
            return errors.report(e)
        s = attribution.SALIENCY[method](net, x)
        for name, (f, sigma, binarise) in VARIANTS.items():
            scores, _ = binarise(f(s), mask, sigma)
            iou, iop, iot = (scores[k].mean().item() for k in ("iou", "iop", "iot"))
            print(f"{os.path.basename(run.rstrip('/'))} {method} {name}: IoU {iou:.3f} IoP {iop:.3f} "
                  f"IoT {iot:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
