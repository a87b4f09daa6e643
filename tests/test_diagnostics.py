"""Does a model use the shortcut? Each measure on hand-built models whose answer is known: one that reads
only the box, one that reads only the crosses, and a constant."""
import numpy as np
import pytest
import torch
import torch.nn as nn

import attribution
import datasets
import diagnostics
import saliency

LEFT, RIGHT, ROWS = datasets.BOX_COLS["left"], datasets.BOX_COLS["right"], datasets.BOX_ROWS


class BoxReader(nn.Module):
    """logit_1 - logit_0 = k * (lit pixels where the right box goes - lit pixels where the left box goes)."""

    def __init__(self, k=50.0):
        super().__init__()
        self.k = k

    def forward(self, x):
        d = self.k * (x[:, 0, ROWS, RIGHT].sum((1, 2)) - x[:, 0, ROWS, LEFT].sum((1, 2)))
        return torch.stack([-d / 2, d / 2], 1)


class CrossReader(nn.Module):
    """Counts the lit pixels outside both box regions: the crosses, and never the box."""

    def forward(self, x):
        x = x.clone()
        x[:, :, ROWS, LEFT] = 0
        x[:, :, ROWS, RIGHT] = 0
        d = x.sum((1, 2, 3)) - 10.0
        return torch.stack([-d / 2, d / 2], 1)


class ConfidentCrossReader(CrossReader):
    """CrossReader's ranking with every logit gap between 19 and 32: a float32 softmax rounds every p to 1.0,
    while float64 log-probabilities keep them apart."""

    def forward(self, x):
        return super().forward(x) + torch.tensor([-12.0, 12.0])


class Constant(nn.Module):
    def forward(self, x):
        return torch.zeros(len(x), 2) + x.sum() * 0


@pytest.fixture(scope="module")
def test_split():
    """A generated test split (box reversed): crosses may touch the box regions, as in the released files."""
    return datasets.load_synthetic(data_seed=5, n_train=32, n_eval=64)["test"]


@pytest.fixture(scope="module")
def clean_split():
    """A test split whose crosses stay in the top half, clear of both box regions: the hand-built models'
    answers are then exact."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 32)
    arm = rng.choice(datasets.ARMS, size=64)
    centres = np.stack([rng.integers(2, 14, size=(64, 2)), rng.integers(2, 26, size=(64, 2))], -1)
    scenes = datasets.Scenes(y, right=y == 0, arm=arm, centres=centres)
    x, mask = scenes.render()
    return datasets._to_split(x, y, mask, 0.0)


def test_a_model_that_reads_only_the_box_is_caught_by_every_ground_truth_measure(clean_split):
    out = diagnostics.shortcut(BoxReader(), clean_split, True, "cpu")
    assert out["box_effect"] == pytest.approx(1.0, abs=1e-6)   # saturated: moving the box flips p
    assert out["test_auc_train_rule"] == 1.0                   # the box where training put it: perfect
    assert out["test_auc_nobox"] == 0.5                        # no box, every score ties
    # Masking the input outside the crosses removes the box, and nothing else: by construction the same AUC.
    assert out["test_auc_masked_input"] == out["test_auc_nobox"]
    assert out["mask_effect"] == pytest.approx(0.5, abs=1e-6)  # |p - 1/2|, with p saturated at 0 or 1


def test_a_confident_model_that_ignores_the_box_has_a_swing_of_exactly_zero(test_split):
    """The swing subtracts train.py's test AUC, which ranks by float64 log-probability: the shortcut columns
    must rank the same way, or a model whose every p rounds to 1.0 in float32 ties all its images (AUC 0.5)."""
    import train
    net = ConfidentCrossReader()
    out = diagnostics.shortcut(net, test_split, True, "cpu")
    test_auc = train.evaluate(net, test_split, 16, "cpu")["auc"]
    assert test_auc > 0.9 and out["test_auc_train_rule"] - test_auc == 0.0
    assert out["test_auc_nobox"] == out["test_auc_masked_input"] == test_auc and out["box_effect"] == 0.0


def test_a_model_that_reads_only_the_crosses_scores_zero_on_every_box_measure(test_split):
    """Even where a cross covers part of a box region: moving the box keeps every cross pixel."""
    out = diagnostics.shortcut(CrossReader(), test_split, True, "cpu")
    assert out["box_effect"] == 0.0 and out["mask_effect"] == 0.0
    x, y, _ = next(test_split.batches(len(test_split)))
    p = CrossReader()(x)[:, 1]
    assert out["test_auc_train_rule"] == out["test_auc_nobox"] == diagnostics.auc(p.numpy(), y.numpy()) > 0.9


def test_a_constant_model_has_no_effect_and_chance_auc(test_split):
    out = diagnostics.shortcut(Constant(), test_split, True, "cpu")
    assert out == dict(box_effect=0.0, test_auc_nobox=0.5, test_auc_train_rule=0.5, test_auc_masked_input=0.5,
                       mask_effect=0.0)


def test_box_variants_move_only_the_box_and_keep_every_cross_pixel(test_split):
    x, y, mask = next(test_split.batches(len(test_split)))
    v = diagnostics.box_variants(x, mask, y)
    crosses = mask > 0
    for name, img in v.items():
        assert torch.equal(img[crosses], x[crosses]), name
    # what shortcut() relies on to measure four variants instead of six
    assert torch.equal(v["nobox"], x * crosses)
    assert torch.equal(v["train_rule"], torch.where((y == 1).view(-1, 1, 1, 1), v["right"], v["left"]))
    box = lambda img: datasets.box_pixels(img, mask)
    assert torch.equal(box(v["right"])[:, 0, ROWS, LEFT].sum(), torch.tensor(0))
    assert not box(v["nobox"]).any()
    # the training rule: class 1 right, class 0 left; the test split itself has it the other way round
    on_right = box(v["train_rule"])[:, 0, ROWS, RIGHT].flatten(1).any(1)
    assert torch.equal(on_right[y == 1], torch.ones(int((y == 1).sum()), dtype=torch.bool))
    assert not box(x)[y == 1][:, 0, ROWS, RIGHT].any()


def test_on_synthetic_masking_the_input_is_removing_the_box_for_any_model(test_split):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                        nn.Linear(16, 2)).eval()
    out = diagnostics.shortcut(net, test_split, True, "cpu")
    assert out["test_auc_masked_input"] == out["test_auc_nobox"]
    x, y, mask = next(test_split.batches(len(test_split)))
    with torch.no_grad():
        p = lambda img: torch.softmax(net(img), 1)[:, 1]
        removed = (p(x) - p(diagnostics.box_variants(x, mask, y)["nobox"])).abs().mean().item()
    assert out["mask_effect"] == pytest.approx(removed, abs=1e-6)


def test_without_a_mask_for_every_image_the_masked_auc_is_blank_and_mask_effect_skips_them(clean_split):
    """RSNA's negatives have no box: filling only the positives would leak the label."""
    half = datasets.TensorSplit(clean_split.x, clean_split.y,
                                clean_split.mask * (clean_split.y == 1).view(-1, 1, 1, 1))
    out = diagnostics.shortcut(BoxReader(), half, False, "cpu")
    assert out["test_auc_masked_input"] is None and out["box_effect"] is None
    x, y, _ = next(half.batches(len(half)))
    p = torch.sigmoid(BoxReader()(x)[:, 1] - BoxReader()(x)[:, 0])[y == 1]
    assert out["mask_effect"] == pytest.approx((p - 0.5).abs().mean().item(), abs=1e-6)


# ------------------------------------------------------------------ where a saliency map's mass lies

def test_map_measures_on_hand_built_maps():
    mask = torch.zeros(4, 1, 5, 5)
    mask[:, :, 1:3, 1:3] = 1
    box = torch.zeros(4, 1, 5, 5, dtype=torch.bool)
    box[:, :, 4, 3:5] = True
    g = torch.zeros(4, 1, 5, 5)
    g[0, 0, 1, 1] = 3.0                     # all inside the mask
    g[1, 0, 4, 3:5] = 1.0                   # all on the box
    g[2] = 1.0                              # flat: its maximum is the first pixel, (0, 0), outside
    # g[3] stays zero: no mass, no maximum
    out, n_zero = attribution.map_measures(g, mask, box)
    assert n_zero == 1
    assert out["outside_mass"].tolist() == [0.0, 1.0, 21 / 25]
    assert out["box_mass"].tolist() == [0.0, 1.0, 2 / 25]
    assert out["pointing"].tolist() == [1.0, 0.0, 0.0]


def test_a_box_readers_saliency_is_all_outside_the_mask_and_on_the_box(clean_split):
    out = saliency.score(BoxReader(k=1.0), clean_split, "grad", architecture=lambda: BoxReader(k=1.0), box=True)
    assert out["outside_mass"] == pytest.approx(1.0) and out["pointing"] == 0.0 and out["n_zero_maps"] == 0
    # The gradient is flat over both box regions (6 px each), so the image's own box holds half of the
    # smoothed map's mass less what the blur spreads off its 6 pixels: the same share in every image.
    region = torch.zeros(1, 1, 28, 28)
    region[:, :, ROWS, RIGHT] = 1
    kept = (attribution.smooth(region) * region).sum() / attribution.smooth(region).sum()
    assert out["box_mass"] == pytest.approx(kept.item() / 2, abs=1e-6)


def test_all_zero_maps_are_counted_and_left_out(clean_split):
    out = saliency.score(Constant(), clean_split, "grad", architecture=Constant, box=True)
    assert out["n_zero_maps"] == out["n_scored"] == 32
    assert out["outside_mass"] is None and out["box_mass"] is None and out["pointing"] is None
