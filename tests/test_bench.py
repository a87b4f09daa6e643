"""bench.py runs every part it measures and reports sane numbers (no timing thresholds here)."""
import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import bench
import datasets
import losses
import memory
import train


@pytest.mark.parametrize("argv,needle", [(["--steps", "0"], "--steps 0"), (["--batch-size", "1"], "--batch-size 1"),
                                         (["--loader", "-5"], "--loader -5"), (["--memory", "0"], "--memory 0"),
                                         (["--device", "gpu0"], "--device gpu0")])
def test_a_flag_bench_cannot_time_is_one_line_and_exit_2_before_any_timing(tmp_path, capsys, argv, needle):
    """--steps 0 used to end in statistics' "no median for empty data", a device torch does not know in its
    RuntimeError: each is now one line naming the flag, and nothing is written."""
    out = tmp_path / "bench.json"
    assert bench.cli([*argv, "--json", str(out), "--checkpoint", str(tmp_path / "ckpt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {needle}")
    assert not out.exists() and not (tmp_path / "ckpt").exists()


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


# ------------------------------------------------------------------ memory

def linear_step(passes=1, square=lambda y: y.square()):
    """A (4 x 3) batch through Linear(3, 5), `passes` forward and backward passes, then one Adam step."""
    torch.manual_seed(0)
    layer, x = torch.nn.Linear(3, 5), torch.randn(4, 3)
    opt = losses.adam(layer.parameters(), 1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        for _ in range(passes):
            square(layer(x)).sum().backward()
        opt.step()
    return step, [layer], [opt]


def test_the_bytes_of_a_linear_step_are_counted_by_hand():
    """Linear saves its input x (4 x 3 floats; its weight is a parameter, which the state counts) and square
    saves its input, the (4 x 5) output. The state: weight and bias (20 floats), their gradients and Adam's two
    moments, and Adam's step count per parameter (a float32 scalar in the fused Adam)."""
    assert memory.step_bytes(*linear_step()) == (4 * 3 * 4 + 4 * 5 * 4, 20 * 4 * 4 + 2 * 4)


def test_a_storage_saved_twice_counts_once_and_two_passes_in_a_row_peak_like_one():
    """y * y saves y twice, one storage; the second pass's tensors are saved after the first's were let go."""
    once = memory.step_bytes(*linear_step())
    assert memory.step_bytes(*linear_step(square=lambda y: y * y)) == once
    assert memory.step_bytes(*linear_step(passes=2)) == once


@pytest.mark.parametrize("amp", ["fp32", "bf16"])
def test_saved_bytes_are_affine_in_the_batch_so_two_small_batches_give_any_batch(amp):
    """step_estimate runs 2 and 4 images; at 16 its extrapolation is what a 16-image step saves, to the byte."""
    device = torch.device("cpu")
    for name in losses.METHODS:
        hp = bench.hparams(name, device, amp, 16)
        net, opt, method = bench.fresh(name, hp, device)
        x, y, mask = bench.square_batch(12, 16)
        extra = [method] if name == "adversarial" else []
        direct = memory.step_bytes(lambda: train.train_step(net, opt, method, x, y, mask, hp),
                                   [net] + [m.disc for m in extra], [opt] + [m.opt for m in extra])
        assert bench.step_estimate(name, hp, 12, 16, device) == direct, name


def test_bench_memory_reports_every_method_and_saliency_in_both_precisions(tmp_path):
    out = tmp_path / "memory.json"
    bench.main(["--memory", "12", "16", "--methods", "baseline", "adversarial", "--json", str(out)])
    rows = json.loads(out.read_text())["memory"]
    assert [(r["method"], r["size"], r["amp"]) for r in rows] == [
        (m, size, amp) for m in ("baseline", "adversarial") for size in (12, 16) for amp in ("fp32", "bf16")] + [
        ("saliency", 12, "fp32"), ("saliency", 16, "fp32")]
    assert all(r["estimated_bytes"] == r["state_bytes"] + r["saved_bytes"] for r in rows)
    by = {(r["method"], r["size"], r["amp"]): r for r in rows}
    weights = 4 * sum(p.numel() for p in bench.ResNet18().parameters())
    # weights, gradients and two moments: 4x the weights; the discriminator and its Adam come on top
    assert 4 * weights < by["baseline", 12, "fp32"]["state_bytes"] < by["adversarial", 12, "fp32"]["state_bytes"]
    assert by["saliency", 12, "fp32"]["batch_size"] == 64 and by["saliency", 12, "fp32"]["state_bytes"] > weights
    for method in ("baseline", "adversarial", "saliency"):  # activations grow with the image
        assert by[method, 16, "fp32"]["saved_bytes"] > by[method, 12, "fp32"]["saved_bytes"]


def test_gpu_epochs_check_times_every_setting_of_both_datasets_and_scales_to_the_tables_cohort(tmp_path, capsys,
                                                                                                narrow):
    """checks.gpu_epochs, the GPU measurement behind docs/speed.md, tried on the CPU at a trial size: a row per
    setting and dataset, each timed epoch scaled up to the real cohort (larger than 20 images a cell), and
    train.py's functions given back unwrapped."""
    from checks import gpu_epochs  # noqa: PLC0415
    epoch, evaluate = train.train_epoch, train.evaluate
    assert gpu_epochs.main(["--out", str(tmp_path), "--device", "cpu", "--n-per-cell", "20", "--image-sizes",
                            "16", "16", "--amp", "fp32"]) == 0
    assert (train.train_epoch, train.evaluate) == (epoch, evaluate)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in capsys.readouterr().out.splitlines()
            if line.startswith("| xray") or line.startswith("| rsna")]
    assert [(r[0], r[2]) for r in rows] == [(d, s) for d in ("xray", "rsna") for s in
                                           ("baseline", "masked", "masked --mask-fill zero", "actdiff",
                                            "adversarial", "gradmask", "rrr")]
    for r in rows:
        n_train, second, scaled = int(r[4]), float(r[6]), float(r[9])
        assert n_train == 40 and second > 0 and scaled > second  # 40 of the cohort's thousands of images


@pytest.mark.skipif(torch.cuda.is_available(), reason="the subject is a machine without CUDA")
def test_gpu_epochs_check_without_cuda_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    from checks import gpu_epochs  # noqa: PLC0415
    assert gpu_epochs.main(["--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not (tmp_path / "out").exists()
