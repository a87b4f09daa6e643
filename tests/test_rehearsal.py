"""A rehearsal of the X-ray tables without the X-rays.

The commands that make Tables 1-2 and Figures 6-8 (README, "The X-ray
tables") run end to end on stand-in images (`datasets.py --stand-in`: files
in the real formats and names, for cohorts drawn from the real metadata, that
are not X-rays): both datasets, both ratios, every setting, one seed, one
epoch, through sweep.py's seeds phase and plots.py. The runs are sweep's own
trials, started in this process instead of as subprocesses; the cohort is
the smallest with every site x label cell in every split; the images are
32 px; and the network is a narrow stand-in for ResNet-18
(conftest.narrow_resnet: the same module names, checkpoint layout and 512
features, each stage one 8-channel convolution). The subject here is the
pipeline from files to tables; ResNet-18 itself is trained end to end by
test_train and test_reproduction. With ResNet-18 the 42 runs took 250
CPU-seconds here, four times the budget of one test; with the stand-in,
about 30.

What a wrong pipeline would break: a setting missing from a table, a cell
of a table left blank, a scoring (every positive, the release's 50) or an
overlap (IoU, IoT) not reaching the table, a figure panel without a map.
"""
import contextlib
import io
import os

import numpy as np
import pytest

import datasets
import launch
import models
import plots
import results
import standins
import sweep
from conftest import InProcessLauncher, narrow_resnet

pytestmark = pytest.mark.xdist_group("rehearsal")

RATIOS = ("0.9", "0.5")
N_PER_CELL = standins.smallest_n([float(r) for r in RATIOS], 0)  # no valid_id on X-ray by default
# Every setting of the table commands: six methods, Masked's zero fill, and on rsna both empty-mask rules.
SETTINGS = {"xray": 7, "rsna": 14}
# The table commands' flags (README), with the rehearsal's small sizes after them.
TABLE_FLAGS = ["--methods", "all", "--mask-fills", "shuffle", "zero", "--phase", "seeds", "--seeds", "1",
               "--score-images", "all", "release"]
SMALL = ["--epochs", "1", "--image-size", "32", "--score-size", "train", "--batch-size", "16", "--no-probes"]


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """(results rows, plots.py's output folder, the launchers' exit codes) of the table commands on stand-ins."""
    root = tmp_path_factory.mktemp("rehearsal")
    csv, codes, notes = str(root / "results.csv"), [], io.StringIO()

    def launcher(opts):
        made = InProcessLauncher(opts)
        codes.append(made.codes)
        return made
    with pytest.MonkeyPatch.context() as mp, narrow_resnet():
        mp.setattr(launch, "Launcher", launcher)
        for dataset in SETTINGS:
            data_flags = datasets.write_stand_ins(str(root / dataset), dataset, N_PER_CELL)
            empty = ["--empty-masks", "penalize", "skip"] if dataset == "rsna" else []
            with contextlib.redirect_stdout(io.StringIO()):
                assert sweep.main(["--datasets", dataset, "--ratios", *RATIOS, *TABLE_FLAGS, *empty,
                                   "--results", csv, "--cache", str(root / "cache"), *SMALL, *data_flags]) == 0
        figures = str(root / "figures")
        with contextlib.redirect_stdout(notes):
            plots.main(plots.parse_args(["--results", csv, "--out", figures]))
    return results.read_rows(csv), figures, [c for made in codes for c in made], notes.getvalue()


def test_rehearsal_stand_in_network_stays_inside_its_block():
    """The stand-in builds where the rehearsal builds ResNet-18s, and no stand-in weights outlive the block:
    saliency memoises untrained weights, which a later test in this process would otherwise load."""
    import saliency  # noqa: PLC0415
    real = sum(p.numel() for p in saliency.untrained_model(0).parameters())
    with narrow_resnet():
        narrow = saliency.untrained_model(0)
        assert sum(p.numel() for p in narrow.parameters()) < real / 10
        assert list(dict(narrow.named_children())) == list(dict(models.ResNet18().named_children()))
    assert sum(p.numel() for p in saliency.untrained_model(0).parameters()) == real


def test_rehearsal_every_setting_of_both_datasets_and_ratios_trains_and_is_scored_both_ways(rehearsal):
    rows, _, codes, _ = rehearsal
    finals = [r for r in rows if r["kind"] == "final"]
    assert codes == [0] * len(finals) and len(finals) == len(RATIOS) * sum(SETTINGS.values())
    for dataset, n in SETTINGS.items():
        for ratio in RATIOS:
            runs = [r for r in finals if r["dataset"] == dataset and float(r["ratio"]) == float(ratio)]
            assert len({(r["method"], r["mask_fill"], r["empty_mask"]) for r in runs}) == n
    for r in finals:  # every positive of the test split, IoU and IoT, and the release's subset in a row of its own
        assert r["status"] == "ok" and r["score_images"] == "all" and r["iou"] and r["iot"]
        release = [s for s in rows if s["kind"] == "saliency" and s["run_id"] == r["run_id"]]
        assert [s["score_images"] for s in release] == ["release"] and release[0]["iot"]
        assert 0 < int(release[0]["n_scored"]) <= int(r["n_scored"])
        # the figure map of every run: a panel of Figures 6-7 averages them over seeds
        with np.load(os.path.join(r["run_dir"], "saliency.npz")) as npz:
            assert npz["sample_map"].shape[-2:] == (32, 32) and npz["sample_map"].any()


def table(tables, title):
    """The first markdown table under the heading `title`: {row label: [cells]} and its header."""
    lines = tables.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0].splitlines()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("|")]
    header, body = rows[0], rows[2:]
    return header, {row[1]: row[2:] for row in body}


@pytest.mark.parametrize("dataset", list(SETTINGS))
@pytest.mark.parametrize("scoring", ["", ": the release's scoring"])  # every positive (the text), the release's 50
def test_rehearsal_table_has_a_filled_row_per_setting_with_iou_and_iot(rehearsal, dataset, scoring):
    _, figures, _, _ = rehearsal
    with open(os.path.join(figures, "tables.md")) as f:
        header, rows = table(f.read(), dataset + scoring)
    methods = {label: cells for label, cells in rows.items() if label != "Chance"}
    assert len(methods) == SETTINGS[dataset]
    for ratio in RATIOS:
        for column in ("AUC", "IoU grad", "IoT grad"):
            assert sum(h.endswith(f"({ratio}) {column}") for h in header) == 1, (ratio, column)
    assert all(cell.endswith("(n=1)") or cell.endswith("(n=1)**") for cells in methods.values() for cell in cells)


@pytest.mark.parametrize("figure", ["saliency_maps_xray", "saliency_maps_rsna", "saliency_maps_rsna_skip",
                                    "auc_vs_localisation"])
def test_rehearsal_draws_figures_6_to_8(rehearsal, figure):
    _, figures, _, notes = rehearsal
    assert os.path.getsize(os.path.join(figures, f"{figure}.png")) > 0
    assert not [line for line in notes.splitlines() if line.startswith("skip:") and figure in line]
