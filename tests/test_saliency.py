"""saliency.py: closed forms on linear models, completeness, exact top-k, the scores, score() and the CLI."""
import csv
import inspect

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn as nn

import datasets
import results
import saliency
import train
from conftest import Linear
from models import ResNet18

NPZ_SHAPES = {"mean_map": (28, 28), "mean_input": (28, 28), "mean_mask": (28, 28),
              "maps": (16, 28, 28), "inputs": (16, 28, 28), "masks": (16, 28, 28), "saliency": ()}


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
    s = saliency.input_gradients(linear, x)
    assert s.shape == (4, 1, 6, 6)
    assert torch.equal(s, linear.fc.weight[1].abs().view(1, 1, 6, 6).expand_as(s))


def test_gradients_are_per_image_in_eval_mode_and_the_mode_is_restored():
    torch.manual_seed(0)
    net = ResNet18().train()
    x = images(b=3, size=28)
    batched = saliency.input_gradients(net, x)
    # In train mode batch norm would mix the images; eval mode makes one backward per batch exact.
    single = torch.cat([saliency.input_gradients(net, x[i:i + 1]) for i in range(3)])
    assert net.training
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-7)
    net.eval()
    saliency.input_gradients(net, x)
    assert not net.training


def test_integrated_gradients_of_a_linear_model_are_x_times_w1(linear):
    x = images()
    ig = saliency.integrated_gradients(linear, x, steps=4)
    torch.testing.assert_close(ig, x * linear.fc.weight[1].view(1, 1, 6, 6))
    # Chunking the (step, image) pairs (here 5 images' worth of pixels at a time) changes nothing.
    chunked = saliency.integrated_gradients(linear, x, steps=4, chunk_pixels=5 * 36)
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
    errors = [((saliency.integrated_gradients(net, x, steps=m).sum((1, 2, 3)) - gap) / gap).abs().item()
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
    assert inspect.signature(saliency.integrated_gradients).parameters["steps"].default == 200
    torch.testing.assert_close(saliency.integrated_gradients(Cubic(), x), x ** 3 * (1 - 1 / (4 * 200 ** 2)),
                               rtol=1e-12, atol=0)
    assert not torch.allclose(saliency.integrated_gradients(Cubic(), x, steps=199),
                              saliency.integrated_gradients(Cubic(), x), rtol=1e-9, atol=0)


def test_a_model_that_ignores_a_region_has_exactly_zero_saliency_there(linear):
    region = torch.zeros(6, 6)
    region[1:4, 2:5] = 1
    with torch.no_grad():
        linear.fc.weight.mul_(region.flatten())
    x = images()
    for s in (saliency.input_gradients(linear, x), saliency.integrated_gradients(linear, x, steps=8)):
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
    o = saliency.occlusion(net, torch.cat([x, -x]), window=2)
    assert o.shape == (2, 1, 5, 5)
    torch.testing.assert_close(o[0, 0], by_hand)
    torch.testing.assert_close(o[1, 0], -by_hand)  # signed: zeroing a patch that lowers the logit is negative
    # Chunks of 3 (copy, image) pairs, which do not divide the 2 x (9 + 1) copies, change nothing.
    torch.testing.assert_close(saliency.occlusion(net, torch.cat([x, -x]), window=2, chunk_pixels=3 * 25), o)


def test_occlusion_window_is_2_px_at_28_and_15_at_224_with_14_px_patches_at_the_border():
    assert [saliency.occlusion_window(s) for s in (28, 64, 224, 512)] == [2, 4, 15, 34]
    # On an all-ones image a patch's drop under the pixel-sum model is its area: 224 = 14 x 15 + 14.
    o = saliency.occlusion(summing_model(224), torch.ones(1, 1, 224, 224))[0, 0]
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
    batched = saliency.occlusion(net.train(), x, window=3, chunk_pixels=5 * 98)
    assert net.training  # batch norm used its running statistics inside, and the mode is restored
    torch.testing.assert_close(batched, naive_occlusion(net.eval(), x, window=3), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ post-processing

def test_smooth_is_scipys_gaussian_filter_per_image():
    s = images(b=3, size=10)
    expected = scipy.ndimage.gaussian_filter(s.double().numpy(), sigma=(0, 0, 1, 1), mode="mirror")
    np.testing.assert_allclose(saliency.smooth(s, sigma=1.0).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_top_k_keeps_exactly_k_pixels_even_on_constant_maps():
    mask = boxes(range(3), [], range(16), [5, 9, 15, 2, 7])
    constant = torch.ones(4, 1, 4, 4)
    out = saliency.binarize_top_k(constant, mask)
    assert out.flatten(1).sum(1).tolist() == [3, 0, 16, 5]
    assert torch.equal(out[3].flatten()[:5], torch.ones(5))  # ties go to the lowest flat indices
    s = images(b=4, size=4)
    out = saliency.binarize_top_k(s, mask)
    for i, k in enumerate([3, 0, 16, 5]):
        assert set(out[i].flatten().nonzero().flatten().tolist()) == set(s[i].flatten().topk(k).indices.tolist())


def test_localisation_scores_on_hand_built_masks():
    b = boxes(range(4), range(4), range(4), range(4))
    a = boxes(range(4),            # identical
              range(8, 12),        # disjoint
              range(2, 6),         # half overlap: 2 shared of 4 and 4
              range(2))            # inside the mask: 2 of its 4 pixels
    scores, excluded = saliency.localisation(a, b)
    assert excluded == 0
    torch.testing.assert_close(scores["iou"], torch.tensor([1, 0, 1 / 3, 1 / 2], dtype=torch.float64))
    torch.testing.assert_close(scores["iop"], torch.tensor([1, 0, 1 / 2, 1], dtype=torch.float64))
    torch.testing.assert_close(scores["iot"], torch.tensor([1, 0, 1 / 2, 1 / 2], dtype=torch.float64))


def test_empty_masks_are_excluded_and_counted():
    b = boxes([], range(4), [], range(4, 8))
    a = boxes(range(4), range(4), range(4), range(4))
    scores, excluded = saliency.localisation(a, b)
    assert excluded == 2
    assert scores["iou"].tolist() == [1.0, 0.0]


def test_mean_map_keeps_the_top_half_of_each_smoothed_map_and_averages():
    s = images(b=3, size=8) - 0.5  # signed: the map uses |s|
    single = [saliency.mean_map(s[i:i + 1]) for i in range(3)]
    for i, m in enumerate(single):
        kept = m != 0
        assert kept.sum() == 32  # above the median of 64 distinct values
        torch.testing.assert_close(m[kept], saliency.smooth(s[i:i + 1].abs())[0, 0][kept])
    torch.testing.assert_close(saliency.mean_map(s), torch.stack(single).mean(0))


# ------------------------------------------------------------------ score()

@pytest.fixture(scope="module")
def test_split():
    return datasets.load_synthetic(n_train=32)["test"]


@pytest.mark.parametrize("method", ["grad", "ig", "occlusion"])
def test_score_returns_the_results_columns_and_writes_the_npz(tmp_path, test_split, method):
    torch.manual_seed(0)
    out = saliency.score(Linear(size=28), test_split, method, batch_size=48, out_dir=str(tmp_path))
    assert set(out) == {"saliency", "iou", "iop", "iot", "n_scored", "n_empty_masks", "saliency_seconds"}
    assert set(out) <= set(results.COLUMNS)
    assert out["saliency"] == method and out["n_scored"] == 64 and out["n_empty_masks"] == 0
    assert all(0.0 <= out[k] <= 1.0 for k in ("iou", "iop", "iot"))
    assert out["iop"] == pytest.approx(out["iot"])  # top-k makes |A| = |B|
    with np.load(tmp_path / "saliency.npz") as npz:
        assert {k: npz[k].shape for k in npz.files} == NPZ_SHAPES
        assert str(npz["saliency"]) == method and npz["mean_map"].dtype == np.float32
        positives = test_split.y == 1
        np.testing.assert_array_equal(npz["masks"], test_split.mask[positives][:16, 0].numpy())
        np.testing.assert_allclose(npz["mean_mask"], test_split.mask[positives].mean((0, 1)).numpy(), atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["saliency.npz"]  # no temp file left behind


def test_score_leaves_out_and_counts_positives_without_a_mask(test_split):
    mask = test_split.mask.clone()
    unmasked = (test_split.y == 1).nonzero().flatten()[:5]
    mask[unmasked] = 0
    mask[(test_split.y == 0).nonzero().flatten()[:3]] = 0  # negatives are never scored anyway
    split = datasets.TensorSplit(test_split.x, test_split.y, mask)
    out = saliency.score(Linear(size=28), split, "grad")
    assert out["n_scored"] == 59 and out["n_empty_masks"] == 5


# ------------------------------------------------------------------ the CLI

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A real one-epoch run: its directory and its results CSV."""
    root = tmp_path_factory.mktemp("run")
    run, path = root / "run-a", root / "results.csv"
    assert train.cli(["--n-train", "32", "--n-eval", "32", "--epochs", "1", "--out", str(run), "--results", str(path)]) == 0
    return run, path


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cli_appends_one_saliency_row_to_the_runs_csv(trained_run, capsys):
    run, path = trained_run
    before = read(path)
    assert saliency.cli(["--run", str(run)]) == 0  # --results defaults to the run's own CSV
    rows = read(path)
    assert rows[:len(before)] == before and len(rows) == len(before) + 1
    row = rows[-1]
    assert row["kind"] == "saliency" and row["status"] == "ok" and row["saliency"] == "grad"
    assert row["run_id"] == "run-a" and row["selected_epoch"] == "1" and row["method"] == "baseline"
    assert row["n_scored"] == "16" and all(0.0 <= float(row[k]) <= 1.0 for k in ("iou", "iop", "iot"))
    assert f"iou {float(row['iou']):.3f}" in capsys.readouterr().out
    assert (run / "saliency.npz").exists()


def test_cli_all_appends_one_row_per_method_and_one_npz_each(trained_run, monkeypatch):
    run, path = trained_run
    monkeypatch.setattr(saliency, "OCCLUSION_WINDOW", 112)  # 14 px patches at 28: 4 patches keep this fast
    before = read(path)
    assert saliency.cli(["--run", str(run), "--saliency", "all", "--ig-steps", "4"]) == 0
    rows = read(path)
    assert rows[:len(before)] == before
    new = rows[len(before):]
    assert [r["saliency"] for r in new] == ["grad", "ig", "occlusion"]
    assert {r["run_id"] for r in new} == {"run-a"} and {r["kind"] for r in new} == {"saliency"}
    final = next(r for r in rows if r["kind"] == "final")
    assert float(new[0]["iou"]) == pytest.approx(float(final["iou"]))  # grad again on best.pt: the final row's
    # The run's own method (grad) keeps <run>/saliency.npz for the figures; the others get their own folder.
    for method, npz in (("grad", run / "saliency.npz"), ("ig", run / "saliency-ig" / "saliency.npz"),
                        ("occlusion", run / "saliency-occlusion" / "saliency.npz")):
        with np.load(npz) as z:
            assert str(z["saliency"]) == method


BAD = [
    (lambda run, path: ["--run", str(run.parent / "no-such-run")], "--run"),
    (lambda run, path: ["--run", str(run.parent / "broken")], "--run"),
    (lambda run, path: ["--run", str(run), "--results", str(path.parent / "other.csv")], "--results"),
    (lambda run, path: ["--run", str(run), "--saliency", "all", "--ig-steps", "0"], "--ig-steps"),
]


@pytest.mark.parametrize("argv,flag", BAD, ids=["missing-run", "corrupt-best.pt", "foreign-results", "no-ig-steps"])
def test_bad_input_exits_2_with_one_line_and_appends_nothing(trained_run, capsys, argv, flag):
    run, path = trained_run
    (run.parent / "broken").mkdir(exist_ok=True)
    (run.parent / "broken" / "best.pt").write_bytes(b"not a checkpoint")
    (path.parent / "other.csv").write_text("a,b\n1,2\n")
    before = path.read_bytes()
    code = saliency.cli(argv(run, path) + ["--results", str(path)] * (flag != "--results"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and flag in err
    assert path.read_bytes() == before
    assert (path.parent / "other.csv").read_text() == "a,b\n1,2\n"
