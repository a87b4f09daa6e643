"""bench.py runs every part it measures and reports sane numbers (no timing thresholds here)."""
import json

import bench


def test_bench_reports_step_floor_and_loader(tmp_path):
    out = tmp_path / "bench.json"
    bench.main(["--methods", "baseline", "rrr", "--steps", "1", "--batch-size", "4", "--no-epoch", "--loader", "64",
                "--checkpoint", str(tmp_path), "--json", str(out)])
    report = json.loads(out.read_text())
    assert [r["method"] for r in report["rows"]] == ["baseline", "rrr"]
    for row in report["rows"]:
        assert row["step_ms"] > 0 and row["floor_ms"] > 0 and row["overhead"] == row["step_ms"] / row["floor_ms"]
    assert report["loader"]["images"] == 64 and report["loader"]["images_per_s"] > 0
    files = report["checkpoint"]  # (MB, seconds): the old checkpoint held the best weights a second time
    assert abs(files["before"][0] - files["checkpoint"][0] - files["best"][0]) < 0.01 * files["before"][0]
    assert files["best"][0] > 40  # ResNet-18's 11.2 M float32 parameters
