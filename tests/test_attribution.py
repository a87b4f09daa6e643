"""attribution.py: closed forms on linear models, completeness, occlusion against a loop, exact top-k, the
scores on hand-built masks, and chance IoU against counting and sampling."""
import inspect

import numpy as np
import pytest
import scipy.ndimage
import scipy.stats
import torch
import torch.nn as nn

import attribution
from conftest import Linear
from models import ResNet18


def images(b=4, size=6, seed=0, dtype=torch.float32):
    return torch.rand(b, 1, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def boxes(*spans, size=4):
    """(len(spans), 1, size, size) masks: 1 on the flat pixel indices of each span (a range or list)."""
    m = torch.zeros(len(spans), size * size)
    for i, span in enumerate(spans):
        m[i, list(span)] = 1
    return m.view(-1, 1, size, size)


# ------------------------------------------------------------------ saliency

def test_gradient_saliency_of_a_linear_model_is_abs_w1(linear):
    x = images()
    s = attribution.input_gradients(linear, x)
    assert s.shape == (4, 1, 6, 6)
    assert torch.equal(s, linear.fc.weight[1].abs().view(1, 1, 6, 6).expand_as(s))


def test_gradients_are_per_image_in_eval_mode_and_the_mode_is_restored():
    torch.manual_seed(0)
    net = ResNet18().train()
    x = images(b=3, size=28)
    batched = attribution.input_gradients(net, x)
    # In train mode batch norm would mix the images; eval mode makes one backward per batch exact.
    single = torch.cat([attribution.input_gradients(net, x[i:i + 1]) for i in range(3)])
    assert net.training
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-7)
    net.eval()
    attribution.input_gradients(net, x)
    assert not net.training


def test_integrated_gradients_of_a_linear_model_are_x_times_w1(linear):
    x = images()
    ig = attribution.integrated_gradients(linear, x, steps=4)
    torch.testing.assert_close(ig, x * linear.fc.weight[1].view(1, 1, 6, 6))
    # Chunking the (step, image) pairs (here 5 images' worth of pixels at a time) changes nothing.
    chunked = attribution.integrated_gradients(linear, x, steps=4, chunk_pixels=5 * 36)
    torch.testing.assert_close(chunked, ig)


def smooth_resnet():
    """ResNet18 (eval) with random batch-norm shifts and softplus units.

    A freshly initialised ResNet has zero BN shifts and ReLUs, so it is
    positively homogeneous along the path a*x: its gradient is constant there
    and any quadrature is exact. Shifts make the path non-linear; softplus makes
    it smooth, so the midpoint rule's O(1/m^2) error is visible.
    """
    torch.manual_seed(0)
    net = ResNet18()
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.5 * torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(0.5 * torch.randn(m.num_features, generator=g))
        if hasattr(m, "relu"):
            m.relu = nn.Softplus(beta=5)
    return net.eval()


def test_integrated_gradients_satisfy_completeness_on_a_resnet():
    net = smooth_resnet()
    x = images(b=1, size=28, seed=2)
    with torch.no_grad():
        gap = net(x)[:, 1] - net(torch.zeros_like(x))[:, 1]  # y1(x) - y1(0)
    errors = [((attribution.integrated_gradients(net, x, steps=m).sum((1, 2, 3)) - gap) / gap).abs().item()
              for m in (16, 32)]
    assert errors[1] < 1e-3
    assert errors[1] < errors[0] / 3  # the midpoint rule: doubling the steps quarters the error


class Cubic(nn.Module):
    """Class-1 logit y1 = sum_i x_i^3 (class 0: 0). Its gradient along a*x is 3 a^2 x^2, not constant."""

    def forward(self, x):
        y1 = (x ** 3).sum((1, 2, 3))
        return torch.stack([torch.zeros_like(y1), y1], 1)


def test_integrated_gradients_default_to_the_authors_200_steps():
    # On y1 = sum x^3 the midpoint rule with m steps gives exactly IG_i = x_i^3 (1 - 1/(4 m^2)),
    # so the default's value pins m: 200 and not, say, 199 or the former 32.
    x = images(b=2, size=4, dtype=torch.float64) + 0.5
    assert inspect.signature(attribution.integrated_gradients).parameters["steps"].default == 200
    torch.testing.assert_close(attribution.integrated_gradients(Cubic(), x), x ** 3 * (1 - 1 / (4 * 200 ** 2)),
                               rtol=1e-12, atol=0)
    assert not torch.allclose(attribution.integrated_gradients(Cubic(), x, steps=199),
                              attribution.integrated_gradients(Cubic(), x), rtol=1e-9, atol=0)


def test_a_model_that_ignores_a_region_has_exactly_zero_saliency_there(linear):
    region = torch.zeros(6, 6)
    region[1:4, 2:5] = 1
    with torch.no_grad():
        linear.fc.weight.mul_(region.flatten())
    x = images()
    for s in (attribution.input_gradients(linear, x), attribution.integrated_gradients(linear, x, steps=8)):
        assert (s[:, :, region == 0] == 0).all()
        assert (s[:, :, region == 1] != 0).all()


def summing_model(size):
    """A Linear model whose class-1 logit is the sum of the pixels (plus a bias): a patch's drop is its pixel sum."""
    net = Linear(size=size)
    with torch.no_grad():
        net.fc.weight[1] = 1.0
    return net


def test_occlusion_of_a_pixel_sum_is_each_patchs_sum_including_the_partial_last_patch():
    x = torch.arange(25.0).view(1, 1, 5, 5)  # 5 = 2 x 2 + 1: the last row and column of patches are 1 px wide
    by_hand = torch.tensor([[12, 12, 20, 20, 13],     # 0+1+5+6, 2+3+7+8, 4+9
                            [12, 12, 20, 20, 13],
                            [52, 52, 60, 60, 33],     # 10+11+15+16, 12+13+17+18, 14+19
                            [52, 52, 60, 60, 33],
                            [41, 41, 45, 45, 24.]])   # 20+21, 22+23, 24
    net = summing_model(5)
    o = attribution.occlusion(net, torch.cat([x, -x]), window=2)
    assert o.shape == (2, 1, 5, 5)
    torch.testing.assert_close(o[0, 0], by_hand)
    torch.testing.assert_close(o[1, 0], -by_hand)  # signed: zeroing a patch that lowers the logit is negative
    # Chunks of 3 (copy, image) pairs, which do not divide the 2 x (9 + 1) copies, change nothing.
    torch.testing.assert_close(attribution.occlusion(net, torch.cat([x, -x]), window=2, chunk_pixels=3 * 25), o)


def test_occlusion_window_is_2_px_at_28_and_15_at_224_with_14_px_patches_at_the_border():
    assert [attribution.occlusion_window(s) for s in (28, 64, 224, 512)] == [2, 4, 15, 34]
    # On an all-ones image a patch's drop under the pixel-sum model is its area: 224 = 14 x 15 + 14.
    o = attribution.occlusion(summing_model(224), torch.ones(1, 1, 224, 224))[0, 0]
    assert o[0, 0] == 15 * 15 and o[0, -1] == o[-1, 0] == 15 * 14 and o[-1, -1] == 14 * 14
    assert set(o.unique().tolist()) == {225.0, 210.0, 196.0}


def naive_occlusion(net, x, window):
    """Reference: one forward pass per image and patch, each patch zeroed in place of a copy."""
    out = torch.zeros_like(x)
    with torch.no_grad():
        for b in range(len(x)):
            base = net(x[b:b + 1])[0, 1]
            for i in range(0, x.shape[2], window):
                for j in range(0, x.shape[3], window):
                    occluded = x[b:b + 1].clone()
                    occluded[:, :, i:i + window, j:j + window] = 0
                    out[b, :, i:i + window, j:j + window] = base - net(occluded)[0, 1]
    return out


def test_batched_occlusion_equals_a_loop_over_patches_on_a_conv_model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, 2))
    net[1].running_mean.normal_()
    x = torch.rand(3, 2, 7, 7)  # two channels: a patch zeroes both; 7 = 2 x 3 + 1
    batched = attribution.occlusion(net.train(), x, window=3, chunk_pixels=5 * 98)
    assert net.training  # batch norm used its running statistics inside, and the mode is restored
    torch.testing.assert_close(batched, naive_occlusion(net.eval(), x, window=3), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ post-processing

def test_smooth_is_scipys_gaussian_filter_per_image():
    s = images(b=3, size=10)
    expected = scipy.ndimage.gaussian_filter(s.double().numpy(), sigma=(0, 0, 1, 1), mode="mirror")
    np.testing.assert_allclose(attribution.smooth(s, sigma=1.0).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_top_k_keeps_exactly_k_pixels_even_on_constant_maps():
    mask = boxes(range(3), [], range(16), [5, 9, 15, 2, 7])
    constant = torch.ones(4, 1, 4, 4)
    out = attribution.binarize_top_k(constant, mask)
    assert out.flatten(1).sum(1).tolist() == [3, 0, 16, 5]
    assert torch.equal(out[3].flatten()[:5], torch.ones(5))  # ties go to the lowest flat indices
    s = images(b=4, size=4)
    out = attribution.binarize_top_k(s, mask)
    for i, k in enumerate([3, 0, 16, 5]):
        assert set(out[i].flatten().nonzero().flatten().tolist()) == set(s[i].flatten().topk(k).indices.tolist())


def test_localisation_scores_on_hand_built_masks():
    b = boxes(range(4), range(4), range(4), range(4))
    a = boxes(range(4),            # identical
              range(8, 12),        # disjoint
              range(2, 6),         # half overlap: 2 shared of 4 and 4
              range(2))            # inside the mask: 2 of its 4 pixels
    scores, excluded = attribution.localisation(a, b)
    assert excluded == 0
    torch.testing.assert_close(scores["iou"], torch.tensor([1, 0, 1 / 3, 1 / 2], dtype=torch.float64))
    torch.testing.assert_close(scores["iop"], torch.tensor([1, 0, 1 / 2, 1], dtype=torch.float64))
    torch.testing.assert_close(scores["iot"], torch.tensor([1, 0, 1 / 2, 1 / 2], dtype=torch.float64))


def test_empty_masks_are_excluded_and_counted():
    b = boxes([], range(4), [], range(4, 8))
    a = boxes(range(4), range(4), range(4), range(4))
    scores, excluded = attribution.localisation(a, b)
    assert excluded == 2
    assert scores["iou"].tolist() == [1.0, 0.0]


def test_mean_map_keeps_the_top_half_of_each_smoothed_map_and_averages():
    s = images(b=3, size=8) - 0.5  # signed: the map uses |s|
    single = [attribution.mean_map(s[i:i + 1]) for i in range(3)]
    for i, m in enumerate(single):
        kept = m != 0
        assert kept.sum() == 32  # above the median of 64 distinct values
        torch.testing.assert_close(m[kept], attribution.smooth(s[i:i + 1].abs())[0, 0][kept])
    torch.testing.assert_close(attribution.mean_map(s), torch.stack(single).mean(0))


# ------------------------------------------------------------------ chance

def test_chance_iou_of_masks_counted_by_hand():
    masks = boxes([0],            # 1 pixel of 4: the random pixel is the mask's w.p. 1/4 (IoU 1), else IoU 0
                  [1, 2],         # 2 of 4: both right w.p. 1/6 (IoU 1), one w.p. 4/6 (IoU 1/3), none w.p. 1/6
                  range(4),       # the whole image: any 4 pixels are the mask
                  size=2)
    torch.testing.assert_close(attribution.chance_iou(masks), torch.tensor([1 / 4, 7 / 18, 1], dtype=torch.float64))


def test_chance_iou_is_per_image_and_leaves_out_empty_masks_as_localisation_does():
    masks = boxes([3], [], range(10), [0, 5, 6, 7, 15])
    single = [attribution.chance_iou(masks[i:i + 1]) for i in range(4)]
    assert [len(c) for c in single] == [1, 0, 1, 1]
    torch.testing.assert_close(attribution.chance_iou(masks), torch.cat(single))


def test_chance_iou_is_the_mean_iou_of_random_top_k_maps():
    mask = boxes([0, 7, 8, 20, 35], size=6)  # 5 pixels of 36
    draws = 40_000
    noise = torch.rand(draws, 1, 6, 6, generator=torch.Generator().manual_seed(0))  # ranks: a uniform 5-subset
    masks = mask.expand(draws, -1, -1, -1)
    iou = attribution.localisation(attribution.binarize_top_k(noise, masks), masks)[0]["iou"]
    standard_error = iou.std().item() / draws ** 0.5
    assert attribution.chance_iou(mask).item() == pytest.approx(iou.mean().item(), abs=4 * standard_error)


@pytest.mark.parametrize("k", [1, 300, 25_000, 224 * 224 - 1])
def test_chance_iou_is_the_exact_hypergeometric_expectation_at_the_xray_size(k):
    n = 224 * 224
    overlap = np.arange(k + 1)
    expected = np.sum(scipy.stats.hypergeom(n, k, k).pmf(overlap) * overlap / (2 * k - overlap))
    mask = torch.zeros(1, 1, 224, 224)
    mask.view(-1)[-k:] = 1
    assert attribution.chance_iou(mask).item() == pytest.approx(expected, rel=1e-8)
