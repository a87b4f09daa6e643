"""Saliency maps and how well they agree with the expert masks (the paper's Section 4).

    python saliency.py --run results/runs/<run_id> [--saliency grad|ig|occlusion|all] [--ig-steps 200]

Every finished run is scored the same way, on the positive (class 1) test
images that have a mask, with one of the authors' three saliency methods:

    saliency s = |d y1 / dx|            (input gradients, the paper's figures and tables)
              or |IG(x)|                (integrated gradients, zero baseline, 200 steps)
              or |y1(x) - y1(x, patch zeroed)|   (occlusion, window = stride = 2 px at 28, 15 px at 224)
    smoothed     g = Gaussian(s, sigma=1)
    binarised    A = the k highest pixels of g, k = |B| (the mask's size)
    scores       IoU = |A n B| / |A u B|,  IoP = |A n B| / |A|,  IoT = |A n B| / |B|

Everything is batched: one backward per batch for gradients, steps x images
in chunks for integrated gradients, patches x images in chunks of forward
passes for occlusion, a depthwise convolution for the blur and one stable
sort for top-k. IG and occlusion return signed attributions; like the
gradient, they are scored by their absolute value (a large change of the
logit either way is what "the model looks here" means). ``score`` is what train.py calls with the selected
epoch's weights; ``cli`` re-scores a saved run and appends a ``saliency`` row
to the results CSV. ``mean_map`` makes the averaged maps of the paper's
Figures 5-7, saved with a few example maps in ``<run>/saliency.npz`` (the
run's own method; another method in ``<run>/saliency-<method>/saliency.npz``).
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

import datasets
import results
from models import ResNet18

TARGET = 1         # the class whose logit is explained: the positive class
N_EXAMPLES = 16    # example maps saved per run for the figures
IG_PIXELS = 2**18  # pixels per IG / occlusion chunk: 334 images at 28x28, 5 at 224x224
IG_STEPS = 200     # the authors' integrated-gradients steps
OCCLUSION_WINDOW = 15  # the authors' patch side (= stride) at 224x224; scaled with the image elsewhere


# ------------------------------------------------------------------ saliency

def _logit_gradient(model, x):
    """d logit_1 / dx for every image of x in ONE backward pass.  (B, C, H, W)

    In eval mode each image's logit depends only on that image (batch norm
    uses running statistics), so the gradient of the batch sum is the stack of
    per-image gradients. Only x requires a gradient: autograd then skips the
    weight gradients.
    """
    with torch.enable_grad():  # callers may be inside no_grad
        x = x.detach().requires_grad_(True)
        logit = model(x)[:, TARGET]  # (B,)
        (grad,) = torch.autograd.grad(logit.sum(), x)
    return grad


class _EvalMode:
    """Put a model in eval mode for a block and restore its train/eval mode afterwards."""

    def __init__(self, model):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


def input_gradients(model, x):
    """|d y1 / dx|: the absolute gradient of the class-1 logit w.r.t. the input.  (B, 1, H, W)"""
    with _EvalMode(model):
        return _logit_gradient(model, x).abs()


def integrated_gradients(model, x, steps=IG_STEPS, chunk_pixels=IG_PIXELS):
    """IG_i = (x_i - 0) * 1/m sum_k d y1(a_k x) / dx_i, with midpoints a_k = (k - 1/2) / m.  (B, 1, H, W)

    Signed attributions with a zero baseline; they satisfy completeness,
    sum_i IG_i ~= y1(x) - y1(0), up to the midpoint rule's error. The
    m x B interpolated images are never built at once: each chunk of at most
    ``chunk_pixels`` pixels takes a slice of the flat (step, image) index, and
    its gradients are summed back into their images with index_add.
    """
    b = len(x)
    alphas = (torch.arange(steps, device=x.device, dtype=x.dtype) + 0.5) / steps  # (m,)
    total = torch.zeros_like(x)                                                    # (B, C, H, W)
    rows = max(1, chunk_pixels // x[0].numel())
    with _EvalMode(model):
        for start in range(0, steps * b, rows):
            flat = torch.arange(start, min(start + rows, steps * b), device=x.device)  # (R,)
            img = flat % b
            points = alphas[flat // b].view(-1, 1, 1, 1) * x[img]                      # (R, C, H, W)
            total.index_add_(0, img, _logit_gradient(model, points))
    return x * total / steps


def occlusion_window(size):
    """The occluding patch's side for images of side `size`: 15 px at 224, scaled linearly, at least 1.

    round(15 * size / 224) is the authors' 2 px at 28 and 15 px at 224 from one rule.
    """
    return max(1, round(OCCLUSION_WINDOW * size / 224))


def occlusion(model, x, window=None, chunk_pixels=IG_PIXELS):
    """O_i = y1(x) - y1(x with the patch holding pixel i set to 0), signed.  (B, C, H, W)

    The zero patch is window x window (default `occlusion_window` of the
    shorter side) and slides with stride = window, so the patches tile the
    image and every pixel gets the drop of the one patch that holds it. When
    the side is not a multiple of the window (224 = 14 x 15 + 14), the last
    row and column of patches are clipped at the border (14 px there) instead
    of being left out, so no pixel is left unscored. A patch zeroes every channel.

    The P x B occluded copies, plus each image itself as copy P (whose patch
    matches no pixel), are never built at once: as in integrated_gradients,
    each chunk of at most ``chunk_pixels`` pixels takes a slice of the flat
    (copy, image) index and goes through one forward pass, without gradients.
    """
    b, _, h, w = x.shape
    window = window or occlusion_window(min(h, w))
    rows_of, cols_of = torch.arange(h, device=x.device) // window, torch.arange(w, device=x.device) // window
    patch = rows_of[:, None] * (int(cols_of[-1]) + 1) + cols_of[None, :]  # (H, W): row-major patch index
    copies = int(patch[-1, -1]) + 2                                        # P patches + the unoccluded image
    chunk = max(1, chunk_pixels // x[0].numel())
    logits = []
    with _EvalMode(model), torch.no_grad():
        for start in range(0, copies * b, chunk):
            flat = torch.arange(start, min(start + chunk, copies * b), device=x.device)  # (R,)
            img = flat % b
            hidden = patch == (flat // b).view(-1, 1, 1, 1)                              # (R, 1, H, W)
            logits.append(model(x[img].masked_fill(hidden, 0))[:, TARGET])               # (R,)
    logits = torch.cat(logits).view(copies, b)                                           # (P + 1, B)
    drops = logits[-1] - logits[:-1]                                                     # (P, B)
    return drops.T[:, patch].unsqueeze(1).expand_as(x).contiguous()                      # (B, C, H, W)


SALIENCY = {"grad": input_gradients, "ig": integrated_gradients, "occlusion": occlusion}


# ------------------------------------------------------------------ post-processing

def _gaussian_kernel(sigma, dtype, device, truncate=4.0):
    """The normalised 1-D Gaussian exp(-t^2 / 2 sigma^2), |t| <= truncate * sigma (scipy's radius)."""
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def smooth(s, sigma=1.0):
    """Per-image Gaussian blur G_sigma * s (the paper: sigma = 1), batched.  (B, C, H, W)

    Separable: one depthwise convolution along rows, one along columns. Edges
    are mirrored (scipy's mode="mirror") rather than zero-padded, so pixels
    near the border are not pushed down the top-k ranking.
    """
    if sigma <= 0:
        return s
    c = s.shape[1]
    k = _gaussian_kernel(sigma, s.dtype, s.device)
    r = len(k) // 2
    if r >= min(s.shape[-2:]):
        raise ValueError(f"sigma {sigma} is too large for {tuple(s.shape[-2:])} images")
    s = F.pad(s, (r, r, r, r), mode="reflect")
    s = F.conv2d(s, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # along rows (H)
    return F.conv2d(s, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # along columns (W)


def binarize_top_k(s, mask):
    """A = 1 on each image's k highest pixels of s, k = |B| = that image's mask size.  (B, 1, H, W)

    A stable descending sort breaks ties by flat index (the earlier pixel
    wins), so exactly k pixels are set even on a constant map.
    """
    flat = s.flatten(1)                                              # (B, N)
    k = (mask.flatten(1) > 0).sum(1)                                 # (B,)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices  # (B, N)
    ranks = torch.arange(flat.shape[1], device=s.device).expand_as(flat)
    keep = (ranks < k[:, None]).to(s.dtype)                          # (B, N): 1 for the first k ranks
    return torch.zeros_like(flat).scatter_(1, order, keep).view_as(s)


def localisation(s, mask):
    """Per image IoU = |A n B| / |A u B|, IoP = |A n B| / |A|, IoT = |A n B| / |B|.

    A = s > 0 (a binarised saliency map), B = mask > 0. Images with an empty
    mask have no ground truth and are left out. Returns ({"iou", "iop",
    "iot"} -> (n,) tensors for the n images with a mask, number left out).
    An empty A (all-zero saliency) scores IoP = 0 rather than 0/0.
    """
    a, b = s.flatten(1) > 0, mask.flatten(1) > 0     # (B, N)
    inter = (a & b).sum(1).double()                  # (B,)
    union = (a | b).sum(1).double()
    size_a, size_b = a.sum(1).double(), b.sum(1).double()
    keep = size_b > 0
    scores = {"iou": inter / union.clamp_min(1), "iop": inter / size_a.clamp_min(1),
              "iot": inter / size_b.clamp_min(1)}
    return {k: v[keep] for k, v in scores.items()}, int((~keep).sum())


def _top_half(s):
    """Per image: |s| smoothed (sigma = 1), values above its median kept, the rest 0.  (B, H, W)"""
    g = smooth(s.abs()).sum(1)                          # (B, H, W): channels summed (one for our images)
    median = torch.quantile(g.flatten(1), 0.5, dim=1)   # (B,)
    return torch.where(g > median.view(-1, 1, 1), g, torch.zeros_like(g))


def mean_map(s):
    """The figures' map: mean over images of smooth(|s|) kept above each image's 50th percentile.  (H, W)"""
    return _top_half(s).mean(0)


# ------------------------------------------------------------------ scoring a run

def score(model, split, saliency="grad", device="cpu", batch_size=64, out_dir=None, ig_steps=IG_STEPS):
    """Localisation of `saliency` on the positive images of `split` that have a mask.

    saliency -> abs -> smooth(sigma=1) -> binarize_top_k -> localisation, batch
    by batch; `model` must already be on `device` (its train/eval mode is
    left as it was). The abs makes the signed methods (ig, occlusion) rank
    pixels by how much they move the logit, in either direction; `ig_steps`
    is used by ig only. Returns the results columns saliency, iou, iop, iot (means over
    the scored images; None if there are none), n_scored, n_empty_masks
    (positives left out for an empty mask) and saliency_seconds. With
    `out_dir`, also writes <out_dir>/saliency.npz for the figures (see
    `_write_npz`).
    """
    explain = SALIENCY[saliency]
    options = {"steps": ig_steps} if saliency == "ig" else {}
    start = time.perf_counter()
    per_image = {"iou": [], "iop": [], "iot": []}
    n_empty = 0
    sums = {"mean_map": 0.0, "mean_input": 0.0, "mean_mask": 0.0}
    examples = {"maps": [], "inputs": [], "masks": []}
    for x, y, mask in split.batches(batch_size):
        positive = y == TARGET
        annotated = mask.flatten(1).amax(1) > 0                  # (B,)
        n_empty += int((positive & ~annotated).sum())
        keep = positive & annotated
        if not keep.any():
            continue
        x, mask = x[keep].to(device), mask[keep].to(device)      # (b, 1, H, W)
        s = explain(model, x, **options).abs()                   # (b, 1, H, W)
        scores, _ = localisation(binarize_top_k(smooth(s), mask), mask)
        for k, v in scores.items():
            per_image[k].append(v.cpu())
        if out_dir is not None:
            sums["mean_map"] += _top_half(s).sum(0).cpu()
            sums["mean_input"] += x.sum((0, 1)).cpu()
            sums["mean_mask"] += mask.sum((0, 1)).cpu()
            for k, v in zip(examples, (s, x, mask)):
                examples[k].append(v[:N_EXAMPLES].sum(1).detach().cpu())  # (<=16, H, W)
    per_image = {k: torch.cat(v) if v else torch.zeros(0) for k, v in per_image.items()}
    n = len(per_image["iou"])
    out = dict(saliency=saliency, **{k: v.mean().item() if n else None for k, v in per_image.items()},
               n_scored=n, n_empty_masks=n_empty)
    if out_dir is not None and n:
        arrays = {k: (v / n).float().numpy() for k, v in sums.items()}
        arrays.update({k: torch.cat(v)[:N_EXAMPLES].float().numpy() for k, v in examples.items()})
        _write_npz(os.path.join(out_dir, "saliency.npz"), saliency=np.array(saliency), **arrays)
    out["saliency_seconds"] = round(time.perf_counter() - start, 3)
    return out


def _write_npz(path, **arrays):
    """np.savez to a temp file in the same directory, then os.replace: readers never see half a file.

    Keys written by `score`: mean_map, mean_input, mean_mask (H, W) over all
    scored images; maps (|saliency|), inputs, masks (k, H, W) for the first
    k <= 16 scored images; saliency (the method's name).
    """
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# ------------------------------------------------------------------ command line

class UsageError(ValueError):
    """Bad input to the CLI: one line on stderr naming the flag and the fix, exit code 2."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Score a saved run's saliency against the expert masks.")
    p.add_argument("--run", required=True, help="a run directory holding best.pt (results/runs/<run_id>)")
    p.add_argument("--saliency", choices=tuple(SALIENCY) + ("all",), default="grad",
                   help="input gradients (the paper's tables), integrated gradients, occlusion, or all three "
                        "(one results row each)")
    p.add_argument("--ig-steps", type=int, default=IG_STEPS,
                   help="integrated gradients: interpolation steps from the zero baseline (the authors' 200)")
    p.add_argument("--results", default=None, help="results CSV to append to (default: the run's own)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    return p.parse_args(argv)


def load_run(run):
    """The run's checkpoint dict (keys model, config, epoch); UsageError if it is missing or unreadable."""
    path = os.path.join(run, "best.pt")
    if not os.path.isdir(run):
        raise UsageError(f"--run {run}: no such directory; pass a run directory such as results/runs/<run_id>")
    if not os.path.isfile(path):
        raise UsageError(f"--run {run}: no best.pt in it; pass the directory of a run that finished an epoch")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt file
        raise UsageError(f"--run {run}: cannot load best.pt ({type(e).__name__}); re-train the run or pass "
                         f"another --run") from e
    if not isinstance(ckpt, dict) or not {"model", "config"} <= set(ckpt):
        raise UsageError(f"--run {run}: best.pt lacks the keys model and config; pass a run saved by train.py")
    return ckpt


def resolve_device(device):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available here; pass --device cpu or auto")
    return torch.device(device)


def main(args):
    """Score the test split of a saved run and append one kind=saliency row per method; returns the rows.

    With --saliency all the methods run in SALIENCY order and each row is
    appended as soon as its method is done, so an interrupted run keeps the
    rows already scored.
    """
    import train  # here, not at the top: train.py imports this module

    if args.ig_steps < 1:
        raise UsageError(f"--ig-steps {args.ig_steps}: must be at least 1; the authors used 200")
    run = args.run.rstrip(os.sep) or args.run
    ckpt = load_run(run)
    config = argparse.Namespace(**ckpt["config"])
    try:
        columns = train.config_columns(config)
    except AttributeError as e:
        raise UsageError(f"--run {run}: best.pt's config lacks {e.name}; re-train the run with this "
                         f"version of train.py") from e
    path = args.results or getattr(config, "results", None) or os.path.join("results", "results.csv")
    results.check_file(path)
    device = resolve_device(args.device)
    net = ResNet18()
    try:
        net.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise UsageError(f"--run {run}: best.pt's weights do not fit models.ResNet18 ({str(e).splitlines()[0]}); "
                         f"pass a run saved by train.py") from e
    net.to(device)
    splits = datasets.load(config)
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
    rows = []
    for method in tuple(SALIENCY) if args.saliency == "all" else (args.saliency,):
        # The run's own method writes <run>/saliency.npz, as train.py would (plots.py
        # draws the figures from it); another method gets its own folder, so neither
        # the figures nor the three methods of --saliency all overwrite each other.
        same = method == getattr(config, "saliency", "grad")
        out_dir = run if same else os.path.join(run, f"saliency-{method}")
        os.makedirs(out_dir, exist_ok=True)
        scores = score(net, splits["test"], method, device, out_dir=out_dir, ig_steps=args.ig_steps)
        row = dict(columns, run_id=getattr(config, "run_id", None) or os.path.basename(os.path.abspath(run)),
                   kind="saliency", status="ok", time=time.strftime("%Y-%m-%dT%H:%M:%S"), **scores,
                   **train.environment(device), run_dir=run,
                   selected_epoch=ckpt.get("epoch"))
        results.append_row(path, row)
        rows.append(row)
        detail = f" ({args.ig_steps} steps)" if method == "ig" else ""
        print(f"{method}{detail} saliency on {scores['n_scored']} positive test images: iou {fmt(scores['iou'])}  "
              f"iop {fmt(scores['iop'])}  iot {fmt(scores['iot'])}  ({scores['n_empty_masks']} without a mask "
              f"left out, {scores['saliency_seconds']:.1f} s)\nresults row -> {path}\n"
              f"maps -> {os.path.join(out_dir, 'saliency.npz')}", flush=True)
    return rows


def cli(argv=None):
    """Command-line entry: exit 0 when scored, 2 on bad input (one line on stderr, nothing appended)."""
    args = parse_args(argv)
    try:
        main(args)
    except (UsageError, datasets.DataError, results.ResultsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
