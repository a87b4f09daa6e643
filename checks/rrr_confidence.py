"""A check behind REPRODUCTION.md ("What matches": RRR, "Why its gradient map stays outside the mask, tested";
and the ratio 0.9 runs under "Beyond the paper"): how do the RRR runs satisfy their penalty, when their
saliency maps stay outside the mask (gradient IoU near 0.05, as in the paper)?

RRR (losses.rrr, Eq. 4) penalises the input gradient of sum_k log p_k outside the mask. With two classes,
p = p_1 = sigmoid(z_1 - z_0), that sum is log p + log(1 - p), and its gradient is

    d/dx [log p + log(1 - p)] = (1 - 2p) * d(z_1 - z_0)/dx,

so the penalty has two ways down: move d(z_1 - z_0)/dx into the mask, or make p close to 1/2, where the factor
(1 - 2p) vanishes whatever the gradient looks like. For each run this prints, on the images saliency.py
scores (positives with a mask): the mean |1 - 2p|, and for the logit gradient saliency.py maps (dz_1/dx) and
for the penalised one, the IoU and the share of the squared gradient that falls outside the mask.
It records nothing.

    OMP_NUM_THREADS=1 python -m checks.rrr_confidence results/synthetic/runs/<run> ...

Needs the runs' best.pt (not committed: run it where the runs were trained).
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

import attribution
import datasets
import errors
import saliency

QUANTITIES = {  # name: the function of the logits (B, 2) whose input gradient is examined
    "dz_1/dx (saliency.py's map)": lambda z: z[:, attribution.TARGET],
    "d sum_k log p_k/dx (RRR's penalty)": lambda z: F.log_softmax(z, 1).sum(1),
}


def examine(net, x, mask):
    """(mean |1 - 2 p_1|, {quantity: (mean IoU, mean share of the squared gradient outside the mask)})."""
    net.eval()
    x = x.detach().requires_grad_(True)
    z = net(x)
    out = {}
    for name, f in QUANTITIES.items():
        (g,) = torch.autograd.grad(f(z).sum(), x, retain_graph=True)
        iou = attribution.top_k_localisation(g.abs(), mask)[0]["iou"].mean().item()
        outside = (g.square() * (mask == 0)).sum((1, 2, 3)) / g.square().sum((1, 2, 3)).clamp_min(1e-30)
        out[name] = (iou, outside.mean().item())
    p = torch.softmax(z.detach(), 1)[:, 1]
    return (1 - 2 * p).abs().mean().item(), out


def main(argv):
    parser = errors.ArgumentParser(prog="python -m checks.rrr_confidence", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="a finished run's directory (with its best.pt)")
    for run in parser.parse_args(argv).runs:
        try:
            net, x, mask = saliency.scored_test_images(run)
        except (saliency.UsageError, datasets.DataError) as e:
            return errors.report(e)
        confidence, scores = examine(net, x, mask)
        print(f"{os.path.basename(run.rstrip('/'))}: mean |1 - 2p| {confidence:.3f}" + "".join(
            f"; {name}: IoU {iou:.3f}, outside share {share:.3f}" for name, (iou, share) in scores.items()),
            flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
