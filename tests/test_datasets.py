"""The synthetic task: labels, confounder rule, masks, and the released-files loader."""
import csv
import os

import numpy as np
import pytest
import scipy.ndimage
import torch

import datasets

BOX_LEFT = (slice(21, 23), slice(5, 8))     # rows 5 px above the bottom, 5 px from the left edge
BOX_RIGHT = (slice(21, 23), slice(20, 23))


@pytest.fixture(scope="module")
def splits():
    return datasets.load_synthetic(data_seed=0, ratio=1.0, mask_blur=0.0)


def test_sizes_and_balance(splits):
    assert {k: len(v) for k, v in splits.items()} == {"train": 500, "valid": 128, "test": 128}
    for split in splits.values():
        assert split.y.sum().item() == len(split) // 2
        assert split.x.shape[1:] == (1, 28, 28) and set(split.x.unique().tolist()) <= {0.0, 1.0}


def test_labels_match_cross_counts(splits):
    for split in splits.values():
        crosses = split.mask[:, 0].numpy() > 0
        counts = np.array([scipy.ndimage.label(c)[1] for c in crosses])
        assert np.array_equal(counts, np.where(split.y.numpy() == 0, 2, 1))


def _box_right(split):
    x = split.x[:, 0]
    right = x[:, BOX_RIGHT[0], BOX_RIGHT[1]].flatten(1).all(1)
    left = x[:, BOX_LEFT[0], BOX_LEFT[1]].flatten(1).all(1)
    assert torch.equal(right, ~left)  # exactly one box per image
    return right


def test_box_follows_class_in_train_and_is_reversed_in_valid_test(splits):
    assert torch.equal(_box_right(splits["train"]), splits["train"].y == 0)
    for name in ("valid", "test"):
        assert torch.equal(_box_right(splits[name]), splits[name].y == 1)


def test_ratio_sets_the_fraction_following_the_rule():
    split = datasets.load_synthetic(data_seed=1, ratio=0.9)["train"]
    follows = _box_right(split) == (split.y == 0)
    assert follows.float().mean().item() == pytest.approx(0.9, abs=0.01)


def test_mask_is_crosses_only_and_blur_dilates_without_reaching_the_box(splits):
    split = splits["train"]
    assert torch.equal(split.mask * split.x, split.mask)           # mask pixels are cross pixels
    assert (split.mask[:, 0, 21:23].sum() < split.x[:, 0, 21:23].sum())  # the box is not in the mask
    widened = datasets.load_synthetic(data_seed=0, ratio=1.0, mask_blur=0.818)
    wide = widened["train"]
    assert torch.equal(widened["test"].mask, splits["test"].mask)  # scoring keeps the expert masks
    assert torch.equal(wide.x, split.x)
    assert (wide.mask >= split.mask).all() and wide.mask.sum() > 2 * split.mask.sum()
    box = split.x * (1 - split.mask)
    assert (wide.mask * box).sum() == 0


def test_same_data_seed_same_data_other_seed_other_data():
    a = datasets.load_synthetic(data_seed=3, n_train=40)["train"]
    b = datasets.load_synthetic(data_seed=3, n_train=40)["train"]
    c = datasets.load_synthetic(data_seed=4, n_train=40)["train"]
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)


def test_batches_cover_the_split_in_a_seeded_order(splits):
    split = splits["valid"]
    ys = [y for _, y, _ in split.batches(16, torch.Generator().manual_seed(0))]
    again = [y for _, y, _ in split.batches(16, torch.Generator().manual_seed(0))]
    assert all(torch.equal(a, b) for a, b in zip(ys, again))
    assert torch.cat(ys).sort().values.tolist() == split.y.sort().values.tolist()


def write_release(root, n_per_class=20, seed=0):
    """A small tree in the authors' release layout, made from our own generator."""
    rng = np.random.default_rng(seed)
    for prefix in ("distractor1", "distractor2", "distractor3"):
        x, y, mask = datasets.make_synthetic(2 * n_per_class, reversed_rule=False, ratio=1.0, rng=rng)
        with open(os.path.join(root, f"{prefix}_labels.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "class"])
            for i in range(len(y)):
                np.save(os.path.join(root, f"{prefix}_img_{i}.npy"), x[i].astype(np.float32))
                np.save(os.path.join(root, f"{prefix}_seg_{i}.npy"), mask[i].astype(np.float32))
                w.writerow([f"{prefix}_img_{i}.npy", int(y[i])])


def test_release_loader_reads_the_layout_and_flips_valid_test(tmp_path):
    write_release(tmp_path)
    splits = datasets.load_release(str(tmp_path), data_seed=0, n_train=32, n_eval=16)
    assert {k: len(v) for k, v in splits.items()} == {"train": 32, "valid": 16, "test": 16}
    assert torch.equal(_box_right(splits["train"]), splits["train"].y == 0)
    assert torch.equal(_box_right(splits["test"]), splits["test"].y == 1)  # flipped at load time


def test_release_loader_errors_name_the_problem(tmp_path):
    with pytest.raises(datasets.DataError, match="no such directory"):
        datasets.load_release(str(tmp_path / "nope"))
    with pytest.raises(datasets.DataError, match="distractor1_labels.csv"):
        datasets.load_release(str(tmp_path))
