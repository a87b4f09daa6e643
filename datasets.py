"""Datasets with expert masks: the synthetic crosses-and-confounder task.

Every dataset is three splits, ``{"train", "valid", "test"}``. A split is any
object with ``len(split)``, a label tensor ``split.y`` (N,) and a method
``split.batches(batch_size, generator=None)`` that yields CPU tensors
``(x, y, mask)`` with shapes (B, 1, H, W), (B,), (B, 1, H, W). ``mask`` is 1
on the pixels an expert marked as relevant and 0 "outside"; an all-zero mask
means "no annotation" and such images are never masked or penalised.
``--mask-blur`` widens the masks of the training split only: the validation
and test splits keep the expert masks, so saliency scores (IoU) are measured
against the same ground truth whatever blur a method was trained with.

The synthetic task is the paper's Section 4.1: the class is the number of
crosses (two crosses = class 0, one cross = class 1) and a small box, the
confounder, sits bottom-right for class 0 and bottom-left for class 1 in the
training split; the rule is reversed in the validation and test splits, so a
model that reads the box is perfectly wrong there.
"""
import argparse
import csv
import os
import re
from dataclasses import dataclass

import numpy as np
import scipy.ndimage
import torch

DATASETS = ("synthetic",)
SIZE = 28            # synthetic images are SIZE x SIZE
BOX_H, BOX_W = 2, 3  # the confounder: a solid 2x3 box ...
BOX_INSET = 5        # ... 5 pixels in from the bottom edge and from a side edge
SPLIT_SIZES = {"train": 500, "valid": 128, "test": 128}


class DataError(ValueError):
    """Bad data or data location; train.py turns it into a one-line error, exit 2."""


@dataclass
class TensorSplit:
    """A split held in memory as tensors; batches are slices of a seeded randperm."""
    x: torch.Tensor     # (N, 1, H, W) float32
    y: torch.Tensor     # (N,) int64
    mask: torch.Tensor  # (N, 1, H, W) float32 in {0, 1}

    def __len__(self):
        return len(self.y)

    def batches(self, batch_size, generator=None):
        """Yield (x, y, mask) batches; shuffled when a torch.Generator is given."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else None
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size] if order is not None else slice(start, start + batch_size)
            yield self.x[idx], self.y[idx], self.mask[idx]


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
    top = size - BOX_INSET - BOX_H
    for side, left in ((True, size - BOX_INSET - BOX_W), (False, BOX_INSET)):
        img[right == side, top:top + BOX_H, left:left + BOX_W] = True
    return img


def _touching(a, b):
    """Per image: do the pixel sets a and b touch (8-neighbourhood) or overlap?"""
    grown = scipy.ndimage.binary_dilation(a, structure=np.ones((1, 3, 3), bool))
    return (grown & b).any(axis=(1, 2))


def _draw_crosses(n_crosses, forbidden, rng):
    """Draw n_crosses[i] crosses per image, not touching each other nor `forbidden`.

    Centres are uniform over the positions that keep the whole cross inside the
    image; draws that touch are redrawn (rejection sampling, vectorised over images).
    """
    n = len(n_crosses)
    crosses = np.zeros((n, SIZE, SIZE), dtype=bool)
    for k in range(n_crosses.max()):
        todo = n_crosses > k
        layer = np.zeros_like(crosses)
        while todo.any():
            arm = rng.choice([3, 4], size=todo.sum())
            cy = rng.integers(arm, SIZE - arm)
            cx = rng.integers(arm, SIZE - arm)
            layer[todo] = _cross_pixels(cy, cx, arm)
            clash = _touching(layer, crosses | forbidden) & todo
            todo = clash
        crosses |= layer
    return crosses


def dilate_mask(mask, sigma):
    """The paper's mask dilation: Gaussian-blur the binary mask, keep every pixel reached (> 0)."""
    if sigma <= 0:
        return mask
    blurred = scipy.ndimage.gaussian_filter(mask.astype(np.float64), sigma=(0, sigma, sigma), mode="constant")
    return blurred > 0


def make_synthetic(n, reversed_rule, ratio, rng):
    """Generate n balanced images: returns x (n, 28, 28) in {0,1}, y (n,), crosses mask (n, 28, 28).

    The box follows the rule (class 0 bottom-right, class 1 bottom-left) in a
    fraction `ratio` of each class, the opposite side in the rest; with
    `reversed_rule` the rule itself is flipped (valid and test splits).
    """
    y = np.repeat([0, 1], [n - n // 2, n // 2])
    follows = np.zeros(n, dtype=bool)
    for cls in (0, 1):  # exactly round(ratio * n_c) images of each class follow the rule
        idx = np.flatnonzero(y == cls)
        follows[idx[: int(round(ratio * len(idx)))]] = True
    right = (y == 0) == follows
    if reversed_rule:
        right = ~right
    box = _box_pixels(right)
    crosses = _draw_crosses(np.where(y == 0, 2, 1), box, rng)
    order = rng.permutation(n)
    return (crosses | box)[order], y[order], crosses[order]


def _to_split(x, y, mask, mask_blur):
    """Numpy arrays -> TensorSplit with (N, 1, H, W) float images and dilated masks.

    The dilation never grows onto foreground pixels that were outside the
    original mask (the confounder box): the mask stays "the crosses only".
    """
    mask = mask > 0
    mask = dilate_mask(mask, mask_blur) & ~((x > 0) & ~mask)
    return TensorSplit(x=torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unsqueeze(1),
                       y=torch.from_numpy(np.asarray(y, dtype=np.int64)),
                       mask=torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)).unsqueeze(1))


def split_sizes(n_train=None):
    return dict(SPLIT_SIZES, **({"train": n_train} if n_train else {}))


def load_synthetic(data_seed=0, ratio=1.0, n_train=None, mask_blur=0.0):
    """The three synthetic splits, generated from `data_seed` (independent of the training seed)."""
    streams = np.random.SeedSequence(data_seed).spawn(3)
    splits = {}
    for (name, n), stream in zip(split_sizes(n_train).items(), streams):
        train = name == "train"
        x, y, mask = make_synthetic(n, reversed_rule=not train, ratio=ratio if train else 1.0,
                                    rng=np.random.default_rng(stream))
        splits[name] = _to_split(x, y, mask, mask_blur if train else 0.0)
    return splits


# ------------------------------------------------------- the released files

RELEASE_FILES = {"train": "distractor1", "valid": "distractor2", "test": "distractor3"}


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
    """Indices of n images, half per class, drawn without replacement."""
    per_class = {0: n - n // 2, 1: n // 2}
    picks = []
    for cls, k in per_class.items():
        pool = np.flatnonzero(y == cls)
        if len(pool) < k:
            raise DataError(f"--data-root: {where} has {len(pool)} images of class {cls}, need {k}; "
                            f"lower --n-train or add files")
        picks.append(rng.choice(pool, size=k, replace=False))
    return rng.permutation(np.concatenate(picks))


def load_release(root, data_seed=0, n_train=None, mask_blur=0.0):
    """The authors' released synthetic files; valid/test are flipped left-right to reverse the box."""
    if not os.path.isdir(root):
        raise DataError(f"--data-root {root}: no such directory; point it at the folder holding "
                        f"distractor1_img_N.npy, distractor1_seg_N.npy and distractor1_labels.csv")
    rng = np.random.default_rng(data_seed)
    splits = {}
    for name, n in split_sizes(n_train).items():
        x, mask, y = _read_release_split(root, RELEASE_FILES[name])
        idx = _balanced_subset(y, n, rng, f"{RELEASE_FILES[name]}_labels.csv")
        x, mask, y = x[idx], mask[idx], y[idx]
        if name != "train":
            x, mask = x[:, :, ::-1], mask[:, :, ::-1]
        splits[name] = _to_split(x, y, mask, mask_blur if name == "train" else 0.0)
    return splits


# ------------------------------------------------------------ entry points

def add_arguments(parser):
    """The data flags train.py (and the sweep, by passing them through) understands."""
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default="synthetic", help=f"one of {', '.join(DATASETS)}")
    g.add_argument("--data-seed", type=int, default=0, help="seed of the generated data (independent of --seed)")
    g.add_argument("--ratio", type=float, default=None,
                   help="fraction of training images where the confounder follows the class "
                        "(synthetic default 1.0)")
    g.add_argument("--n-train", type=int, default=None, help="override the training-set size")
    g.add_argument("--mask-blur", type=float, default=None,
                   help="dilate the training masks: Gaussian sigma, keep every pixel the blur reaches "
                        "(0 = none); valid/test keep the expert masks that saliency is scored against")
    g.add_argument("--data-root", default=None, help="folder of the authors' released synthetic .npy files")


def check_args(args):
    """Reject bad data flags with a DataError naming the flag and the fix."""
    if args.dataset not in DATASETS:
        raise DataError(f"--dataset {args.dataset!r} is unknown; choose one of {', '.join(DATASETS)}")
    if args.ratio is not None and not 0.0 <= args.ratio <= 1.0:
        raise DataError(f"--ratio {args.ratio} is outside [0, 1]; pass a fraction such as 0.9")
    if args.mask_blur is not None and args.mask_blur < 0:
        raise DataError(f"--mask-blur {args.mask_blur} is negative; pass a sigma >= 0 (0 = no dilation)")
    if args.n_train is not None and args.n_train < 2 * args.batch_size:
        raise DataError(f"--n-train {args.n_train} is smaller than one batch per class; "
                        f"pass at least {2 * args.batch_size} (2 x --batch-size)")


def load(args):
    """The {'train', 'valid', 'test'} splits that args describe."""
    check_args(args)
    if args.data_root:
        return load_release(args.data_root, args.data_seed, args.n_train, args.mask_blur)
    return load_synthetic(args.data_seed, args.ratio, args.n_train, args.mask_blur)
