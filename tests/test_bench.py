"""bench.py runs every part it measures and reports sane numbers (no timing thresholds here)."""
import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import bench
import datasets
import train


def test_bench_reports_step_floor_and_loader(tmp_path):
    out = tmp_path / "bench.json"
    bench.main(["--methods", "baseline", "rrr", "--steps", "1", "--batch-size", "4", "--no-epoch", "--loader", "64",
                "--checkpoint", str(tmp_path), "--json", str(out)])
    report = json.loads(out.read_text())
    assert [r["method"] for r in report["rows"]] == ["baseline", "rrr"]
    for row in report["rows"]:
        assert row["step_ms"] > 0 and row["floor_ms"] > 0 and row["overhead"] == row["step_ms"] / row["floor_ms"]
        assert row["gflop_per_s"] == pytest.approx(row["step_gflop"] / row["step_ms"] * 1e3)
    baseline, rrr = report["rows"]
    assert rrr["step_gflop"] > 2 * baseline["step_gflop"]  # input gradient + double backward
    assert report["loader"]["images"] == 64 and report["loader"]["images_per_s"] > 0
    files = report["checkpoint"]  # (MB, seconds): the old checkpoint held the best weights a second time
    assert abs(files["before"][0] - files["checkpoint"][0] - files["best"][0]) < 0.01 * files["before"][0]
    assert files["best"][0] > 40  # ResNet-18's 11.2 M float32 parameters


def test_flops_of_a_linear_layer_are_counted_by_hand():
    """A (4 x 3) @ (3 x 5) product is 4 * 5 * 3 multiply-adds = 120 FLOPs forward; its backward takes two more
    products of the same size (input and weight gradients)."""
    layer, x = torch.nn.Linear(3, 5, bias=False), torch.randn(4, 3, requires_grad=True)
    with bench.CountFlops() as counter:
        out = layer(x)
    assert counter.total == 120
    with bench.CountFlops() as counter:
        out.sum().backward()
    assert counter.total == 240


def test_the_flop_count_of_a_baseline_step_is_torchs_flop_counters():
    """CountFlops uses FlopCounterMode's formulas without its module hooks (which break GradMask's and RRR's
    double backward), so on a step both can count they agree: 43.7 GFLOP at 16 x 28 x 28."""
    hp = train.resolve(train.parse_args(["--method", "baseline", "--device", "cpu"]))
    batch = next(datasets.load_synthetic(n_train=16, n_eval=16)["train"].batches(16, torch.Generator().manual_seed(0)))
    ours = bench.step_flops("baseline", hp, batch, torch.device("cpu"))
    net, opt, method = bench.fresh("baseline", hp, torch.device("cpu"))
    with FlopCounterMode(display=False) as reference:
        train.train_step(net, opt, method, *batch, hp)
    assert ours == reference.get_total_flops() and round(ours / 1e9, 1) == 43.7
