"""train.py end to end: every method trains and records well-formed rows; bad input exits 2."""
import csv
import math

import pytest

import datasets
import losses
import results
import saliency
import train

TIME_COLUMNS = {"time", "run_id", "seconds", "run_dir", "saliency_seconds"}


# The smallest synthetic run: 2 training steps per epoch (8 images, batches of 4), 16 images per eval split (8
# positives scored). No probes unless a test is about them: each costs a saliency scoring and the shortcut passes.
TINY = ("--n-train", "8", "--batch-size", "4", "--n-eval", "16", "--epochs", "1")


def run(tmp_path, *argv, csv_name="results.csv", probes=False):
    path = tmp_path / csv_name
    code = train.cli(["--results", str(path), *TINY, *(() if probes else ("--no-probes",)), *argv])
    return code, path


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("method", list(losses.METHODS))
def test_one_epoch_of_every_method_appends_well_formed_rows(tmp_path, method):
    code, path = run(tmp_path, "--method", method, "--out", str(tmp_path / "run"))
    assert code == 0
    with open(path) as f:
        assert f.readline().rstrip("\n").split(",") == results.COLUMNS
    rows = read(path)
    assert [r["kind"] for r in rows] == ["epoch", "final"]  # --no-probes: test_same_seed... checks the probe rows
    final = rows[-1]
    assert final["status"] == "ok" and final["method"] == method and final["selected_epoch"] == "1"
    assert 0.0 <= float(final["valid_auc"]) <= 1.0 and 0.0 <= float(final["test_auc"]) <= 1.0
    assert float(final["lr"]) == train.TUNED[("synthetic", 1.0)][method]["lr"]
    assert (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "saliency.npz").exists()
    assert final["saliency"] == "grad" and final["n_scored"] == "8" and 0 <= float(final["iou"]) <= 1
    for column in ("box_effect", "test_auc_train_rule", "mask_effect", "outside_mass", "box_mass", "pointing"):
        assert 0 <= float(final[column]) <= 1, column
    assert final["test_auc_masked_input"] == final["test_auc_nobox"]  # synthetic: masking removes the box
    if method != "baseline" and method != "masked":
        assert final["train_penalty"] != ""


@pytest.mark.parametrize("method", ["gradmask", "rrr", "adversarial"])
def test_bf16_autocast_keeps_the_penalties_finite(tmp_path, method):
    code, path = run(tmp_path, "--method", method, "--amp", "bf16", "--disc-ratio", "1")
    final = results.read_rows(str(path), kind="final")[0]
    assert code == 0 and final["status"] == "ok" and final["precision"] == "bf16"
    assert math.isfinite(float(final["train_penalty"]))


def test_same_seed_gives_identical_rows_and_probes_do_not_change_training(tmp_path, narrow):
    """The probes measure the model in eval mode without touching an RNG: a run without them trains the
    same models and records the same rows, less the probe rows."""
    _, a = run(tmp_path, "--method", "actdiff", "--epochs", "2", csv_name="a.csv", probes=True)
    _, b = run(tmp_path, "--method", "actdiff", "--epochs", "2", csv_name="b.csv", probes=True)
    _, c = run(tmp_path, "--method", "actdiff", "--epochs", "2", "--no-probes", csv_name="c.csv")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in rows]
    assert strip(read(a)) == strip(read(b))
    assert [r["kind"] for r in read(a)] == ["epoch", "probe", "epoch", "probe", "final"]
    assert strip(r for r in read(a) if r["kind"] != "probe") == strip(read(c))


def test_test_split_is_skipped_only_where_no_selection_rule_could_pick_the_epoch(tmp_path, narrow):
    """Default: test is evaluated at eligible epochs (from --burn-in on) with a new lowest valid loss
    (our rule), a new highest valid AUC or a new lowest valid_id loss (plots.py's other two rules).
    Training, the valid curves and the final row are the same as with --test-every-epoch."""
    argv = ("--method", "actdiff", "--seed", "7", "--epochs", "6", "--patience", "5", "--burn-in", "2")
    _, every = run(tmp_path, *argv, "--test-every-epoch", csv_name="every.csv")
    _, some = run(tmp_path, *argv, csv_name="some.csv")
    strip = lambda r: {k: v for k, v in r.items() if k not in TIME_COLUMNS and not k.startswith("test_")}
    every, some = read(every), read(some)
    assert [strip(r) for r in every] == [strip(r) for r in some]
    assert every[-1]["test_auc"] == some[-1]["test_auc"] != ""
    assert some[0]["test_auc"] == "" != every[0]["test_auc"]  # epoch 1 is burn-in: no rule can pick it
    low_loss, high_auc, low_id, kinds = float("inf"), -1.0, float("inf"), []
    for a, b in zip(every[1:-1], some[1:-1]):
        loss, auc, id_loss = float(b["valid_loss"]), float(b["valid_auc"]), float(b["valid_id_loss"])
        kinds.append("loss" if loss < low_loss else "auc" if auc > high_auc else "id" if id_loss < low_id
                     else "skip")
        low_loss, high_auc, low_id = min(low_loss, loss), max(high_auc, auc), min(low_id, id_loss)
        assert b["test_auc"] == ("" if kinds[-1] == "skip" else a["test_auc"])
    # this seed (1 thread, conftest; the narrow network) has a best by each rule alone, and skips
    assert {"loss", "auc", "id", "skip"} <= set(kinds), kinds


def test_burn_in_epochs_are_never_selected_and_do_not_count_towards_patience(tmp_path, narrow):
    _, path = run(tmp_path, "--epochs", "6", "--burn-in", "4", "--patience", "1", "--seed", "1")
    rows = read(path)
    epochs, final = [r for r in rows if r["kind"] == "epoch"], rows[-1]
    assert int(final["selected_epoch"]) >= 4 and final["burn_in"] == "4"
    assert len(epochs) >= 5  # patience 1 could only stop the run after the first eligible epoch (4)
    assert all(r["test_auc"] == "" for r in epochs[:3])


def test_a_run_shorter_than_the_burn_in_selects_its_last_epoch(tmp_path):
    _, path = run(tmp_path, "--epochs", "2", "--burn-in", "5")
    final = read(path)[-1]
    assert final["kind"] == "final" and final["selected_epoch"] == "2" and final["test_auc"] != ""


@pytest.fixture(scope="module")
def seed_3_on_2_threads(tmp_path_factory):
    """The rows of one finished run with --seed 3 and no --data-seed, trained on 2 threads; the tests below
    only read them. The thread count changes a CPU run's numbers (the order of its sums), so the rows say it."""
    before = train.torch.get_num_threads()
    train.torch.set_num_threads(2)
    try:
        code, path = run(tmp_path_factory.mktemp("seed3"), "--seed", "3")
    finally:
        train.torch.set_num_threads(before)
    assert code == 0
    return read(path)


@pytest.mark.xdist_group("seed_3_on_2_threads")  # one worker trains the shared run
def test_each_seed_gets_its_own_data_unless_a_data_seed_is_given(tmp_path, seed_3_on_2_threads):
    assert seed_3_on_2_threads[-1]["data_seed"] == "3"
    _, path = run(tmp_path, "--seed", "3", "--data-seed", "7", csv_name="fixed.csv")
    assert read(path)[-1]["data_seed"] == "7"
    load = lambda seed: datasets.load(train.resolve(train.parse_args(["--seed", str(seed), "--n-train", "32"])))
    assert not train.torch.equal(load(3)["train"].x, load(4)["train"].x)


@pytest.mark.xdist_group("seed_3_on_2_threads")
def test_rows_record_the_software_and_hardware_and_the_thread_count(seed_3_on_2_threads):
    final = seed_3_on_2_threads[-1]
    assert final["torch_version"] == train.torch.__version__ and final["gpu"] == "cpu"
    assert final["git_commit"] != "" and final["threads"] == "2"


BAD = [
    (["--dataset", "mnist"], "--dataset"),
    (["--method", "dropout"], "--method"),
    (["--lam", "-1"], "--lam"),
    (["--lr", "0"], "--lr"),
    (["--ratio", "1.5"], "--ratio"),
    (["--n-train", "8"], "--n-train"),
    (["--data-root", "/no/such/dir"], "--data-root"),
]


@pytest.mark.parametrize("argv,flag", BAD, ids=[b[1] + "=" + b[0][-1] for b in BAD])
def test_bad_input_exits_2_with_one_line_and_leaves_the_csv_untouched(tmp_path, capsys, argv, flag):
    path = tmp_path / "results.csv"
    results.append_row(str(path), {"kind": "final", "method": "baseline"})
    before = path.read_bytes()
    code = train.cli(["--results", str(path), "--epochs", "1", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and flag in err
    assert path.read_bytes() == before


def test_a_dataset_without_tuned_hyperparameters_is_one_line_naming_the_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train, "TUNED", {k: v for k, v in train.TUNED.items() if k[0] != "rsna"})
    assert train.cli(["--results", str(tmp_path / "r.csv"), "--dataset", "rsna"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--dataset rsna" in err and "train.TUNED" in err
    assert not (tmp_path / "r.csv").exists()


def test_every_command_reports_one_kind_of_bad_input():
    import cohorts
    import errors
    import sweep
    import xray
    assert train.UsageError is saliency.UsageError is sweep.UsageError is errors.UsageError
    assert datasets.DataError is cohorts.DataError is xray.DataError is errors.DataError
    assert issubclass(errors.DataError, errors.UsageError)
    assert issubclass(results.ResultsError, errors.UsageError)


def test_foreign_results_file_is_refused(tmp_path, capsys):
    path = tmp_path / "other.csv"
    path.write_text("a,b,c\n1,2,3\n")
    code, _ = run(tmp_path, csv_name="other.csv")
    assert code == 2 and "--results" in capsys.readouterr().err
    assert path.read_text() == "a,b,c\n1,2,3\n"


# ------------------------------------------------------------------ --score-images with several choices

def test_the_releases_subset_is_refused_on_synthetic_also_among_several_choices(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        train.parse_args(["--results", str(tmp_path / "r.csv"), "--score-images", "all", "release"])
    assert e.value.code == 2 and "--score-images release" in capsys.readouterr().err
    assert train.parse_args(["--score-images", "all", "all"]).score_images == ["all", "all"]


class Killed(BaseException):
    """Stands for the process dying between the final row and the further --score-images rows."""


@pytest.fixture(scope="module")
def rsna_stand_ins(tmp_path_factory):
    """The data flags of 20 stand-in RSNA images per site x label cell (datasets.py --stand-in)."""
    return datasets.write_stand_ins(str(tmp_path_factory.mktemp("rsna")), "rsna", n_per_cell=20)


def test_each_further_score_images_choice_adds_the_row_saliency_py_would_and_a_resume_adds_a_lost_one(
        tmp_path, monkeypatch, rsna_stand_ins, narrow):
    out, path = tmp_path / "run", tmp_path / "r.csv"
    argv = [*rsna_stand_ins, "--image-size", "32", "--score-size", "train", "--epochs", "1", "--batch-size", "4",
            "--no-probes", "--results", str(path), "--out", str(out), "--resume", "--score-images", "all", "release"]
    main = saliency.main

    def killed(args):
        raise Killed

    monkeypatch.setattr(saliency, "main", killed)  # dies after the final row, before the release's row
    with pytest.raises(Killed):
        train.cli(argv)
    assert [r["kind"] for r in results.read_rows(str(path))] == ["epoch", "final"]
    monkeypatch.setattr(saliency, "main", main)
    assert train.cli(argv) == 0  # finished already: adds only the row it lacks
    rows = results.read_rows(str(path))
    assert [(r["kind"], r["score_images"]) for r in rows] == [("epoch", ""), ("final", "all"), ("saliency", "release")]
    assert rows[1]["run_id"] == rows[2]["run_id"] and rows[2]["selected_epoch"] == "1"
    assert train.cli(argv) == 0 and len(results.read_rows(str(path))) == 3  # and never twice
    assert saliency.cli(["--run", str(out), "--score-images", "release", "--results", str(tmp_path / "s.csv")]) == 0
    alone = results.read_rows(str(tmp_path / "s.csv"))[0]
    same = lambda r: {k: v for k, v in r.items() if k not in TIME_COLUMNS | {"git_commit"}}
    assert same(rows[2]) == same(alone)
