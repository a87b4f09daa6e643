"""Datasets with expert masks: the split interface, the synthetic task, and the `load` every dataset goes through.

Every dataset is four splits, ``{"train", "valid", "valid_id", "test"}``:
``valid`` and ``test`` reverse the confounder (out of distribution), while
``valid_id`` is an in-distribution validation split drawn like ``train``. A
split is any object with ``len(split)``, a label tensor ``split.y`` (N,) and a
method ``split.batches(batch_size, generator=None, pin_memory=False)`` that
yields tensors ``(x, y, mask)`` with shapes (B, 1, H, W), (B,), (B, 1, H, W):
CPU tensors, in page-locked memory when ``pin_memory`` is set so that a copy
to the GPU with ``non_blocking=True`` overlaps the computation, except from a
synthetic split moved to the GPU whole (``TensorSplit.to``). ``mask`` is 1 on the
pixels an expert marked as relevant and 0 "outside"; an all-zero mask means
"no annotation" (losses.outside says how each ``--empty-mask`` treats it).
The X-ray splits also carry ``n_bad_images``: how many images
``--skip-bad-images`` left out of the cohort (train.py records it in the run's rows).
``--mask-blur`` widens the masks of the training split only: the validation
and test splits keep the expert masks, so saliency scores (IoU) are measured
against the same ground truth whatever blur a method was trained with.

The synthetic task is the paper's Section 4.1, as in the authors' released
files: the class is the number of crosses (one cross = class 0, two crosses =
class 1; the paper's Figure 3 caption says the opposite, the files decide) and
a small box, the confounder, sits bottom-left for class 0 and bottom-right for
class 1 in the training split; the rule is reversed in the validation and test
splits, so a model that reads the box is perfectly wrong there. This module
also reads those released files, and writes ours in their layout.

The chest X-ray tasks (Section 4.3, ``--dataset xray`` and ``rsna``) live in
cohorts.py (which images, in which split) and xray.py (their files); `load`,
the flags and ``python datasets.py`` cover them too.
"""
import argparse
import csv
import os
import re
import sys
from dataclasses import dataclass

import numpy as np
import scipy.ndimage
import torch

import cohorts
import standins
import xray
from errors import ArgumentParser, DataError, UsageError, report  # DataError: raised here, in cohorts.py and xray.py

DEFAULT_RATIO = {"synthetic": 1.0, **cohorts.DEFAULT_RATIO}
EMPTY_MASK = {"synthetic": "skip", **xray.EMPTY_MASK}  # train.py's --empty-mask default, per dataset
# The synthetic geometry, as measured on the authors' released files.
SIZE = 28                  # images are SIZE x SIZE
ARMS = (1, 2)              # a cross is a '+' of arm half-length 1 or 2: 5 or 9 pixels
BOX_ROWS = slice(23, 25)   # the confounder: a solid 2x3 box 3 px above the bottom edge,
BOX_COLS = {"left": slice(3, 6), "right": slice(22, 25)}  # 3 px in from the left or the right edge
SPLIT_SIZES = {"train": 500, "valid": 128, "valid_id": 128, "test": 128}


@dataclass
class TensorSplit:
    """A split held in memory as tensors; batches are slices of a seeded randperm."""
    x: torch.Tensor     # (N, 1, H, W) float32
    y: torch.Tensor     # (N,) int64
    mask: torch.Tensor  # (N, 1, H, W) float32 in {0, 1}

    def __len__(self):
        return len(self.y)

    def to(self, device):
        """The split with its tensors on `device`: a small split can live on the GPU for the whole run."""
        return TensorSplit(self.x.to(device), self.y.to(device), self.mask.to(device))

    def batches(self, batch_size, generator=None, pin_memory=False):
        """Yield (x, y, mask) batches; shuffled when a torch.Generator is given. A split already on the GPU
        has nothing to pin."""
        n = len(self)
        # The order is drawn on the CPU (the seeded generator lives there) and moved once per epoch,
        # so a split on the GPU gets no host-to-device copy per batch.
        order = torch.randperm(n, generator=generator).to(self.x.device) if generator is not None else None
        pin = pin_memory and self.x.device.type == "cpu"
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size] if order is not None else slice(start, start + batch_size)
            batch = self.x[idx], self.y[idx], self.mask[idx]
            yield tuple(t.pin_memory() for t in batch) if pin else batch


# ---------------------------------------------------------------- generation

def _cross_pixels(cy, cx, arm, size=SIZE):
    """Boolean images (N, size, size) of one '+' per row: centre (cy, cx), half-length arm."""
    r = np.arange(size)[None, :, None]
    c = np.arange(size)[None, None, :]
    cy, cx, arm = cy[:, None, None], cx[:, None, None], arm[:, None, None]
    vertical = (c == cx) & (np.abs(r - cy) <= arm)
    horizontal = (r == cy) & (np.abs(c - cx) <= arm)
    return vertical | horizontal


def _box_pixels(right, size=SIZE):
    """Boolean images (N, size, size) of the confounder box, bottom-right where right is True."""
    img = np.zeros((len(right), size, size), dtype=bool)
    img[right, BOX_ROWS, BOX_COLS["right"]] = True
    img[~right, BOX_ROWS, BOX_COLS["left"]] = True
    return img


def box_image(right, size=SIZE):
    """Torch bool images (N, size, size) of the box at the generator's positions, bottom-right where `right`."""
    return torch.from_numpy(_box_pixels(np.asarray(right, dtype=bool), size))


def box_pixels(x, mask):
    """Which pixels of synthetic images are the box's: lit and outside the (undilated) cross mask.  (B, 1, H, W)

    A box pixel that a cross covers is a cross pixel, as in `Scenes.render`.
    """
    return (x > 0) & (mask == 0)


@dataclass
class Scenes:
    """What n synthetic images show, before they are drawn as pixels."""
    y: np.ndarray        # (n,) class: 0 = one cross, 1 = two crosses
    right: np.ndarray    # (n,) bool: the box is bottom-right (else bottom-left)
    arm: np.ndarray      # (n,) arm half-length, shared by both crosses of an image
    centres: np.ndarray  # (n, 2, 2) (row, col) of the first and second cross; class 0 shows the first only

    def render(self):
        """-> image (n, SIZE, SIZE) bool = crosses | box, and mask = the cross pixels.

        A box pixel a cross covers is a cross pixel, so it is in the mask too.
        """
        first = _cross_pixels(self.centres[:, 0, 0], self.centres[:, 0, 1], self.arm)
        second = _cross_pixels(self.centres[:, 1, 0], self.centres[:, 1, 1], self.arm)
        crosses = first | (second & (self.y == 1)[:, None, None])
        return crosses | _box_pixels(self.right), crosses


def draw_scenes(n, reversed_rule, ratio, rng):
    """Draw n balanced scenes in a random order.

    The box follows the rule (class 0 bottom-left, class 1 bottom-right) in a
    fraction `ratio` of each class, the opposite side in the rest; with
    `reversed_rule` the rule itself is flipped (valid and test splits). Each
    centre is uniform over the positions where the whole cross fits; nothing is
    redrawn, so crosses may touch or overlap each other and the box, as in the
    released files.
    """
    y = np.repeat([0, 1], [n - n // 2, n // 2])
    follows = np.zeros(n, dtype=bool)
    for cls in (0, 1):  # exactly round(ratio * n_c) images of each class follow the rule
        idx = np.flatnonzero(y == cls)
        follows[idx[: int(round(ratio * len(idx)))]] = True
    right = (y == 1) == follows
    if reversed_rule:
        right = ~right
    arm = rng.choice(ARMS, size=n)
    centres = rng.integers(arm[:, None, None], SIZE - arm[:, None, None], size=(n, 2, 2))
    order = rng.permutation(n)
    return Scenes(y[order], right[order], arm[order], centres[order])


def make_synthetic(n, reversed_rule, ratio, rng):
    """Generate n balanced images: returns x (n, 28, 28) in {0,1}, y (n,), crosses mask (n, 28, 28)."""
    scenes = draw_scenes(n, reversed_rule, ratio, rng)
    x, mask = scenes.render()
    return x, scenes.y, mask


def dilate_mask(mask, sigma):
    """The paper's mask dilation: Gaussian-blur the binary mask, keep every pixel reached (> 0)."""
    if not sigma:
        return mask
    blurred = scipy.ndimage.gaussian_filter(mask.astype(np.float64), sigma=(0, sigma, sigma), mode="constant")
    return blurred > 0


def _to_split(x, y, mask, mask_blur):
    """Numpy arrays -> TensorSplit with (N, 1, H, W) float images and dilated masks.

    Nothing is cut from the dilated mask: like the authors' runs, it may cover
    the confounder box when a cross lies near it.
    """
    mask = dilate_mask(mask > 0, mask_blur)
    return TensorSplit(x=torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unsqueeze(1),
                       y=torch.from_numpy(np.asarray(y, dtype=np.int64)),
                       mask=torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)).unsqueeze(1))


def split_sizes(n_train=None, n_eval=None):
    """{"train": 500, "valid": 128, "valid_id": 128, "test": 128}, with the overrides of --n-train and --n-eval."""
    sizes = dict(SPLIT_SIZES)
    if n_train:
        sizes["train"] = n_train
    if n_eval:
        sizes.update(valid=n_eval, valid_id=n_eval, test=n_eval)
    return sizes


# Each split's child of SeedSequence(data_seed): fixed per name, so adding a split never changes another.
STREAMS = {"train": 0, "valid": 1, "test": 2, "valid_id": 3}


def generate_synthetic(data_seed=0, ratio=1.0, n_train=None, n_eval=None):
    """The four synthetic splits as numpy arrays {name: (x, y, mask)}, masks undilated.

    train and valid_id follow the rule in a fraction `ratio` of each class;
    valid and test reverse it in every image. data_seed None means 0.
    """
    streams = np.random.SeedSequence(0 if data_seed is None else data_seed).spawn(len(STREAMS))
    splits = {}
    for name, n in split_sizes(n_train, n_eval).items():
        shifted = name in ("valid", "test")
        splits[name] = make_synthetic(n, reversed_rule=shifted, ratio=1.0 if shifted else ratio,
                                      rng=np.random.default_rng(streams[STREAMS[name]]))
    return splits


def load_synthetic(data_seed=0, ratio=1.0, n_train=None, mask_blur=0.0, n_eval=None):
    """The four synthetic splits, generated from `data_seed`; only the training masks are dilated."""
    return {name: _to_split(x, y, mask, mask_blur if name == "train" else 0.0)
            for name, (x, y, mask) in generate_synthetic(data_seed, ratio, n_train, n_eval).items()}


# ------------------------------------------------------- the released files

# The authors' release holds distractor1-3; distractor4 (valid_id) exists only in our --export.
RELEASE_FILES = {"train": "distractor1", "valid": "distractor2", "valid_id": "distractor4", "test": "distractor3"}
MIRRORED = ("valid", "test")  # stored in the training rule, flipped left-right at load time


def _read_release_split(root, prefix):
    """Read one split of the authors' release: (images, masks, labels) as arrays."""
    labels_path = os.path.join(root, f"{prefix}_labels.csv")
    if not os.path.isfile(labels_path):
        raise DataError(f"--data-root {root}: missing {prefix}_labels.csv (expected the release layout "
                        f"{prefix}_img_N.npy, {prefix}_seg_N.npy, {prefix}_labels.csv)")
    with open(labels_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"file", "class"} <= set(rows[0]):
        raise DataError(f"--data-root: {labels_path} must have the columns file,class")
    images, masks, labels = [], [], []
    for row in rows:  # one-off loading of a few hundred files, not the training path
        n = re.search(r"(\d+)(\.npy)?$", row["file"].strip())
        if n is None:
            raise DataError(f"--data-root: {labels_path} has a file entry {row['file']!r} without an index N")
        img_path = os.path.join(root, f"{prefix}_img_{n.group(1)}.npy")
        seg_path = os.path.join(root, f"{prefix}_seg_{n.group(1)}.npy")
        for path in (img_path, seg_path):
            if not os.path.isfile(path):
                raise DataError(f"--data-root: {path} is listed in {labels_path} but missing")
        img, seg = np.load(img_path), np.load(seg_path)
        if img.shape != (SIZE, SIZE) or seg.shape != (SIZE, SIZE):
            raise DataError(f"--data-root: {img_path} and its mask must be {SIZE}x{SIZE}, got "
                            f"{img.shape} and {seg.shape}")
        images.append(img)
        masks.append(seg)
        labels.append(int(float(row["class"])))
    labels = np.asarray(labels)
    if not np.isin(labels, (0, 1)).all():
        raise DataError(f"--data-root: {labels_path} has classes outside {{0, 1}}")
    return np.stack(images), np.stack(masks), labels


def _balanced_subset(y, n, rng, where):
    """Indices of n images, half per class, drawn without replacement.

    When that is the whole split, the files' own order is kept (and rng is not
    used), so an --export reads back as exactly the splits it was written from.
    """
    per_class = {0: n - n // 2, 1: n // 2}
    if all((y == cls).sum() == k for cls, k in per_class.items()):
        return np.arange(len(y))
    picks = []
    for cls, k in per_class.items():
        pool = np.flatnonzero(y == cls)
        if len(pool) < k:
            raise DataError(f"--data-root: {where} has {len(pool)} images of class {cls}, need {k}; "
                            f"lower --n-train or --n-eval, or add files")
        picks.append(rng.choice(pool, size=k, replace=False))
    return rng.permutation(np.concatenate(picks))


def load_release(root, data_seed=0, n_train=None, mask_blur=0.0, n_eval=None):
    """The released (or --export-ed) synthetic files; valid/test are flipped left-right to reverse the box.

    valid_id is read from distractor4 when present. The authors' release has no
    distractor4: valid_id is then valid's images unflipped (in the training
    rule), i.e. the mirror image of valid.
    """
    if not os.path.isdir(root):
        raise DataError(f"--data-root {root}: no such directory; point it at the folder holding "
                        f"distractor1_img_N.npy, distractor1_seg_N.npy and distractor1_labels.csv")
    rng = np.random.default_rng(0 if data_seed is None else data_seed)
    sizes = split_sizes(n_train, n_eval)
    has_valid_id = os.path.isfile(os.path.join(root, f"{RELEASE_FILES['valid_id']}_labels.csv"))
    arrays = {}
    for name in ("train", "valid", "test", "valid_id"):  # valid_id last: the release's draws stay as they were
        if name == "valid_id" and not has_valid_id:
            arrays[name] = arrays["valid"]
            continue
        x, mask, y = _read_release_split(root, RELEASE_FILES[name])
        idx = _balanced_subset(y, sizes[name], rng, f"{RELEASE_FILES[name]}_labels.csv")
        arrays[name] = x[idx], mask[idx], y[idx]
    splits = {}
    for name in sizes:
        x, mask, y = arrays[name]
        if name in MIRRORED:
            x, mask = x[:, :, ::-1], mask[:, :, ::-1]
        splits[name] = _to_split(x, y, mask, mask_blur if name == "train" else 0.0)
    return splits


def export_synthetic(root, data_seed=0, ratio=1.0, n_train=None, n_eval=None):
    """Write the generated splits in the release layout, so that --data-root root reads them back.

    Each split K gets distractorK_img_N.npy, distractorK_seg_N.npy (float32,
    0/1; the masks undilated) and distractorK_labels.csv (file,class). Like the
    release, valid and test are stored mirrored, in the training rule, because
    load_release flips them; valid_id (distractor4) follows the training rule
    and is stored as it is.
    """
    os.makedirs(root, exist_ok=True)
    for name, (x, y, mask) in generate_synthetic(data_seed, ratio, n_train, n_eval).items():
        prefix = RELEASE_FILES[name]
        if name in MIRRORED:
            x, mask = x[:, :, ::-1], mask[:, :, ::-1]
        with open(os.path.join(root, f"{prefix}_labels.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "class"])
            for i in range(len(y)):  # the release layout is one file per image
                np.save(os.path.join(root, f"{prefix}_img_{i}.npy"), x[i].astype(np.float32))
                np.save(os.path.join(root, f"{prefix}_seg_{i}.npy"), mask[i].astype(np.float32))
                w.writerow([f"{prefix}_img_{i}.npy", int(y[i])])


# ------------------------------------------------------------ pictures of the data

# Figure 1's two settings for the X-ray datasets: with the site-label correlation (the tables' default) and without.
FIGURE_RATIOS = {site: (ratio, 0.5) for site, ratio in cohorts.DEFAULT_RATIO.items()}


def figure(args, out):
    """Draw the picture of args.dataset into `out` (data_<dataset>.png and .pdf, in figures.py's style);
    returns the paths written. The synthetic task: the paper's Figure 3; xray or rsna: Figure 1, from the
    training images (it reads every one of them, twice)."""
    import figures  # matplotlib, only to draw: training never needs it
    os.makedirs(out, exist_ok=True)
    written = []
    fig = figure_synthetic(args) if args.dataset == "synthetic" else figure_xray(args)
    figures.save(fig, out, f"data_{args.dataset}", written)
    return written


def figure_synthetic(args):
    """Figure 3: two images of each class from train and valid; the confounder box outlined."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    import figures
    ratio = 1.0 if args.ratio is None else args.ratio
    splits = load_synthetic(data_seed=args.data_seed, ratio=ratio, n_train=32)
    fig, axes = plt.subplots(2, 4, figsize=(figures.TEXT_WIDTH * 0.75, 3.2), layout="constrained")
    rows, cols = BOX_ROWS, BOX_COLS
    for row, name in zip(axes, ("train", "valid")):
        split = splits[name]
        y = split.y.numpy()
        picks = [np.flatnonzero(y == cls)[k] for cls in (0, 1) for k in (0, 1)]
        for ax, i in zip(row, picks):
            img = split.x[i, 0].numpy()
            ax.imshow(img, cmap="gray")
            ax.contour(split.mask[i, 0].numpy(), levels=[0.5], colors="#56B4E9", linewidths=0.8)
            side = "right" if img[rows, cols["right"]].all() else "left"
            ax.add_patch(Rectangle((cols[side].start - 1, rows.start - 1), cols[side].stop - cols[side].start + 1,
                                   rows.stop - rows.start + 1, fill=False, edgecolor="#E69F00", lw=1.5))
            ax.set_title(f"class {y[i]} ({y[i] + 1} cross{'es' if y[i] == 1 else ''})")
            ax.set(xticks=[], yticks=[])
        row[0].set_ylabel(name)
    fig.supxlabel("orange: the confounder box (it changes side between train and valid); blue: expert mask",
                  fontsize=7)
    return fig


def figure_xray(args):
    """Figure 1: mean training image per site (view), and mean(positive) - mean(negative) with the
    site-label correlation (FIGURE_RATIOS' first) and without it (the second), from the images on disk."""
    import matplotlib.pyplot as plt

    import figures
    dataset = args.dataset
    if args.ratio is not None:
        both = " and ".join(map(str, FIGURE_RATIOS[dataset]))
        raise DataError(f"--figure draws {dataset} at both ratios, {both}; drop --ratio")
    site_means, diffs = None, []
    for ratio in FIGURE_RATIOS[dataset]:
        dargs = fill_defaults(argparse.Namespace(**{**vars(args), "ratio": ratio, "batch_size": 16}))
        cohort, train_split = xray.xray_cohort(dargs)[2], load(dargs)["train"]
        if not np.array_equal(getattr(train_split, "rows", None), cohort.splits["train"]):
            raise DataError(f"--figure: the loaded {dataset} training split is not the cohort's (images left out?)")
        site = cohort.table["site"].to_numpy()[cohort.splits["train"]]
        sums, counts, start = 0.0, np.zeros((2, 2)), 0
        for x, y, _ in train_split.batches(64):  # in row order, so site[start:...] belongs to this batch
            onehot = np.zeros((len(y), 2, 2))
            onehot[np.arange(len(y)), site[start:start + len(y)], y.numpy()] = 1
            sums = sums + np.einsum("bsc,bhw->schw", onehot, x[:, 0].numpy())
            counts += onehot.sum(0)
            start += len(y)
        if site_means is None:
            site_means = sums.sum(1) / counts.sum(1)[:, None, None]
        diffs.append(sums[:, 1].sum(0) / counts[:, 1].sum() - sums[:, 0].sum(0) / counts[:, 0].sum())
    fig, axes = plt.subplots(1, 4, figsize=(figures.TEXT_WIDTH, 2.0), layout="constrained")
    for ax, mean, site in zip(axes, site_means, cohorts.SITES[dataset]):
        ax.imshow(mean, cmap="gray")
        ax.set_title(f"mean {site} image")
    lim = max(np.abs(d).max() for d in diffs) or 1.0
    for ax, diff, ratio in zip(axes[2:], diffs, FIGURE_RATIOS[dataset]):
        im = ax.imshow(diff, cmap="PuOr", vmin=-lim, vmax=lim)
        shift = "with" if ratio == FIGURE_RATIOS[dataset][0] else "without"
        ax.set_title(f"positive − negative,\n{shift} shift ({ratio:.1f})")
    for ax in axes:
        ax.set_axis_off()
    fig.colorbar(im, ax=axes[2:], shrink=0.8, label="mean difference")
    return fig


# ------------------------------------------------------------ entry points

def add_arguments(parser):
    """The data flags train.py (and the sweep, by passing them through) understands."""
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default="synthetic", help=f"one of {', '.join(DATASETS)}")
    g.add_argument("--data-seed", type=int, default=None,
                   help="seed of the generated data / the cohort draw (default: the training --seed, "
                        "so every seed gets its own data)")
    g.add_argument("--ratio", type=float, default=None,
                   help="fraction of training images where the confounder follows the class "
                        "(synthetic default 1.0; xray/rsna default 0.9, 0.5 = no correlation)")
    g.add_argument("--n-train", type=int, default=None, help="synthetic: override the training-set size")
    g.add_argument("--n-eval", type=int, default=None,
                   help="synthetic: override the validation and test sizes (quick runs and tests)")
    g.add_argument("--mask-blur", type=float, default=None,
                   help="dilate the training masks: Gaussian sigma, keep every pixel the blur reaches "
                        "(0 = none); valid/test keep the expert masks that saliency is scored against")
    g.add_argument("--data-root", default=None,
                   help="folder of the authors' released synthetic .npy files (or of a datasets.py --export)")
    xray.add_arguments(parser)


def fill_defaults(args):
    """Set the data flags left unset to args.dataset's defaults, in place (the X-ray ones: xray.IMAGE_SIZE,
    cohorts.VALID_ID_FRACTION); returns args. The synthetic task is always 28 px and keeps its own valid_id."""
    if args.ratio is None:
        args.ratio = DEFAULT_RATIO[args.dataset]
    return xray.fill_defaults(args) if args.dataset in cohorts.SITES else args


def check_args(args):
    """Reject bad data flags with a DataError naming the flag and the fix."""
    if args.dataset not in DATASETS:
        raise DataError(f"--dataset {args.dataset!r} is unknown; choose one of {', '.join(DATASETS)}")
    if args.ratio is not None and not 0.0 <= args.ratio <= 1.0:
        raise DataError(f"--ratio {args.ratio} is outside [0, 1]; pass a fraction such as 0.9")
    if args.mask_blur is not None and args.mask_blur < 0:
        raise DataError(f"--mask-blur {args.mask_blur} is negative; pass a sigma >= 0 (0 = no dilation)")
    if args.dataset == "synthetic":
        if args.n_train is not None and args.n_train < 2 * args.batch_size:
            raise DataError(f"--n-train {args.n_train} is smaller than one batch per class; "
                            f"pass at least {2 * args.batch_size} (2 x --batch-size)")
        if args.n_eval is not None and args.n_eval < 4:
            raise DataError(f"--n-eval {args.n_eval} is too small for an AUC; pass at least 4")
        if getattr(args, "valid_id_fraction", None) is not None:
            raise DataError("--valid-id-fraction applies to --dataset xray and rsna only; the synthetic task draws "
                            "its own valid_id (--n-eval sets its size)")
        return
    for flag, bad in (("--n-train", args.n_train is not None), ("--n-eval", args.n_eval is not None),
                      ("--mask-blur", bool(args.mask_blur)),
                      ("--data-root", args.data_root is not None)):
        if bad:
            raise DataError(f"{flag} applies to --dataset synthetic only; drop it for --dataset {args.dataset}")
    xray.check_args(args)


def synthetic_splits(args):
    """The synthetic splits args describe: the released (or --export-ed) files in --data-root, else generated."""
    if args.data_root:
        return load_release(args.data_root, args.data_seed, args.n_train, args.mask_blur, args.n_eval)
    return load_synthetic(args.data_seed, args.ratio, args.n_train, args.mask_blur, args.n_eval)


# Each dataset's loader, args -> its four splits: a new dataset is an entry here and a module (CONTRIBUTING.md).
LOADERS = {"synthetic": synthetic_splits, "xray": xray.load_xray, "rsna": xray.load_xray}
DATASETS = tuple(LOADERS)


def load(args):
    """The {'train', 'valid', 'valid_id', 'test'} splits that args describe."""
    check_args(args)
    return LOADERS[args.dataset](args)


def parse_args(argv=None):
    """datasets.py's command line (cli's docstring says what each mode does)."""
    p = ArgumentParser(prog="datasets.py", description=cli.__doc__.split(":")[0])
    add_arguments(p)
    p.add_argument("--summary", action="store_true", help="print the cohort's counts (reads no image)")
    p.add_argument("--plan", default=None, metavar="DATASET",
                   help="xray or rsna: where to get the images every cohort of DATASET draws from, which "
                        "archives hold them, and the --cache command to run once they are there (reads no image)")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="synthetic: write the generated splits in the release layout (distractorK_img_N.npy, "
                        "distractorK_seg_N.npy, distractorK_labels.csv; train 1, valid 2, test 3, valid_id 4) "
                        "for --data-root DIR to read back")
    p.add_argument("--stand-in", default=None, metavar="DIR",
                   help="xray or rsna: write STAND-INS, synthetic 64-px images that are NOT X-rays, in the real "
                        "formats and names of the cohort --data-seed draws from the real metadata (8-bit PNG for "
                        "NIH, 16-bit PNG for PadChest, JPEG or --rsna-ext dcm for RSNA), with a learnable signal "
                        "inside the mask tied to the label and one outside it tied to the site; prints the flags "
                        "that train on them")
    p.add_argument("--figure", default=None, metavar="DIR",
                   help="draw the data into DIR/data_<dataset>.png and .pdf: synthetic, the paper's Figure 3 (train "
                        "and valid images with the confounder box); xray or rsna, Figure 1 (each site's mean "
                        "training image, and positive minus negative at both ratios; reads every training image)")
    p.add_argument("--n-per-cell", type=int, default=None, metavar="N",
                   help="--stand-in: only the first N ranked images of each site x label cell, and the subset of "
                        "the metadata that lists them (default: the whole cohort)")
    args = p.parse_args(argv)
    args.batch_size = 16
    if args.data_seed is None:  # no training --seed to default to here
        args.data_seed = 0
    return args


def write_stand_ins(root, dataset, n_per_cell=None):
    """`datasets.py --stand-in root --dataset dataset` as a function: writes the stand-ins and returns the data
    flags that train on them (every flag of the printed command between "train.py" and "--method")."""
    argv = ["--stand-in", root, "--dataset", dataset]
    args = parse_args(argv if n_per_cell is None else [*argv, "--n-per-cell", str(n_per_cell)])
    check_args(args)
    return standins.write(args, root, n_per_cell)[0]


def cli(argv=None):
    """python datasets.py --dataset xray --summary: the cohort without any image; --plan xray: what to
    download for it; with --figure DIR, draw the data (data_<dataset>.png: the paper's Figure 3 for synthetic,
    Figure 1 for xray and rsna); with --export DIR, write the synthetic splits as .npy files; with --stand-in DIR, write
    stand-in X-ray files (synthetic images, not X-rays) to rehearse on; otherwise load the splits (building
    the --cache) and print their sizes. --data-seed defaults to 0 here. Exit 2 on bad input."""
    try:
        args = parse_args(argv)
        if args.plan is not None:
            if args.plan not in cohorts.SITES:
                raise DataError(f"--plan {args.plan!r} is unknown; choose one of {', '.join(cohorts.SITES)}")
            args.dataset = args.plan
        check_args(args)
        if args.n_per_cell is not None and not args.stand_in:
            raise DataError("--n-per-cell applies to --stand-in only; drop it, or pass --stand-in DIR")
        if args.stand_in:  # before the defaults: an unset --ratio means both of the tables' ratios
            flags, table = standins.write(args, args.stand_in, args.n_per_cell)
            print(standins.report(flags, table, args.stand_in))
            return 0
        if args.figure:  # before the defaults: an unset --ratio means both of Figure 1's ratios
            print("wrote:\n" + "\n".join(f"  {path}" for path in figure(args, args.figure)))
            return 0
        fill_defaults(args)
        if args.export:
            if args.dataset != "synthetic":
                raise DataError(f"--export writes the synthetic splits; --dataset {args.dataset} has no export")
            for flag, bad in (("--data-root", args.data_root), ("--mask-blur", args.mask_blur)):
                if bad:
                    raise DataError(f"--export writes the generated synthetic splits with their expert masks; "
                                    f"drop {flag} (pass --mask-blur when reading the export back)")
            export_synthetic(args.export, args.data_seed, args.ratio, args.n_train, args.n_eval)
            sizes = split_sizes(args.n_train, args.n_eval)
            print(f"wrote {', '.join(f'{name} {n}' for name, n in sizes.items())} images to {args.export}; read "
                  f"them back with --data-root {args.export} --n-train {sizes['train']} --n-eval {sizes['test']}")
        elif args.plan:
            print(xray.plan(args))
        elif args.summary and args.dataset in cohorts.SITES:
            print(cohorts.summary(xray.xray_cohort(args)[2]))
        else:
            splits = load(args)
            print(", ".join(f"{name} {len(split)} (positives {int(split.y.sum())})" for name, split in splits.items()))
    except UsageError as e:
        return report(e)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
