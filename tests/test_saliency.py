"""saliency.py: the untrained and cascade baselines, score(), which images at what size, and the CLI."""
import argparse
import copy
import csv
import os

import numpy as np
import pytest
import torch

import attribution
import datasets
import results
import rundir
import saliency
import train
from checks import rrr_confidence, scoring_variants, shortcut_precision
from conftest import Linear
from models import ResNet18

# One xdist worker runs this whole file, so its module-scoped runs are trained once (pytest.ini).
pytestmark = pytest.mark.xdist_group("saliency")

NPZ_SHAPES = {"mean_map": (28, 28), "mean_input": (28, 28), "mean_mask": (28, 28),
              "maps": (16, 28, 28), "inputs": (16, 28, 28), "masks": (16, 28, 28), "saliency": (),
              "sample_map": (28, 28), "sample_input": (28, 28), "sample_mask": (28, 28), "n_sample": ()}


# ------------------------------------------------------------------ baselines

def same_weights(a, b):
    return a.state_dict().keys() == b.state_dict().keys() and all(
        torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_the_untrained_network_is_the_one_the_run_started_from_and_the_rng_is_left_alone():
    torch.manual_seed(7)  # what train.py does with --seed 7 just before building its ResNet18
    start = ResNet18()
    state = torch.get_rng_state()
    assert same_weights(saliency.untrained_model(7), start)
    assert torch.equal(torch.get_rng_state(), state)
    assert not same_weights(saliency.untrained_model(8), start)


def test_untrained_iou_is_reproducible_from_its_seed(test_split):
    split = datasets.TensorSplit(test_split.x[:40], test_split.y[:40], test_split.mask[:40])
    torch.manual_seed(0)
    trained = ResNet18()
    state = torch.get_rng_state()
    first, again, other = (saliency.score(trained, split, "grad", untrained_seed=s) for s in (3, 3, 4))
    assert torch.equal(torch.get_rng_state(), state)
    assert first["iou_untrained"] == again["iou_untrained"]
    assert first["iou_untrained"] != other["iou_untrained"]
    assert first["iou"] == other["iou"]  # the seed draws the baseline only


def trained_like_resnet():
    """A ResNet18 whose every parameter and buffer has moved from its initial value, as training moves them."""
    torch.manual_seed(0)
    net = ResNet18()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for t in net.state_dict().values():  # shares storage with the module
            t.add_(1 + torch.rand(t.shape, generator=g) if t.is_floating_point() else 5)
    return net


def test_each_cascading_step_reinitialises_exactly_its_layer_and_those_above_it():
    net = trained_like_resnet().train()
    trained = copy.deepcopy(net.state_dict())
    re_initialised = [{"fc"}, {"fc", "layer4"}, {"fc", "layer4", "layer3"}, {"fc", "layer4", "layer3", "layer2"},
                      {"fc", "layer4", "layer3", "layer2", "layer1"},
                      {"fc", "layer4", "layer3", "layer2", "layer1", "conv1", "bn1"}]  # the stem takes bn1
    steps = []
    for (step, randomised), expected in zip(saliency.cascade(net, seed=0), re_initialised, strict=True):
        steps.append(step)
        for key, value in randomised.state_dict().items():  # weights, biases, running stats, batch counts
            assert torch.equal(value, trained[key]) == (key.split(".")[0] not in expected), (step, key)
    assert steps == list(saliency.CASCADE) == ["fc", "layer4", "layer3", "layer2", "layer1", "conv1"]
    assert same_weights(net, trained_like_resnet()) and net.training  # the model passed in is untouched


def test_the_cascades_weights_come_from_its_seed_and_each_layer_keeps_them_at_later_steps():
    net = trained_like_resnet()
    state = torch.get_rng_state()
    fc_weights = [copy.deepcopy(r.fc.weight) for _, r in saliency.cascade(net, seed=3)]
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(w, fc_weights[0]) for w in fc_weights)
    last = lambda seed: list(saliency.cascade(net, seed))[-1][1]
    assert same_weights(last(3), last(3)) and not same_weights(last(3), last(4))


def test_the_cascade_ends_at_the_untrained_network_of_the_same_seed():
    last = list(saliency.cascade(trained_like_resnet(), seed=3))[-1][1]
    untrained = saliency.untrained_model(3)
    assert all(torch.equal(v, untrained.state_dict()[k]) for k, v in last.state_dict().items())


# ------------------------------------------------------------------ score()

def linear28():
    """A 28x28 linear model: the untrained baseline's architecture where the trained model is one too."""
    return Linear(size=28)


@pytest.fixture(scope="module")
def test_split():
    return datasets.load_synthetic(n_train=32)["test"]


@pytest.mark.parametrize("method", ["grad", "ig", "occlusion"])
def test_score_returns_the_results_columns_and_writes_the_npz(tmp_path, test_split, method):
    torch.manual_seed(0)
    out = saliency.score(Linear(size=28), test_split, method, batch_size=48, out_dir=str(tmp_path),
                         architecture=linear28)
    assert set(out) == {"saliency", "iou", "iop", "iot", "iou_chance", "iou_untrained", "n_scored",
                        "n_empty_masks", "saliency_seconds", "outside_mass", "pointing", "n_zero_maps",
                        "score_size", "score_images"}
    assert set(out) <= set(results.COLUMNS)
    assert out["saliency"] == method and out["n_scored"] == 64 and out["n_empty_masks"] == 0
    assert all(0.0 <= out[k] <= 1.0 for k in ("iou", "iop", "iot", "iou_chance", "iou_untrained"))
    positives = test_split.mask[test_split.y == 1]
    assert out["iou_chance"] == pytest.approx(attribution.chance_iou(positives).mean().item())
    assert out["iop"] == pytest.approx(out["iot"])  # top-k makes |A| = |B|
    with np.load(tmp_path / "saliency.npz") as npz:
        assert {k: npz[k].shape for k in npz.files} == NPZ_SHAPES
        assert str(npz["saliency"]) == method and npz["mean_map"].dtype == np.float32
        positives = test_split.y == 1
        np.testing.assert_array_equal(npz["masks"], test_split.mask[positives][:16, 0].numpy())
        np.testing.assert_allclose(npz["mean_mask"], test_split.mask[positives].mean((0, 1)).numpy(), atol=1e-6)
        # the figures' map: all 128 test images (fewer than 500), both classes
        assert int(npz["n_sample"]) == 128
        np.testing.assert_allclose(npz["sample_mask"], test_split.mask.mean((0, 1)).numpy(), atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["saliency.npz"]  # no temp file left behind


def test_score_leaves_out_and_counts_positives_without_a_mask(test_split):
    mask = test_split.mask.clone()
    unmasked = (test_split.y == 1).nonzero().flatten()[:5]
    mask[unmasked] = 0
    mask[(test_split.y == 0).nonzero().flatten()[:3]] = 0  # negatives are never scored anyway
    split = datasets.TensorSplit(test_split.x, test_split.y, mask)
    out = saliency.score(Linear(size=28), split, "grad", architecture=linear28)
    assert out["n_scored"] == 59 and out["n_empty_masks"] == 5
    # The chance level is averaged over exactly the scored images, as the IoU is.
    scored = mask[(test_split.y == 1) & (mask.flatten(1).amax(1) > 0)]
    assert out["iou_chance"] == pytest.approx(attribution.chance_iou(scored).mean().item())


def test_the_untrained_networks_scores_are_computed_once_per_seed_and_split_then_read_back(tmp_path, test_split,
                                                                                            monkeypatch):
    """The seven runs of a seed share their untrained network and test images: with a cache, only the first
    scoring pays for the untrained pass. Another seed, other images or a damaged file compute it again."""
    passes, localise = [], saliency._localise
    monkeypatch.setattr(saliency, "_localise", lambda models, *a, **k: (passes.append(sorted(models)),
                                                                       localise(models, *a, **k))[1])
    cache = tmp_path / "cache"

    def untrained_iou(split, seed=3):
        torch.manual_seed(len(passes))  # a different trained model every time: it must not matter
        return saliency.score(Linear(size=28), split, "ig", untrained_seed=seed, architecture=linear28,
                              untrained_cache=str(cache), ig_steps=4)["iou_untrained"]

    first = untrained_iou(test_split)
    assert untrained_iou(test_split) == first and passes == [["trained", "untrained"], ["trained"]]
    assert saliency.score(Linear(size=28), test_split, "ig", untrained_seed=3, architecture=linear28,
                          ig_steps=4)["iou_untrained"] == first  # what the cache holds is what is computed
    assert untrained_iou(test_split, seed=4) != first and passes[-1] == ["trained", "untrained"]
    shifted = datasets.TensorSplit(test_split.x.roll(1, dims=-1), test_split.y, test_split.mask)
    untrained_iou(shifted)
    assert passes[-1] == ["trained", "untrained"] and len(list(cache.iterdir())) == 3
    for f in cache.iterdir():
        f.write_bytes(b"not an npz")
    assert untrained_iou(test_split) == first and passes[-1] == ["trained", "untrained"]


def test_a_cache_that_cannot_be_written_costs_time_not_the_scores(tmp_path, test_split, capsys):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    out = saliency.score(Linear(size=28), test_split, "grad", architecture=linear28, untrained_cache=str(blocked))
    assert "not cached" in capsys.readouterr().err
    assert out["iou_untrained"] == saliency.score(Linear(size=28), test_split, "grad",
                                                  architecture=linear28)["iou_untrained"]


# ------------------------------------------------------------------ which images, at what size

def sited(n_per_cell=30, seed=0):
    """A 28x28 split with a site per image (as xray's splits have), its four site x label cells interleaved
    at random, every positive with a mask."""
    base = datasets.load_synthetic(n_train=32)["test"]
    g = torch.Generator().manual_seed(seed)
    cell = torch.arange(4).repeat_interleave(n_per_cell)[torch.randperm(4 * n_per_cell, generator=g)]
    y = cell % 2
    x = torch.rand(len(y), 1, 28, 28, generator=g)
    split = datasets.TensorSplit(x, y, base.mask[:1].expand(len(y), -1, -1, -1).clone())
    split.site = cell // 2
    return split


def test_the_release_subset_is_the_first_25_of_each_site_and_label_cell_in_the_splits_order():
    split = sited()
    subset = saliency.release_subset(split)
    cell = 2 * split.site + split.y
    for c in range(4):
        where = (cell == c).nonzero().flatten()                     # this cell's images, in split order
        assert subset[where[:25]].all() and not subset[where[25:]].any()
    out = saliency.score(Linear(size=28), split, "grad", batch_size=16, architecture=linear28,
                         score_images="release", score_size=28)
    assert out["n_scored"] == 50 and out["score_images"] == "release" and out["score_size"] == 28  # 2 cells x 25
    # a positive of the subset without a mask is left out and counted, as with every positive
    first = (cell == 1).nonzero().flatten()[0]
    split.mask[first] = 0
    out = saliency.score(Linear(size=28), split, "grad", architecture=linear28, score_images="release")
    assert out["n_scored"] == 49 and out["n_empty_masks"] == 1


def test_the_release_subset_needs_sites():
    with pytest.raises(saliency.UsageError, match="--score-images release"):
        saliency.release_subset(datasets.load_synthetic(n_train=32)["test"])


def test_xray_scores_at_224_whatever_the_training_size_and_synthetic_at_its_28():
    xray = lambda **kw: argparse.Namespace(dataset="xray", image_size=128, **kw)
    assert saliency.score_size(xray()) == 224                       # the release's scoring size
    assert saliency.score_size(xray(score_size="train")) == 128
    assert saliency.score_size(xray(score_size=160)) == 160
    synthetic = lambda **kw: argparse.Namespace(dataset="synthetic", image_size=224, **kw)
    assert saliency.score_size(synthetic()) == saliency.score_size(synthetic(score_size="train")) == 28
    with pytest.raises(saliency.UsageError, match="--score-size"):
        saliency.score_size(synthetic(score_size=224))
    with pytest.raises(saliency.UsageError, match="--score-images release"):
        saliency.check_scoring(synthetic(score_images="release"))


def test_train_refuses_a_scoring_the_dataset_cannot_have_before_training(capsys):
    for argv, flag in ((["--score-images", "release"], "--score-images"), (["--score-size", "0"], "--score-size")):
        with pytest.raises(SystemExit) as e:
            train.parse_args(argv)
        assert e.value.code == 2 and flag in capsys.readouterr().err.splitlines()[-1]
    assert train.parse_args(["--dataset", "xray", "--score-images", "release"]).score_images == ["release"]


def test_the_scoring_split_is_the_same_cohorts_test_split_loaded_at_the_scoring_size_once(monkeypatch):
    loads = []
    monkeypatch.setattr(datasets, "load", lambda a: loads.append(vars(a)) or {"test": f"test at {a.image_size}"})
    config = argparse.Namespace(dataset="rsna", image_size=128, ratio=0.9, data_seed=3, seed=3, method="rrr")
    assert saliency.scoring_split(config, "the training split", 128) == "the training split"   # nothing loaded
    assert saliency.scoring_split(config, "the training split", 224) == "test at 224"
    assert saliency.scoring_split(config, "the training split", 224) == "test at 224"          # loaded once
    assert loads == [dict(vars(config), image_size=224)]                                       # only the size moves
    assert config.image_size == 128


def test_a_model_trained_at_128_runs_at_224():
    """What scoring at 224 relies on: the ResNet ends in adaptive pooling, so any input size gives two logits."""
    net = ResNet18().eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 128, 128)).shape == net(torch.zeros(1, 1, 224, 224)).shape == (1, 2)


def test_the_figure_sample_is_a_fixed_random_500_test_images():
    a, b = saliency.figure_sample(2000), saliency.figure_sample(2000)
    assert a.sum() == 500 and torch.equal(a, b) and not a[:500].all()
    assert saliency.figure_sample(300).all()


def test_the_figures_map_is_the_mean_top_half_map_of_the_sample_whether_scored_or_not(tmp_path, monkeypatch):
    """Positives and negatives of the sample alike: the map of each is |saliency| smoothed and kept above its
    median, averaged; the scored images' own scores are unchanged by the sample."""
    monkeypatch.setattr(saliency, "FIGURE_IMAGES", 40)
    split = sited(n_per_cell=20)
    torch.manual_seed(0)
    net = Linear(size=28)
    out = saliency.score(net, split, "grad", batch_size=16, out_dir=str(tmp_path), architecture=linear28)
    sample = saliency.figure_sample(len(split))
    assert 0 < int((split.y[sample] == 0).sum()) < 40                # both classes
    expected = attribution.top_half(attribution.input_gradients(net, split.x[sample])).mean(0)
    with np.load(tmp_path / "saliency.npz") as npz:
        assert int(npz["n_sample"]) == 40
        np.testing.assert_allclose(npz["sample_map"], expected.numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(npz["sample_input"], split.x[sample].mean((0, 1)).numpy(), atol=1e-6)
    assert out == dict(saliency.score(net, split, "grad", batch_size=16, architecture=linear28),
                       saliency_seconds=out["saliency_seconds"])


# ------------------------------------------------------------------ the CLI

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A real one-epoch run: its directory and its results CSV. 16 test images (8 positives), which every CLI
    test below scores again (the cascade seven times); no probe row, which no test here reads."""
    root = tmp_path_factory.mktemp("run")
    run, path = root / "run-a", root / "results.csv"
    assert train.cli(["--n-train", "32", "--n-eval", "16", "--epochs", "1", "--no-probes", "--out", str(run),
                      "--results", str(path)]) == 0
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
    final = next(r for r in rows if r["kind"] == "final")
    assert row["run_id"] == final["run_id"]  # joins its run's final row
    assert row["selected_epoch"] == "1" and row["method"] == "baseline"
    assert row["n_scored"] == "8" and all(0.0 <= float(row[k]) <= 1.0 for k in ("iou", "iop", "iot"))
    # the shortcut measures and the map's mass, added to a run that finished before they were recorded
    for column in ("box_effect", "test_auc_nobox", "test_auc_train_rule", "test_auc_masked_input", "mask_effect",
                   "outside_mass", "box_mass", "pointing", "n_zero_maps"):
        assert row[column] != "" and (column == "n_zero_maps" or 0 <= float(row[column]) <= 1), column
    assert row["box_effect"] == final["box_effect"] and row["iou"] == final["iou"]  # the same model
    assert f"iou {float(row['iou']):.3f}" in capsys.readouterr().out
    assert (run / "saliency.npz").exists()


def test_cli_records_the_scoring_and_keeps_the_release_subsets_maps_apart(trained_run, monkeypatch):
    """An X-ray run's config with sites: --score-images release adds a row saying so, and its maps go to their
    own folder, so the run's saliency.npz (every positive) is left as it was."""
    run, path = trained_run
    test = datasets.load_synthetic(n_train=32, n_eval=32)["test"]
    test.site = torch.arange(len(test)) % 2
    load = datasets.load
    monkeypatch.setattr(datasets, "load", lambda config: dict(load(config), test=test))
    before = (run / "saliency.npz").read_bytes() if (run / "saliency.npz").exists() else None
    monkeypatch.setattr(saliency, "check_scoring", lambda config: None)  # a synthetic run standing in for X-ray
    assert saliency.cli(["--run", str(run), "--score-images", "release"]) == 0
    row = read(path)[-1]
    assert row["score_images"] == "release" and row["score_size"] == "28"
    assert int(row["n_scored"]) == int(((test.y == 1) & saliency.release_subset(test)).sum())
    assert (run / "saliency-grad-release" / "saliency.npz").exists()
    assert (run / "saliency.npz").read_bytes() == before if before else not (run / "saliency.npz").exists()
    final = next(r for r in read(path) if r["kind"] == "final")
    assert final["score_images"] == "all" and final["score_size"] == "28"


def test_cli_all_appends_one_row_per_method_and_one_npz_each(trained_run, monkeypatch):
    run, path = trained_run
    monkeypatch.setattr(attribution, "OCCLUSION_WINDOW", 112)  # 14 px patches at 28: 4 patches keep this fast
    before = read(path)
    assert saliency.cli(["--run", str(run), "--saliency", "all", "--ig-steps", "4"]) == 0
    rows = read(path)
    assert rows[:len(before)] == before
    new = rows[len(before):]
    assert [r["saliency"] for r in new] == ["grad", "ig", "occlusion"]
    final = next(r for r in rows if r["kind"] == "final")
    assert {r["run_id"] for r in new} == {final["run_id"]} and {r["kind"] for r in new} == {"saliency"}
    for column in ("iou", "iou_chance", "iou_untrained"):  # grad again on best.pt: the final row's
        assert float(new[0][column]) == pytest.approx(float(final[column]))
    # The run's own method (grad) keeps <run>/saliency.npz for the figures; the others get their own folder.
    for method, npz in (("grad", run / "saliency.npz"), ("ig", run / "saliency-ig" / "saliency.npz"),
                        ("occlusion", run / "saliency-occlusion" / "saliency.npz")):
        with np.load(npz) as z:
            assert str(z["saliency"]) == method


def test_cli_keeps_the_untrained_scores_beside_the_run_or_where_told_or_nowhere(trained_run, tmp_path):
    run, _ = trained_run
    beside = run.parent / "untrained-saliency"
    untrained = {}
    for where, flags in (("beside", []), ("told", ["--untrained-cache", str(tmp_path / "told")]),
                         ("nowhere", ["--untrained-cache", "none"])):
        listed = sorted(beside.iterdir()) if beside.exists() else []
        assert saliency.cli(["--run", str(run), "--results", str(tmp_path / f"{where}.csv"), *flags]) == 0
        untrained[where] = read(tmp_path / f"{where}.csv")[0]["iou_untrained"]
        assert beside.exists() and (where == "beside" or sorted(beside.iterdir()) == listed)
    assert len(list((tmp_path / "told").glob("*.npz"))) == 1 and not os.path.exists("none")
    assert len(set(untrained.values())) == 1


def test_every_row_of_one_scoring_names_the_commit_its_process_started_on(trained_run, tmp_path, monkeypatch):
    """A checkout while a long scoring runs must not relabel its later rows: the process runs the old code."""
    run, _ = trained_run
    commits = iter(f"commit-{i}" for i in range(100))
    monkeypatch.setattr(results, "git_commit", lambda: next(commits))
    assert saliency.cli(["--run", str(run), "--cascade", "--results", str(tmp_path / "r.csv")]) == 0
    assert {r["git_commit"] for r in read(tmp_path / "r.csv")} == {"commit-0"}


def copy_run(run, dest, **config):
    """dest/best.pt: the run's weights under a config changed by `config`."""
    ckpt = torch.load(run / "best.pt", weights_only=True)
    ckpt["config"].update(config)
    dest.mkdir(exist_ok=True)
    torch.save(ckpt, dest / "best.pt")
    return dest


def test_cli_cascade_appends_one_row_per_step_after_the_normal_row_drawn_from_the_runs_seed(trained_run):
    run, path = trained_run
    reseeded = copy_run(run, run.parent / "seed-5", seed=5)
    before = read(path)
    assert saliency.cli(["--run", str(reseeded), "--cascade"]) == 0
    new = read(path)[len(before):]
    assert [r["randomized"] for r in new] == ["", "fc", "layer4", "layer3", "layer2", "layer1", "conv1"]
    assert {r["kind"] for r in new} == {"saliency"} and {r["saliency"] for r in new} == {"grad"}
    normal, steps = new[0], new[1:]
    assert {r["iou_chance"] for r in steps} == {normal["iou_chance"]}  # the masks' alone
    assert [r["iou_untrained"] for r in steps] == [""] * 6 and normal["iou_untrained"] != ""
    # Both the untrained network and the cascade's new weights are drawn from the run's seed, 5.
    net, ckpt = rundir.load_best(str(reseeded))
    split = datasets.load(argparse.Namespace(**ckpt["config"]))["test"]  # the run's own test images
    untrained = {s: saliency.score(net, split, "grad", untrained_seed=s)["iou_untrained"] for s in (0, 5)}
    assert untrained[5] != untrained[0] and float(normal["iou_untrained"]) == pytest.approx(untrained[5])
    assert float(steps[0]["iou"]) == pytest.approx(next(saliency.score_cascade(net, split, "grad", seed=5))["iou"])


BAD = [
    (lambda run, path: ["--run", str(run.parent / "no-such-run")], "--run"),
    (lambda run, path: ["--run", str(run.parent / "broken")], "--run"),
    (lambda run, path: ["--run", str(run), "--results", str(path.parent / "other.csv")], "--results"),
    (lambda run, path: ["--run", str(run), "--saliency", "all", "--ig-steps", "0"], "--ig-steps"),
    (lambda run, path: ["--run", str(run.parent / "no-seed"), "--cascade"], "--run"),
    (lambda run, path: ["--run", str(run), "--untrained-cache", str(path / "cache")], "--untrained-cache"),  # a file
    (lambda run, path: ["--run", str(run), "--score-images", "release"], "--score-images"),  # no sites
    (lambda run, path: ["--run", str(run), "--score-size", "224"], "--score-size"),  # synthetic is 28 px
]


@pytest.mark.parametrize("argv,flag", BAD, ids=["missing-run", "corrupt-best.pt", "foreign-results", "no-ig-steps",
                                                "no-seed", "cache-under-a-file", "release-on-synthetic",
                                                "synthetic-at-224"])
def test_bad_input_exits_2_with_one_line_and_appends_nothing(trained_run, capsys, argv, flag):
    run, path = trained_run
    copy_run(run, run.parent / "no-seed", seed=None)
    (run.parent / "broken").mkdir(exist_ok=True)
    (run.parent / "broken" / "best.pt").write_bytes(b"not a checkpoint")
    (path.parent / "other.csv").write_text("a,b\n1,2\n")
    before = path.read_bytes()
    code = saliency.cli(argv(run, path) + ["--results", str(path)] * (flag != "--results"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and flag in err
    assert path.read_bytes() == before
    assert (path.parent / "other.csv").read_text() == "a,b\n1,2\n"


def test_the_shortcut_precision_check_recomputes_the_swing_the_run_recorded(trained_run, capsys):
    """checks/shortcut_precision.py reloads the selected model and redraws the test split from its config: the
    swing it computes with both AUCs in float64 is the one the run's final row recorded (train.py records
    them that way), to the printed digits."""
    run, path = trained_run
    assert shortcut_precision.main([str(path)]) == 0
    out = capsys.readouterr().out
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()
            if line.startswith("| Classification")]
    assert len(rows) == 1
    recorded, corrected = rows[0][1:3]
    assert recorded == corrected and "the label (swing >= 0.5) flips in 0" in out


def test_the_shortcut_precision_check_reports_a_damaged_best_pt_in_one_line(trained_run, capsys, monkeypatch):
    run, path = trained_run
    def damaged(run_dir, flag):
        raise rundir.UsageError(f"{flag} {run_dir}: cannot load best.pt (KeyError); re-train the run")
    monkeypatch.setattr(rundir, "load_best", damaged)
    assert shortcut_precision.main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "best.pt" in err


def test_the_ties_out_binarisation_keeps_only_pixels_above_the_next_value():
    """checks/scoring_variants.py's guess at the authors' occlusion scoring: with the k-th and
    (k+1)-th values tied, neither is kept, so the binarised map has fewer pixels than the mask (IoP > IoT)."""
    above_next = scoring_variants.above_next
    s = torch.tensor([3.0, 2.0, 2.0, 1.0]).view(1, 1, 2, 2)
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)            # k = 2
    scores, _ = above_next(s, mask, 0.0)
    assert (scores["iou"].item(), scores["iop"].item(), scores["iot"].item()) == (0.5, 1.0, 0.5)
    untied = torch.tensor([3.0, 2.5, 2.0, 1.0]).view(1, 1, 2, 2)            # no tie: the top k, like ours
    ours = attribution.top_k_localisation(untied, mask, 0.0)[0]["iou"].item()
    assert above_next(untied, mask, 0.0)[0]["iou"].item() == ours == 1.0


def test_the_scoring_variants_check_reproduces_the_recorded_iou_with_ours(trained_run, capsys, tmp_path):
    """scoring_variants.py's "ours" line scores the images saliency.py scores, the same way, so it prints the
    IoU the run's final row recorded; a missing run is one line on stderr and exit 2."""
    run, path = trained_run
    variants = scoring_variants
    assert variants.main(["grad", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(variants.VARIANTS)
    ours = next(line for line in lines if "ours (abs, blur)" in line)
    final = next(r for r in read(path) if r["kind"] == "final")
    assert f"IoU {float(final['iou']):.3f}" in ours
    assert variants.main(["grad", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no such directory" in err


def test_the_rrr_check_finds_a_penalty_silenced_by_a_prediction_of_one_half():
    """rrr_confidence.py's two-class identity: d sum_k log p_k/dx = (1 - 2p) d(z_1 - z_0)/dx. A linear
    net whose logit z_1 reads only a pixel outside a 1-pixel mask has all its gradient outside (share 1,
    IoU 0); at p = 1/2 the penalised gradient is zero although the map's is not."""
    examine = rrr_confidence.examine

    class ReadsTheLastPixel(torch.nn.Module):  # z_0 = 0, z_1 = 2 x_24; the mask is pixel 0
        def forward(self, x):
            z1 = 2 * x.flatten(1)[:, -1]
            return torch.stack([torch.zeros_like(z1), z1], 1)

    net, mask = ReadsTheLastPixel(), torch.zeros(1, 1, 5, 5)  # 5 x 5: the blur's radius is 4
    mask[0, 0, 0, 0] = 1
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 4, 4] = 3.0                                                    # z_1 = 6
    confident, scores = examine(net, x, mask)
    assert confident == pytest.approx(np.tanh(3.0))                        # |1 - 2 sigmoid(6)|
    assert all(iou == 0.0 and share == pytest.approx(1.0) for iou, share in scores.values())
    half, scores = examine(net, torch.zeros(1, 1, 5, 5), mask)            # z_1 = 0: p = 1/2
    assert half == 0.0
    (_, map_share), (_, penalised_share) = scores.values()
    assert map_share == pytest.approx(1.0) and penalised_share == 0.0       # (1 - 2p) = 0 silences it


def test_the_rrr_check_scores_the_map_as_saliency_py_does(trained_run, capsys, tmp_path):
    """rrr_confidence.py's dz_1/dx IoU is the IoU the run's final row recorded (same images, same scoring);
    a missing run is one line on stderr and exit 2."""
    run, path = trained_run
    assert rrr_confidence.main([str(run)]) == 0
    line = capsys.readouterr().out.strip()
    final = next(r for r in read(path) if r["kind"] == "final")
    assert f"(saliency.py's map): IoU {float(final['iou']):.3f}" in line
    assert rrr_confidence.main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no such directory" in err


def test_a_scoring_batch_holds_at_most_16_images_of_224_px_and_every_synthetic_batch_64():
    assert saliency.score_batch(datasets.SIZE) == saliency.score_batch(None) == 64  # the synthetic scores as before
    for side in (128, 224, 512):  # above 112 px the pixels, not the 64, bound the batch
        assert saliency.score_batch(side) * side ** 2 <= 16 * 224 ** 2 < (saliency.score_batch(side) + 1) * side ** 2
    assert saliency.score_batch(4096) == 1


def test_the_untrained_network_is_the_seeded_initialisation_each_time_and_a_copy_of_its_own():
    torch.manual_seed(7)
    expected = ResNet18().state_dict()
    first, second = saliency.untrained_model(7), saliency.untrained_model(7)
    with torch.no_grad():
        first.fc.weight.zero_()  # a caller that changes its copy (the cascade does) changes no later one
    assert all(torch.equal(v, second.state_dict()[k]) for k, v in expected.items())
