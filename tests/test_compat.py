"""Runs that older code finished still read as finished, and their results CSVs still load.

tests/fixtures/ holds, for two finished runs, the small marker a finished run keeps (checkpoint.pt: its config,
run id and final row; no weights) and its rows of the results CSV, each written by the code of the commit its
directory is named after:

- b4d27f7-synthetic-r1.0-baseline-s1: seed 1 of the 100-epoch set (results/synthetic-100-epochs/), run as
  `train.py --dataset synthetic --ratio 1.0 --method baseline --seed 1 --epochs 100 --patience 100
  --sweep-id seeds-synthetic-r1.0-baseline --resume --out ...`; code of that age stored image_size 224 for the
  synthetic task, where the current code stores None.
- e9ba306-synthetic-baseline-s0: a one-epoch run of the released code, `train.py --dataset synthetic --method
  baseline --seed 0 --epochs 1 --n-train 64 --n-eval 32 --results R --out D`.
"""
import os
import shutil

import pytest
import torch

import plots
import results
import train

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
RUNS = {  # fixture directory: the flags it was trained with
    "b4d27f7-synthetic-r1.0-baseline-s1": ["--dataset", "synthetic", "--ratio", "1.0", "--method", "baseline",
                                           "--seed", "1", "--epochs", "100", "--patience", "100",
                                           "--sweep-id", "seeds-synthetic-r1.0-baseline"],
    "e9ba306-synthetic-baseline-s0": ["--dataset", "synthetic", "--method", "baseline", "--seed", "0",
                                      "--epochs", "1", "--n-train", "64", "--n-eval", "32"],
}


def marker(name):
    return torch.load(os.path.join(FIXTURES, name, "checkpoint.pt"), map_location="cpu", weights_only=False)


@pytest.mark.parametrize("name", RUNS)
def test_a_run_older_code_finished_resumes_as_finished_and_writes_nothing(name, tmp_path, capsys):
    """--resume with the run's own flags finds the marker, says the run is finished, exits 0, and neither
    appends a row (its final row is in the CSV already) nor trains. A CSV from before today's columns is first
    refused in one line naming `results.py --upgrade`, untouched; upgraded, it keeps every row as it was."""
    out, csv = tmp_path / "run", tmp_path / "results.csv"
    shutil.copytree(os.path.join(FIXTURES, name), out)
    shutil.move(out / "results.csv", csv)
    argv = [*RUNS[name], "--resume", "--out", str(out), "--results", str(csv)]
    rows = results.read_rows(str(csv))
    if csv.read_text().split("\n", 1)[0].split(",") != results.COLUMNS:  # written before some of today's columns
        before = csv.read_bytes()
        assert train.cli(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"python results.py --upgrade {csv}" in err
        assert csv.read_bytes() == before
        assert results.upgrade(str(csv)) == len(rows)
        assert results.read_rows(str(csv)) == rows
    before = csv.read_bytes()
    assert train.cli(argv) == 0
    selected = marker(name)["final"]["selected_epoch"]
    assert f"{out} finished already (selected epoch {selected})" in capsys.readouterr().out
    assert csv.read_bytes() == before
    assert sorted(os.listdir(out)) == [".lock", "checkpoint.pt"]  # no best.pt: nothing trained


@pytest.mark.parametrize("name", RUNS)
def test_an_older_results_csv_reads_back_as_the_run_recorded_it(name):
    """results.read_rows and plots.load read the old CSV: its one finished run, with the final row's values
    exactly as the marker holds them, and every epoch row of the run."""
    final = marker(name)["final"]
    path = os.path.join(FIXTURES, name, "results.csv")
    rows = results.read_rows(path, kind="final")
    assert [r["run_id"] for r in rows] == [final["run_id"]]
    runs, epochs = plots.load(plots.parse_args(["--results", path, "--saliency", "grad"]))[:2]
    assert list(runs["run_id"]) == [final["run_id"]]
    numeric = [k for k, v in final.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
               and k in runs.columns]
    assert len(numeric) > 30
    assert {k: float(runs.iloc[0][k]) for k in numeric} == pytest.approx({k: final[k] for k in numeric}, rel=1e-12)
    assert sorted(epochs["epoch"]) == list(range(1, final["epochs"] + 1))
