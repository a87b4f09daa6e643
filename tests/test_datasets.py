"""The synthetic task as measured on the authors' released files, and the loader of those files.

The geometry facts (arms, box, class <-> crosses, the rates of crosses near
the box) come from the 512 released training files.
"""
import argparse
import os

import numpy as np
import pytest
import scipy.ndimage
import torch

import datasets

BOX_LEFT = (slice(23, 25), slice(3, 6))     # rows 23-24 (3 px above the bottom edge), columns 3-5
BOX_RIGHT = (slice(23, 25), slice(22, 25))  # ... or columns 22-24 (3 px in from the right edge)


@pytest.fixture(scope="module")
def splits():
    return datasets.load_synthetic(data_seed=0, ratio=1.0, mask_blur=0.0)


@pytest.fixture(scope="module")
def many():
    """5000 training scenes and their pixels: enough to measure rates to about half a percent."""
    scenes = datasets.draw_scenes(5000, reversed_rule=False, ratio=1.0, rng=np.random.default_rng(2021))
    x, mask = scenes.render()
    return scenes, x, mask


def plus(cy, cx, arm):
    """(N, 28, 28) bool: one '+' per image, written out independently of the generator."""
    r, c = np.ogrid[:28, :28]
    cy, cx, arm = (np.asarray(v)[:, None, None] for v in (cy, cx, arm))
    return ((r == cy) & (abs(c - cx) <= arm)) | ((c == cx) & (abs(r - cy) <= arm))


def box_pixels(right):
    box = np.zeros((len(right), 28, 28), bool)
    box[right, BOX_RIGHT[0], BOX_RIGHT[1]] = True
    box[~right, BOX_LEFT[0], BOX_LEFT[1]] = True
    return box


def _box_right(split):
    x = split.x[:, 0]
    right = x[:, BOX_RIGHT[0], BOX_RIGHT[1]].flatten(1).all(1)
    left = x[:, BOX_LEFT[0], BOX_LEFT[1]].flatten(1).all(1)
    assert torch.equal(right, ~left)  # exactly one box per image
    return right


# ---------------------------------------------------------------- splits

def test_four_balanced_binary_splits(splits):
    assert {k: len(v) for k, v in splits.items()} == {"train": 500, "valid": 128, "valid_id": 128, "test": 128}
    for split in splits.values():
        assert split.y.sum().item() == len(split) // 2
        assert split.x.shape[1:] == (1, 28, 28) and set(split.x.unique().tolist()) <= {0.0, 1.0}


def test_n_eval_sizes_every_evaluation_split():
    sizes = {k: len(v) for k, v in datasets.load_synthetic(n_train=40, n_eval=12).items()}
    assert sizes == {"train": 40, "valid": 12, "valid_id": 12, "test": 12}


def test_box_is_bottom_left_for_class_0_in_train_and_valid_id_and_reversed_in_valid_test(splits):
    for name in ("train", "valid_id"):
        assert torch.equal(_box_right(splits[name]), splits[name].y == 1)
    for name in ("valid", "test"):
        assert torch.equal(_box_right(splits[name]), splits[name].y == 0)


def test_ratio_sets_the_fraction_following_the_rule_in_train_and_valid_id():
    splits = datasets.load_synthetic(data_seed=1, ratio=0.9)
    for name in ("train", "valid_id"):
        follows = _box_right(splits[name]) == (splits[name].y == 1)
        assert follows.float().mean().item() == pytest.approx(0.9, abs=0.01)
    assert torch.equal(_box_right(splits["test"]), splits["test"].y == 0)  # valid/test: always reversed


def test_valid_id_is_its_own_draw(splits):
    assert not torch.equal(splits["valid_id"].x, splits["train"].x[:128])
    assert not torch.equal(splits["valid_id"].x, splits["valid"].x)


# ---------------------------------------------------------------- geometry

def test_class_0_is_one_cross_and_class_1_two(many):
    scenes, x, mask = many
    n_px = mask.sum((1, 2))
    r, c = np.ogrid[:28, :28]
    centroid_r = np.rint((mask * r).sum((1, 2)) / n_px).astype(int)
    centroid_c = np.rint((mask * c).sum((1, 2)) / n_px).astype(int)
    one_cross = (plus(centroid_r, centroid_c, (n_px - 1) // 4) == mask).all((1, 2))
    first, second = scenes.centres[:, 0], scenes.centres[:, 1]
    distinct = (first != second).any(1)
    assert one_cross[scenes.y == 0].all()                 # the mask is a single '+'
    assert not one_cross[(scenes.y == 1) & distinct].any()  # ... and two distinct '+' never look like one


def test_arm_is_one_or_two_and_shared_by_both_crosses(many):
    scenes, x, mask = many
    n_px = mask.sum((1, 2))
    single = n_px[scenes.y == 0]
    assert set(single.tolist()) == {5, 9} and 0.45 < (single == 5).mean() < 0.55
    cross_size = 4 * scenes.arm + 1
    both = plus(*scenes.centres[:, 0].T, scenes.arm) | plus(*scenes.centres[:, 1].T, scenes.arm)
    two = scenes.y == 1
    assert (both[two] == mask[two]).all()                  # the drawn arm is the arm of both crosses
    assert (n_px[two] <= 2 * cross_size[two]).all()        # 10 or 18 pixels, fewer where they overlap
    assert (n_px[two] == 2 * cross_size[two]).mean() > 0.9


def test_centres_are_uniform_over_the_positions_where_the_whole_cross_fits(many):
    scenes, x, mask = many
    for arm in (1, 2):
        centres = scenes.centres[scenes.arm == arm].reshape(-1)  # rows and columns alike
        counts = np.bincount(centres, minlength=28)
        inside = counts[arm:28 - arm]
        assert counts[:arm].sum() == counts[28 - arm:].sum() == 0
        assert inside.min() > 0.75 * inside.mean() and inside.max() < 1.25 * inside.mean()


def test_box_is_a_solid_2x3_block_and_everything_else_is_cross(many):
    scenes, x, mask = many
    box = box_pixels(scenes.right)
    assert (x[box.nonzero()]).all()           # the whole box is drawn ...
    assert not (x & ~mask & ~box).any()       # ... and every other lit pixel is a cross pixel
    assert (x == (mask | box)).all()


def test_a_cross_over_the_box_is_a_cross_pixel_in_image_and_mask(many):
    scenes, x, mask = many
    covered = (mask & box_pixels(scenes.right)).any((1, 2))
    assert 0.02 < covered.mean() < 0.07       # overlaps are drawn, not rejected
    assert x[covered][mask[covered]].all()


def test_about_9_percent_of_images_have_a_cross_touching_or_over_the_box(many):
    scenes, x, mask = many
    near = scipy.ndimage.binary_dilation(mask, structure=np.ones((1, 3, 3), bool))  # 8-neighbourhood
    rate = (near & box_pixels(scenes.right)).any((1, 2)).mean()
    assert rate == pytest.approx(0.09, abs=0.015)  # released files: 9%


@pytest.mark.parametrize("sigma, measured", [(0.64, 0.15), (0.818, 0.15), (1.0, 0.19)])
def test_the_dilated_mask_reaches_the_box_as_often_as_in_the_files(many, sigma, measured):
    scenes, x, mask = many
    box_only = x & ~mask
    rate = (datasets.dilate_mask(mask, sigma) & box_only).any((1, 2)).mean()
    assert rate == pytest.approx(measured, abs=0.025)  # 512 files: +-1.6% sampling error alone


def test_blur_keeps_every_pixel_it_reaches(many):
    _, _, mask = many
    for sigma, radius in ((0.64, 3), (0.818, 3), (1.0, 4)):  # scipy truncates the Gaussian at 4 sigma
        square = np.ones((1, 2 * radius + 1, 2 * radius + 1), bool)
        assert (datasets.dilate_mask(mask[:200], sigma) == scipy.ndimage.binary_dilation(mask[:200], square)).all()


# ---------------------------------------------------------------- masks in the splits

def test_mask_is_the_crosses_and_the_blur_widens_the_training_masks_only(splits):
    split = splits["train"]
    assert torch.equal(split.mask * split.x, split.mask)  # mask pixels are cross pixels
    widened = datasets.load_synthetic(data_seed=0, ratio=1.0, mask_blur=0.818)
    wide = widened["train"]
    for name in ("valid", "valid_id", "test"):  # scoring keeps the expert masks
        assert torch.equal(widened[name].mask, splits[name].mask)
    assert torch.equal(wide.x, split.x)
    assert (wide.mask >= split.mask).all() and wide.mask.sum() > 2 * split.mask.sum()
    box_only = split.x * (1 - split.mask)
    reaches = (wide.mask * box_only).flatten(1).any(1).float().mean().item()
    assert 0.1 < reaches < 0.2  # nothing is cut away: the widened mask may cover the box


def test_same_data_seed_same_data_other_seed_other_data():
    a = datasets.load_synthetic(data_seed=3, n_train=40)["train"]
    b = datasets.load_synthetic(data_seed=3, n_train=40)["train"]
    c = datasets.load_synthetic(data_seed=4, n_train=40)["train"]
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)


def test_data_seed_defaults_to_none_and_none_means_0_in_datasets():
    p = argparse.ArgumentParser()
    datasets.add_arguments(p)
    assert p.parse_args([]).data_seed is None  # train.py turns it into the training --seed
    a = datasets.load_synthetic(data_seed=None, n_train=40)["train"]
    assert torch.equal(a.x, datasets.load_synthetic(data_seed=0, n_train=40)["train"].x)


def test_every_dataset_is_one_loader_with_its_defaults_and_load_goes_through_it(monkeypatch):
    assert datasets.DATASETS == tuple(datasets.LOADERS) == ("synthetic", "xray", "rsna")
    assert set(datasets.DEFAULT_RATIO) == set(datasets.EMPTY_MASK) == set(datasets.LOADERS)
    p = argparse.ArgumentParser()
    datasets.add_arguments(p)
    args = p.parse_args(["--n-train", "40", "--ratio", "1"])
    args.batch_size = 16
    assert torch.equal(datasets.load(args)["train"].x, datasets.load_synthetic(None, 1.0, n_train=40)["train"].x)
    monkeypatch.setitem(datasets.LOADERS, "synthetic", lambda a: {"from": a})
    assert datasets.load(args) == {"from": args}


def test_batches_cover_the_split_in_a_seeded_order(splits):
    """A generator shuffles (the same seed, the same order; another seed, another), every image comes once
    with its own label and mask, and without a generator the order is the split's."""
    split = splits["valid"]
    drawn = lambda seed: [torch.cat(t) for t in zip(*split.batches(16, torch.Generator().manual_seed(seed)))]
    x, y, mask = drawn(0)
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, split.x[order]) and torch.equal(y, split.y[order]) and torch.equal(mask, split.mask[order])
    assert torch.equal(drawn(0)[0], x) and not torch.equal(drawn(1)[0], x) and not torch.equal(x, split.x)
    assert torch.equal(torch.cat([b[0] for b in split.batches(16)]), split.x)


def test_batches_are_pinned_only_when_asked(splits, monkeypatch):
    """pin_memory=True is for a CUDA run, which copies with non_blocking=True; a CPU run is left as it was."""
    pinned = []  # no GPU here: record what would be pinned
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda t: pinned.append(t) or t)
    list(splits["valid"].batches(16))
    assert pinned == []
    batches = [t for batch in splits["valid"].batches(16, pin_memory=True) for t in batch]
    assert len(pinned) == len(batches) == 3 * 8 and all(p is t for p, t in zip(pinned, batches))


def test_a_split_moved_off_the_cpu_batches_there_and_has_nothing_to_pin(splits, monkeypatch):
    pinned = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda t: pinned.append(t) or t)
    moved = splits["valid"].to("meta")  # a device without memory: only shapes, like a GPU we do not have
    x, y, mask = next(moved.batches(16, torch.Generator().manual_seed(0), pin_memory=True))
    assert {t.device.type for t in (x, y, mask)} == {"meta"} and x.shape == (16, 1, 28, 28) and pinned == []


# ---------------------------------------------------------------- release files and --export

EXPORT = ["--dataset", "synthetic", "--data-seed", "3", "--ratio", "0.9", "--n-train", "40", "--n-eval", "12"]


def test_export_reads_back_as_the_same_splits(tmp_path):
    assert datasets.cli(EXPORT + ["--export", str(tmp_path)]) == 0
    for blur in (0.0, 0.818):
        made = datasets.load_synthetic(data_seed=3, ratio=0.9, n_train=40, n_eval=12, mask_blur=blur)
        read = datasets.load_release(str(tmp_path), data_seed=5, n_train=40, n_eval=12, mask_blur=blur)
        assert list(read) == list(made)
        for name in made:
            assert torch.equal(read[name].x, made[name].x) and torch.equal(read[name].y, made[name].y)
            assert torch.equal(read[name].mask, made[name].mask)


def test_export_stores_every_split_in_the_training_rule_like_the_release(tmp_path):
    datasets.cli(EXPORT + ["--export", str(tmp_path)])
    for k in (1, 2, 3, 4):
        x, mask, y = datasets._read_release_split(str(tmp_path), f"distractor{k}")
        assert set(np.unique(x)) == {0.0, 1.0} and ((mask > 0) <= (x > 0)).all()
        split = datasets._to_split(x, y, mask, 0.0)
        follows = (_box_right(split) == (split.y == 1)).float().mean().item()
        assert follows == pytest.approx({1: 18 / 20, 4: 5 / 6}.get(k, 1.0))  # round(0.9 n) per class


def test_export_refuses_what_it_would_not_write(tmp_path, capsys):
    assert datasets.cli(EXPORT + ["--export", str(tmp_path), "--mask-blur", "0.8"]) == 2
    assert "--mask-blur" in capsys.readouterr().err and not os.listdir(tmp_path)


def write_release(root, n_per_class=20, seed=0):
    """A small tree like the authors' release (distractor1-3, no valid_id), from our own generator.

    tests/test_robustness.py builds its bad release trees on it.
    """
    datasets.export_synthetic(str(root), data_seed=seed, n_train=2 * n_per_class, n_eval=2 * n_per_class)
    for name in os.listdir(root):
        if name.startswith("distractor4"):
            os.remove(os.path.join(root, name))


def test_release_loader_draws_balanced_subsets_and_flips_valid_test(tmp_path):
    write_release(tmp_path)
    splits = datasets.load_release(str(tmp_path), data_seed=0, n_train=32, n_eval=16)
    assert {k: len(v) for k, v in splits.items()} == {"train": 32, "valid": 16, "valid_id": 16, "test": 16}
    assert all(v.y.sum().item() == len(v) // 2 for v in splits.values())
    assert torch.equal(_box_right(splits["train"]), splits["train"].y == 1)
    assert torch.equal(_box_right(splits["test"]), splits["test"].y == 0)  # flipped at load time


def test_without_distractor4_valid_id_is_the_mirror_image_of_valid(tmp_path):
    write_release(tmp_path)
    splits = datasets.load_release(str(tmp_path), data_seed=0, n_train=32, n_eval=16)
    valid, valid_id = splits["valid"], splits["valid_id"]
    assert torch.equal(valid_id.x, valid.x.flip(-1)) and torch.equal(valid_id.y, valid.y)
    assert torch.equal(_box_right(valid_id), valid_id.y == 1)  # the training rule, as on disk


def test_release_loader_errors_name_the_problem(tmp_path):
    with pytest.raises(datasets.DataError, match="no such directory"):
        datasets.load_release(str(tmp_path / "nope"))
    with pytest.raises(datasets.DataError, match="distractor1_labels.csv"):
        datasets.load_release(str(tmp_path))
