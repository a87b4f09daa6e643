"""sweep.py's search and seeds phases on tiny synthetic runs: recorded, resumable, concurrent."""
import pytest

import results
import sweep

TINY = ["--n-train", "32", "--n-eval", "8", "--epochs", "1"]


def search(csv, *extra):
    return sweep.main(["--phase", "search", "--dataset", "synthetic", "--method", "actdiff", "--results", str(csv),
                       "--n-init", "2", *TINY, *extra])


def trials(csv):
    rows = results.read_rows(str(csv), sweep_id="search-synthetic-r1.0-actdiff-s0", kind="final")
    return {int(r["trial"]): (r["lr"], r["lam"], r["mask_blur"]) for r in rows}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    csv = tmp_path_factory.mktemp("sweep") / "results.csv"
    assert search(csv, "--budget", "3") == 0
    return csv


def test_search_records_its_trials_with_distinct_points(searched):
    done = trials(searched)
    assert sorted(done) == [1, 2, 3] and len(set(done.values())) == 3
    space = sweep.train.search_space("synthetic", "actdiff")
    for lr, lam, blur in done.values():
        assert 1e-5 <= float(lr) <= 1e-2 and 1e-4 <= float(lam) <= 10 and 0 <= float(blur) <= 2
    assert set(space) == {"lr", "lam", "mask_blur"}


def test_restarting_continues_rather_than_repeats(searched, capsys):
    before = trials(searched)
    assert search(searched, "--budget", "3") == 0        # nothing left to do
    assert trials(searched) == before
    assert search(searched, "--budget", "4") == 0        # one more trial, the first three untouched
    after = trials(searched)
    assert sorted(after) == [1, 2, 3, 4] and all(after[t] == before[t] for t in before)


def test_seeds_phase_trains_the_best_trial_on_new_seeds(searched):
    assert sweep.main(["--phase", "seeds", "--dataset", "synthetic", "--method", "actdiff", "--results",
                       str(searched), "--seeds", "2", *TINY]) == 0
    finals = results.read_rows(str(searched), kind="final")
    best = max((r for r in finals if r["sweep_id"].startswith("search-")), key=lambda r: float(r["valid_auc"]))
    runs = [r for r in finals if r["sweep_id"] == "seeds-synthetic-r1.0-actdiff"]
    assert sorted(r["seed"] for r in runs) == ["1", "2"]                  # distinct from the search seed 0
    assert all((r["lr"], r["lam"], r["mask_blur"]) == (best["lr"], best["lam"], best["mask_blur"]) for r in runs)
    n = len(finals)
    assert sweep.main(["--phase", "seeds", "--dataset", "synthetic", "--method", "actdiff", "--results",
                       str(searched), "--seeds", "2", *TINY]) == 0      # finished seeds are skipped
    assert len(results.read_rows(str(searched), kind="final")) == n


def test_two_jobs_run_concurrently_without_corrupting_the_csv(tmp_path, capsys):
    csv = tmp_path / "results.csv"
    assert sweep.main(["--phase", "seeds", "--dataset", "synthetic", "--methods", "baseline", "masked",
                       "--results", str(csv), "--seeds", "2", "--jobs", "2", *TINY]) == 0
    events = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()
              if line.startswith("started") or "test AUC" in line]
    assert events[0].startswith("started") and events[1].startswith("started")  # two at once
    rows = results.read_rows(str(csv))
    assert len([r for r in rows if r["kind"] == "final"]) == 4
    assert len([r for r in rows if r["kind"] == "epoch"]) == 4
    assert all(len(r) == len(results.COLUMNS) and None not in r.values() for r in rows)


def test_submitit_local_launcher_runs_a_trial(tmp_path):
    csv = tmp_path / "results.csv"
    assert sweep.main(["--phase", "seeds", "--dataset", "synthetic", "--method", "baseline", "--results", str(csv),
                       "--seeds", "1", "--launcher", "submitit-local", *TINY]) == 0
    assert [r["status"] for r in results.read_rows(str(csv), kind="final")] == ["ok"]


def test_dry_run_prints_without_running(tmp_path, capsys):
    csv = tmp_path / "results.csv"
    assert sweep.main(["--phase", "seeds", "--methods", "all", "--results", str(csv), "--seeds", "2",
                       "--dry-run", *TINY]) == 0
    out = capsys.readouterr().out
    assert out.count("would run:") == 12 and not csv.exists()


@pytest.mark.parametrize("argv,needle", [
    (["--phase", "seeds", "--methods", "dropout"], "--methods"),
    (["--phase", "seeds", "--lr", "-1"], "--lr"),
    (["--method", "baseline"], "--phase"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, argv, needle):
    assert sweep.main([*argv, "--results", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err
