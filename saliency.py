"""Scoring a run's saliency against the expert masks (the paper's Section 4), with baselines.

    python saliency.py --run results/runs/<run_id> [--saliency grad|ig|occlusion|all] [--ig-steps 200] [--cascade]
                       [--score-size train|PIXELS] [--score-images all|release]

Every finished run is scored the same way, on the positive (class 1) test
images that have a mask, with one of the authors' three saliency methods.
On X-ray the test images are loaded at 224 px whatever the training size
(--score-size; the release trained NIH + PadChest at 128 and scored at 224),
and --score-images release scores the release's 50 positives (the first 25
test images of each site x label cell) instead of every positive. The maps
and their scores (IoU, IoP, IoT against the mask) are attribution.py's; this
module decides which images are scored and at what size, runs the baselines,
saves the maps, and writes the rows.

What an IoU is worth (Adebayo et al., "Sanity checks for saliency
maps", NeurIPS 2018), recorded beside every IoU:

    iou_chance     E[IoU] of a random top-k map (attribution.chance_iou, exact)
    iou_untrained  the same saliency and scoring through the same architecture freshly
                   initialised with the run's seed: the very network the run started from
    randomized     cascading randomisation: the trained model with its layers re-initialised
                   from the top (fc, layer4, layer3, layer2, layer1, conv1 with bn1),
                   cumulatively, scored after each step; the column names the deepest layer
                   re-initialised at that step (every layer above it is re-initialised too)

``score`` is what train.py calls with the selected epoch's weights (IoU,
IoP, IoT, chance and untrained IoU); ``score_cascade`` yields the cascade's
rows; ``cli`` re-scores a saved run and appends ``saliency`` rows to the
results CSV (``--cascade``: one more per step). ``attribution.mean_map`` makes the
averaged maps of the paper's Figures 5-7, saved with a few example maps in
``<run>/saliency.npz`` (the run's own method; another method in
``<run>/saliency-<method>/saliency.npz``, the release's subset in
``saliency-<method>-release/``): over the scored images, and over a fixed
random sample of up to 500 test images of both classes (the X-ray figures').
"""
import argparse
import contextlib
import copy
import functools
import hashlib
import os
import sys
import tempfile
import time
import zipfile

import numpy as np
import torch
import torch.nn.functional as F

import attribution
import datasets
import diagnostics
import errors
import models
import results
import rundir
from errors import UsageError
from models import ResNet18

N_EXAMPLES = 16    # example maps saved per run for the figures
# Cascading randomisation, top down. Each name is the deepest layer re-initialised at that step
# (the `randomized` column); every layer above it stays re-initialised. The stem step "conv1"
# takes its batch norm bn1 with it: a trained bn1 would keep normalising by the statistics of
# features that the random conv1 no longer computes.
from protocol import CASCADE  # noqa: E402  (the steps, from the top down; plots.py reads them there)
CASCADE_MODULES = {"conv1": ("conv1", "bn1")}  # a step not listed re-initialises the module of its name
# Which test images are scored, and at what size (--score-size, --score-images). The release trained NIH +
# PadChest at 128 px but scored saliency on test images loaded at 224, and scored the first 25 test images of
# each site x label cell in index order rather than every positive as the text says.
SCORE_SIZE = 224        # X-ray: the side of the scored test images, whatever the training size
SCORE_IMAGES = ("all", "release")  # every positive with a mask (the text), or the release's subset
RELEASE_PER_CELL = 25   # --score-images release: the first 25 of each site x label cell, 50 positives in all
# The figures' map (Figures 6-7): |saliency| of a random sample of at most 500 test images of both classes,
# drawn with a fixed seed so that every run of a cohort averages the same images.
FIGURE_IMAGES = 500
FIGURE_SEED = 0
# Scoring's batch holds a fixed number of pixels, so that its memory does not grow with the image: 64 images
# up to 112 px (every synthetic batch, as before), 16 at 224 px, where 64 needed about 14 GiB (bench.py --memory).
SCORE_BATCH, SCORE_PIXELS = 64, 16 * 224 ** 2


def score_batch(side):
    """The batch `score` and `score_cascade` use for test images of `side` x `side` pixels (None: 64)."""
    return SCORE_BATCH if side is None else max(1, min(SCORE_BATCH, SCORE_PIXELS // side ** 2))


# ------------------------------------------------------------------ baselines: what an IoU is worth

@contextlib.contextmanager
def _seeded(seed):
    """A block run on the CPU generator seeded with `seed`; the caller's generator state is restored after.

    Only the CPU generator is seeded (torch.manual_seed would also reseed the
    CUDA generators, which fork_rng(devices=[]) does not restore): the new
    weights are drawn on the CPU, the same whatever device scores them.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def untrained_model(seed, architecture=ResNet18):
    """`architecture()` freshly initialised under `seed`, on the CPU; the caller's RNG state is unchanged.

    train.py seeds torch with the run's seed just before it builds its
    ResNet18, so with the run's seed this is the very network the run
    started from: its IoU is what the same images score before any training.
    """
    return models.with_weights(architecture, _untrained_weights(seed, architecture))


@functools.lru_cache(maxsize=2)
def _untrained_weights(seed, architecture):
    """The seeded initial weights, drawn once per process: a sweep's runs of one seed share them."""
    with _seeded(seed):
        return architecture().state_dict()


def cascade(model, seed, architecture=ResNet18):
    """Cascading randomisation (Adebayo et al. 2018): yield (step, network) for each step of CASCADE.

    At step j the network is a copy of `model` whose layers of steps 1..j
    are those of the network the run started from, `untrained_model(seed)`
    (random weights, drawn under the run's seed), and every other layer as
    trained. So a layer keeps the same random weights at every later step,
    and the last step is exactly the untrained baseline's network: the curve
    runs from the trained IoU to `iou_untrained`. `model` itself is not
    modified. The same copy is changed further at the next step: score it
    before asking for the next one.
    """
    modules = lambda step: CASCADE_MODULES.get(step, (step,))
    start = untrained_model(seed, architecture)
    net = copy.deepcopy(model)
    for step in CASCADE:
        for name in modules(step):
            net.get_submodule(name).load_state_dict(start.get_submodule(name).state_dict())
        yield step, net


# ------------------------------------------------------------------ which images, at what size

def parse_score_size(text):
    """argparse type of --score-size: 'train' (the training size) or a side in pixels (at least 8)."""
    if text == "train":
        return text
    size = int(text) if text.isdigit() else 0
    if size < 8:
        raise argparse.ArgumentTypeError(f"{text!r}: pass 'train' or a side in pixels of at least 8, such as 224")
    return size


def score_size(config):
    """The side of the test images a run's saliency is scored on (a config holding --score-size or not).

    X-ray: --score-size, by default SCORE_SIZE whatever the training size, as
    the release scored; 'train' is the training size. A model trained at
    128 px runs at 224 because the ResNet ends in adaptive pooling.
    Synthetic: its images exist at datasets.SIZE only (UsageError for another).
    """
    value = getattr(config, "score_size", None)
    if config.dataset == "synthetic":
        if value not in (None, "train", datasets.SIZE):
            raise UsageError(f"--score-size {value}: the synthetic images exist at {datasets.SIZE} px only; "
                             f"drop the flag or pass train")
        return datasets.SIZE
    if value is None:
        return SCORE_SIZE
    return config.image_size if value == "train" else int(value)


def check_scoring(config):
    """UsageError for a --score-size or --score-images (one choice, or train.py's list of them) that the run's
    dataset cannot have: said before training."""
    score_size(config)
    choices = getattr(config, "score_images", "all")
    choices = [choices] if isinstance(choices, str) else choices
    for images in choices:
        if images not in SCORE_IMAGES:
            raise UsageError(f"--score-images {images!r} is unknown; choose one of {', '.join(SCORE_IMAGES)}")
    if "release" in choices and config.dataset == "synthetic":
        raise UsageError("--score-images release: the release's subset is drawn per site x label cell, which only "
                         "xray and rsna have; pass --score-images all")


_loaded = {}  # the last test split loaded at a scoring size, so the probes and the final row load it once


def scoring_split(config, test, size):
    """The test split scored at `size`: `test` itself at the training size, else the same cohort's test split
    loaded with image_size = size (datasets.load on a copy of the config; the cohort does not depend on it)."""
    if config.dataset == "synthetic" or size == config.image_size:
        return test
    resized = argparse.Namespace(**dict(vars(config), image_size=size))
    key = repr(sorted(vars(resized).items()))
    if key not in _loaded:
        _loaded.clear()
        _loaded[key] = datasets.load(resized)["test"]
    return _loaded[key]


def release_subset(split):
    """--score-images release: (N,) bool over the split's batch order, True for the release's scored images.

    The release scored the first RELEASE_PER_CELL test images of each site x
    label cell in index order; the split's own order stands for it. `scored`
    then keeps the positives with a mask among them. UsageError for a split
    without sites (the synthetic task).
    """
    site = getattr(split, "site", None)
    if site is None:
        raise UsageError("--score-images release: this test split has no sites (only xray and rsna do); "
                         "pass --score-images all")
    cell = F.one_hot(2 * site.cpu() + split.y.cpu(), 4)      # (N, 4): the image's site x label cell
    place = (cell.cumsum(0) * cell).sum(1) - 1              # (N,): 0 for the first image of its cell, ...
    return place < RELEASE_PER_CELL


def figure_sample(n):
    """(n,) bool: the test images the figures' map averages, FIGURE_IMAGES of them (all when fewer), drawn
    under FIGURE_SEED so that the runs of one cohort share them."""
    pick = torch.randperm(n, generator=torch.Generator().manual_seed(FIGURE_SEED))[:FIGURE_IMAGES]
    return torch.zeros(n, dtype=torch.bool).index_fill_(0, pick, True)


# ------------------------------------------------------------------ scoring a run

class _Figures:
    """What plots.py draws from a run: mean maps over every scored image, the first N_EXAMPLES maps, and the
    figures' map over `figure_sample` (test images of both classes, scored or not)."""

    def __init__(self, n_images):
        self.sample = figure_sample(n_images)                   # (N,) over the split's batch order
        self.sums = {"mean_map": 0.0, "mean_input": 0.0, "mean_mask": 0.0}
        self.sample_sums = {"sample_map": 0.0, "sample_input": 0.0, "sample_mask": 0.0}
        self.n_sample = 0
        self.examples = {"maps": [], "inputs": [], "masks": []}

    def add(self, s, x, mask):
        """Scored images: |saliency| s, inputs x and masks, (b, 1, H, W) each."""
        self.sums["mean_map"] += attribution.top_half(s).sum(0).cpu()
        self.sums["mean_input"] += x.sum((0, 1)).cpu()
        self.sums["mean_mask"] += mask.sum((0, 1)).cpu()
        for k, v in zip(self.examples, (s, x, mask)):
            self.examples[k].append(v[:N_EXAMPLES].sum(1).detach().cpu())  # (<=16, H, W)

    def add_sample(self, s, x, mask):
        """Images of the figure sample, as `add`."""
        self.sample_sums["sample_map"] += attribution.top_half(s).sum(0).cpu()
        self.sample_sums["sample_input"] += x.sum((0, 1)).cpu()
        self.sample_sums["sample_mask"] += mask.sum((0, 1)).cpu()
        self.n_sample += len(s)

    def arrays(self, n):
        """The npz's arrays after n scored images (see `_write_npz`); the means of none are left out."""
        mean = lambda sums, count: {k: (v / count).float().numpy() for k, v in sums.items()} if count else {}
        out = {**mean(self.sums, n), **mean(self.sample_sums, self.n_sample), "n_sample": np.array(self.n_sample)}
        if n:
            out.update({k: torch.cat(v)[:N_EXAMPLES].float().numpy() for k, v in self.examples.items()})
        return out


def scored(y, mask):
    """Which images a run is scored on: the positives (class TARGET) whose expert mask is not empty."""
    return (y == attribution.TARGET) & (mask.flatten(1).amax(1) > 0)


def _localise(models, split, explain, batch_size, device, figures=None, box=False, subset=None):
    """Each model's per-image scores on the positive images of `split` that have a mask, in one pass.

    saliency -> abs -> smooth(sigma=1) -> binarize_top_k -> localisation,
    and `map_measures` of the smoothed map (box_mass too when `box`: the
    split is synthetic), batch by batch, every model on the same batch.
    `subset` ((N,) bool over the split's batch order, e.g. `release_subset`)
    limits the images scored to those it marks. Returns ({name: {"iou",
    "iop", "iot", "outside_mass", "pointing"[, "box_mass"]} -> per-image
    tensor}, chance IoU (n,), positives (of the subset) left out for an empty
    mask, {name: maps left out of the mass measures for being zero}).
    `figures` (a _Figures) collects the first model's maps, and its maps of
    the figure sample (the scored images among them are not explained twice).
    """
    per_image = {name: {} for name in models}
    n_zero = dict.fromkeys(models, 0)
    chance, n_empty, start = [], 0, 0
    for x, y, mask in split.batches(batch_size):
        window = slice(start, start + len(y))
        start += len(y)
        wanted = subset[window].to(y.device) if subset is not None else torch.ones_like(y, dtype=torch.bool)
        keep = scored(y, mask) & wanted                          # (B,)
        drawn = figures.sample[window].to(y.device) if figures is not None else torch.zeros_like(keep)
        n_empty += int(((y == attribution.TARGET) & wanted).sum() - keep.sum())
        if keep.any():
            xk, mk = x[keep].to(device), mask[keep].to(device)   # (b, 1, H, W)
            chance.append(attribution.chance_iou(mk).cpu())
            for i, (name, net) in enumerate(models.items()):
                s = explain(net, xk).abs()                       # (b, 1, H, W)
                g = attribution.smooth(s)
                scores, _ = attribution.localisation(attribution.binarize_top_k(g, mk), mk)
                masses, zero = attribution.map_measures(g, mk, datasets.box_pixels(xk, mk) if box else None)
                n_zero[name] += zero
                for k, v in {**scores, **masses}.items():
                    per_image[name].setdefault(k, []).append(v.cpu())
                if figures is not None and i == 0:
                    figures.add(s, xk, mk)
                    shared = drawn[keep].to(device)  # scored images in the figure sample: their maps serve both
                    if shared.any():
                        figures.add_sample(s[shared], xk[shared], mk[shared])
        rest = drawn & ~keep
        if rest.any():  # the sample's other images (negatives, ...): the first model's maps of them alone
            xr, mr = x[rest].to(device), mask[rest].to(device)
            figures.add_sample(explain(next(iter(models.values())), xr).abs(), xr, mr)
    cat = lambda v: torch.cat(v) if v else torch.zeros(0, dtype=torch.float64)
    keys = ("iou", "iop", "iot", "outside_mass", "pointing") + (("box_mass",) if box else ())
    per_image = {name: {k: cat(d.get(k, [])) for k in keys} for name, d in per_image.items()}
    return per_image, cat(chance), n_empty, n_zero


def _subset(split, score_images):
    """`_localise`'s subset for --score-images: None (every positive with a mask) or `release_subset`."""
    if score_images not in SCORE_IMAGES:
        raise UsageError(f"--score-images {score_images!r} is unknown; choose one of {', '.join(SCORE_IMAGES)}")
    return release_subset(split) if score_images == "release" else None


def _mean(v):
    """The mean over the scored images, None if there are none (a blank results cell)."""
    return v.mean().item() if len(v) else None


def _explainer(saliency, ig_steps):
    explain = attribution.SALIENCY[saliency]
    return functools.partial(explain, steps=ig_steps) if saliency == "ig" else explain


def _untrained_key(untrained, split, saliency, ig_steps, batch_size, device, score_images="all"):
    """A digest of everything the untrained network's scores depend on.

    That is the scoring code (this file and the architecture's module), torch's
    version and the device type, the method and its steps, which images are
    scored (--score-images), the network's
    weights and every image, label and mask scored. Any edit to the code makes
    a new key, so a stale score is never read back. A split that decodes its
    images from files (xray.ImageSplit) stands for them by its `fingerprint()`.
    """
    h = hashlib.sha256()
    for path in (__file__, sys.modules[type(untrained).__module__].__file__):
        with open(path, "rb") as f:
            h.update(f.read())
    h.update(f"{torch.__version__} {torch.device(device).type} {saliency} "
             f"{ig_steps if saliency == 'ig' else ''} {batch_size} {score_images}".encode())
    for t in untrained.state_dict().values():
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    if hasattr(split, "fingerprint"):
        h.update(split.fingerprint())
    else:
        for t in (t for batch in split.batches(batch_size) for t in batch):
            h.update(t.cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def _read_cached(path):
    """The cached per-image scores at `path` ({"iou", "iop", "iot"} -> tensor), or None: absent or unreadable
    (then they are computed again and the file rewritten)."""
    try:
        with np.load(path) as npz:
            return {k: torch.from_numpy(npz[k]) for k in ("iou", "iop", "iot")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def score(model, split, saliency="grad", device="cpu", batch_size=None, out_dir=None,
          ig_steps=attribution.IG_STEPS, *, untrained_seed=0, architecture=ResNet18, untrained_cache=None, box=False,
          score_images="all", score_size=None):
    """Localisation of `saliency` on the positive images of `split` that have a mask, with its baselines.

    score_images "release" scores only those of `release_subset`; the row
    records it and `score_size` (the side of `split`'s images, as the caller
    loaded them: see `score_size` and `scoring_split`).

    `model` must already be on `device` (its train/eval mode is left as it
    was). The abs makes the signed methods (ig, occlusion) rank pixels by how
    much they move the logit, in either direction; `ig_steps` is used by ig
    only. Returns the results columns saliency, iou, iop, iot (means over the
    scored images; None if there are none), iou_chance (`chance_iou`'s mean),
    iou_untrained (the same saliency through `untrained_model(untrained_seed,
    architecture)`, by default the ResNet18 train.py trains: pass the run's
    seed, and it is the network the run started from), n_scored, n_empty_masks (positives
    left out for an empty mask), the `map_measures` means outside_mass,
    pointing and (with `box`: a synthetic split) box_mass, over the maps that
    are not zero everywhere, n_zero_maps (those that are), and
    saliency_seconds (all of it, the untrained network's pass included), score_size and score_images.
    With `out_dir`, also writes <out_dir>/saliency.npz of the trained model's maps (see `_write_npz`),
    the figures' map of `figure_sample` included.

    With `untrained_cache` (a directory), the untrained network's per-image
    scores are kept there under a digest of all they depend on
    (`_untrained_key`) and read back instead of recomputed. The runs of one
    seed share that network and their test images, so scoring a seed's seven
    settings with integrated gradients costs 8 passes instead of 14.
    """
    start = time.perf_counter()
    batch_size = batch_size or score_batch(score_size)
    subset = _subset(split, score_images)
    untrained = untrained_model(untrained_seed, architecture).to(device)
    cache = cached = None
    if untrained_cache is not None:
        cache = os.path.join(untrained_cache, _untrained_key(untrained, split, saliency, ig_steps, batch_size,
                                                             device, score_images) + ".npz")
        cached = _read_cached(cache)
    models = {"trained": model} if cached else {"trained": model, "untrained": untrained}
    figures = _Figures(len(split)) if out_dir is not None else None
    per_image, chance, n_empty, n_zero = _localise(models, split, _explainer(saliency, ig_steps), batch_size,
                                                   device, figures, box, subset)
    if cache is not None and cached is None:
        try:
            os.makedirs(untrained_cache, exist_ok=True)
            _write_npz(cache, **{k: per_image["untrained"][k].numpy() for k in ("iou", "iop", "iot")})
        except OSError as e:  # the cache only saves time: the scores computed here still count
            print(f"warning: untrained scores not cached in {untrained_cache} ({e})", file=sys.stderr)
    n = len(chance)
    out = dict(saliency=saliency, **{k: _mean(v) for k, v in per_image["trained"].items()},
               iou_chance=_mean(chance), iou_untrained=_mean((cached or per_image["untrained"])["iou"]),
               n_scored=n, n_empty_masks=n_empty, n_zero_maps=n_zero["trained"], score_size=score_size,
               score_images=score_images)
    if figures is not None and (n or figures.n_sample):
        _write_npz(os.path.join(out_dir, "saliency.npz"), saliency=np.array(saliency), **figures.arrays(n))
    out["saliency_seconds"] = round(time.perf_counter() - start, 3)
    return out


def score_cascade(model, split, saliency="grad", device="cpu", batch_size=None, ig_steps=attribution.IG_STEPS, *,
                  seed=0, architecture=ResNet18, box=False, score_images="all", score_size=None):
    """Yield one results dict per CASCADE step: `score`'s columns for the model randomised down to that step.

    Keys: saliency, randomized (the step: the deepest layer re-initialised),
    iou, iop, iot, iou_chance (the same as `score`'s: it depends on the
    masks only), n_scored, n_empty_masks, the `map_measures` columns,
    saliency_seconds (that step's), score_size and score_images (as `score`'s).
    Each step is scored as soon as it is made, so a caller can record it
    before the next. `seed` draws the new weights (`untrained_model`): pass the run's seed.
    """
    explain = _explainer(saliency, ig_steps)
    batch_size = batch_size or score_batch(score_size)
    subset = _subset(split, score_images)
    for step, net in cascade(model, seed, architecture):
        start = time.perf_counter()
        per_image, chance, n_empty, n_zero = _localise({step: net}, split, explain, batch_size, device, box=box,
                                                       subset=subset)
        yield dict(saliency=saliency, randomized=step, **{k: _mean(v) for k, v in per_image[step].items()},
                   iou_chance=_mean(chance), n_scored=len(chance), n_empty_masks=n_empty, n_zero_maps=n_zero[step],
                   saliency_seconds=round(time.perf_counter() - start, 3), score_size=score_size,
                   score_images=score_images)


def _write_npz(path, **arrays):
    """np.savez to a temp file in the same directory, then os.replace: readers never see half a file.

    Keys written by `score`: mean_map, mean_input, mean_mask (H, W) over all
    scored images; maps (|saliency|), inputs, masks (k, H, W) for the first
    k <= 16 scored images (these six only when an image was scored);
    sample_map, sample_input, sample_mask (H, W): the figures' map, the same
    means over `figure_sample` (up to 500 test images of both classes, scored
    or not), and n_sample, their number; saliency (the method's name).
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

def parse_args(argv=None):
    p = errors.ArgumentParser(prog="saliency.py", description="Score a saved run's saliency against the expert masks.")
    p.add_argument("--run", required=True, help="a run directory holding best.pt (results/runs/<run_id>)")
    p.add_argument("--saliency", choices=tuple(attribution.SALIENCY) + ("all",), default="grad",
                   help="input gradients (the paper's tables), integrated gradients, occlusion, or all three "
                        "(one results row each)")
    p.add_argument("--ig-steps", type=int, default=attribution.IG_STEPS,
                   help="integrated gradients: interpolation steps from the zero baseline (the authors' 200)")
    p.add_argument("--cascade", action="store_true",
                   help="also score the cascading randomisation (Adebayo et al. 2018), one more row per "
                        "re-initialised layer, after the normal rows")
    p.add_argument("--score-size", type=parse_score_size, default=None, metavar="train|PIXELS",
                   help=f"side of the test images scored (default: the run's own --score-size, else {SCORE_SIZE} on "
                        f"xray and rsna as the release scored, whatever the training size; 'train': the training "
                        f"size; synthetic: always {datasets.SIZE})")
    p.add_argument("--score-images", choices=SCORE_IMAGES, default="all",
                   help="all: every positive test image with a mask (the paper's text); release: the release's "
                        f"subset, the first {RELEASE_PER_CELL} test images of each site x label cell in the split's "
                        "order, then the positives with a mask among them (xray and rsna only)")
    p.add_argument("--results", default=None, help="results CSV to append to (default: the run's own)")
    p.add_argument("--untrained-cache", default=None, metavar="DIR",
                   help="where the untrained network's scores are kept for the other runs of the same seed "
                        "(default: untrained-saliency/ beside the run directory; 'none' keeps nothing)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    return p.parse_args(argv)


def scored_test_images(run):
    """A saved run's trained network (CPU) and the test images saliency.py scores (the positives with a mask),
    as (net, x, mask): what the check scripts in checks/ examine. UsageError or datasets.DataError on bad input."""
    net, ckpt = rundir.load_best(run)
    test = datasets.load(argparse.Namespace(**ckpt["config"]))["test"]
    keep = scored(test.y, test.mask)
    return net, test.x[keep], test.mask[keep]


def main(args):
    """Score the test split of a saved run and append kind=saliency rows; returns the rows.

    One row per method (with --saliency all, in attribution.SALIENCY's order), its
    baselines beside the IoU; with --cascade, then one row per method and
    CASCADE step (`randomized` set). Each row is appended as soon as it is
    scored, so an interrupted run keeps the rows already scored.
    """
    if args.ig_steps < 1:
        raise UsageError(f"--ig-steps {args.ig_steps}: must be at least 1; the authors used 200")
    run = args.run.rstrip(os.sep) or args.run
    net, ckpt = rundir.load_best(run)
    config = argparse.Namespace(**ckpt["config"])
    try:
        columns = results.config_columns(config)
    except AttributeError as e:
        raise UsageError(f"--run {run}: best.pt's config lacks {e.name}; re-train the run with this "
                         f"version of train.py") from e
    seed = columns["seed"]  # the untrained network and the cascade's new weights are drawn from it
    if not isinstance(seed, int):
        raise UsageError(f"--run {run}: best.pt's config has no integer seed ({seed!r}); re-train the run with "
                         f"this version of train.py")
    if args.score_size is not None:
        config.score_size = args.score_size
    config.score_images = args.score_images
    check_scoring(config)
    path = args.results or getattr(config, "results", None) or os.path.join("results", "results.csv")
    results.check_file(path)
    device = models.resolve_device(args.device)
    net = net.to(device)
    splits = datasets.load(config)
    size = score_size(config)
    test = scoring_split(config, splits["test"], size)
    methods = tuple(attribution.SALIENCY) if args.saliency == "all" else (args.saliency,)
    cache = args.untrained_cache or os.path.join(os.path.dirname(os.path.abspath(run)), "untrained-saliency")
    cache = None if cache == "none" else cache
    if cache is not None:
        try:  # now, not after minutes of scoring
            os.makedirs(cache, exist_ok=True)
        except OSError as e:
            raise UsageError(f"--untrained-cache {cache}: cannot make that directory ({e.strerror}); pass a "
                             f"writable directory, or 'none' to keep nothing") from e
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
    rows = []
    synthetic = config.dataset == "synthetic"
    # Whether the run's model uses the shortcut does not depend on the saliency method: measured once.
    shortcut = diagnostics.shortcut(net, splits["test"], synthetic, device)
    env = results.environment(device)  # read once, now: the code that scores is the code this process loaded

    def record(scores):
        row = dict(columns, run_id=rundir.run_id(run, ckpt),
                   kind="saliency", status="ok", time=time.strftime("%Y-%m-%dT%H:%M:%S"), **scores,
                   **env, run_dir=run, selected_epoch=ckpt.get("epoch"))
        results.append_row(path, row)
        rows.append(row)

    release = args.score_images == "release"
    for method in methods:
        # The run's own method, scored on every positive, writes <run>/saliency.npz, as train.py
        # would (plots.py draws the figures from it); another method or the release's subset gets
        # its own folder, so that neither the figures nor the methods of --saliency all overwrite
        # each other.
        same = method == getattr(config, "saliency", "grad") and not release
        out_dir = run if same else os.path.join(run, f"saliency-{method}" + ("-release" if release else ""))
        os.makedirs(out_dir, exist_ok=True)
        scores = score(net, test, method, device, out_dir=out_dir, ig_steps=args.ig_steps, untrained_seed=seed,
                       untrained_cache=cache, box=synthetic, score_images=args.score_images, score_size=size)
        record(dict(scores, **shortcut))
        detail = f" ({args.ig_steps} steps)" if method == "ig" else ""
        which = f"the release's subset of {size} px" if release else f"{size} px"
        print(f"{method}{detail} saliency on {scores['n_scored']} positive test images ({which}): "
              f"iou {fmt(scores['iou'])}  "
              f"iop {fmt(scores['iop'])}  iot {fmt(scores['iot'])}  chance {fmt(scores['iou_chance'])}  "
              f"untrained (seed {seed}) {fmt(scores['iou_untrained'])}  ({scores['n_empty_masks']} without a "
              f"mask left out, {scores['saliency_seconds']:.1f} s)\nresults row -> {path}\n"
              f"maps -> {os.path.join(out_dir, 'saliency.npz')}", flush=True)
    for method in methods if args.cascade else ():
        for scores in score_cascade(net, test, method, device, ig_steps=args.ig_steps, seed=seed, box=synthetic,
                                    score_images=args.score_images, score_size=size):
            record(scores)
            print(f"{method} cascade, re-initialised down to {scores['randomized']}: iou {fmt(scores['iou'])}  "
                  f"({scores['saliency_seconds']:.1f} s)", flush=True)
    if args.cascade:
        print(f"cascade rows ({len(methods)} x {len(CASCADE)}) -> {path}", flush=True)
    return rows


def cli(argv=None):
    """Command-line entry: exit 0 when scored, 2 on bad input (one line on stderr, nothing appended)."""
    args = parse_args(argv)
    try:
        main(args)
    except UsageError as e:
        return errors.report(e)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
