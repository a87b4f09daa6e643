"""The chest X-ray cohorts, drawn from the metadata CSVs torchxrayvision ships: no image is needed.

Sizes, balance and the reversed correlation of every split at both of the
paper's ratios; the release's quotas; valid_id; patient splits; the labels'
selection rules; what --skip-bad-images costs a draw; `--summary`.
"""
import itertools
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

import cohorts
import datasets
from conftest import cells_of, data_args

# train, valid_id, valid, test by default (no valid_id: the paper's training sizes), and with --valid-id-fraction 0.1
SHIPPED_SIZES = {("xray", 0.9): (5550, 0, 2774, 2780), ("xray", 0.5): (5552, 0, 2776, 2776),
                 ("rsna", 0.9): (2694, 0, 1346, 1352), ("rsna", 0.5): (2696, 0, 1348, 1348)}
SHIPPED_SIZES_WITH_VALID_ID = {("xray", 0.9): (4998, 552, 2774, 2780), ("xray", 0.5): (5000, 552, 2776, 2776),
                               ("rsna", 0.9): (2426, 268, 1346, 1352), ("rsna", 0.5): (2428, 268, 1348, 1348)}


def files_of(cohort, name):
    return set(cohort.table["file"].to_numpy()[cohort.splits[name]])


def paper_rule(pool, ratio, seed):
    """The paper's three splits (file names), dealt without valid_id: a cell's first ranked images to
    train, the next to valid, the rest to test, with the quotas written out here as the paper gives them."""
    r = Fraction(ratio).limit_denominator(100)
    cell = (2 * pool["site"] + pool["y"]).to_numpy()
    rank = np.random.default_rng(seed).random(len(pool))  # draw_cohort's ranks: the seed's first draw
    n = np.bincount(cell).min()
    major, minor = n * r.numerator // r.denominator, n * (r.denominator - r.numerator) // r.denominator
    train = [major, minor, minor, major]
    valid = [minor // 2, major // 2, major // 2, minor // 2]  # = floor(n(1 - r)/2), floor(nr/2)
    splits = {"train": set(), "valid": set(), "test": set()}
    for c in range(4):
        ranked = pool["file"].to_numpy()[np.flatnonzero(cell == c)[np.argsort(rank[cell == c], kind="stable")][:n]]
        splits["train"] |= set(ranked[:train[c]])
        splits["valid"] |= set(ranked[train[c]:train[c] + valid[c]])
        splits["test"] |= set(ranked[train[c] + valid[c]:])
    return splits


# ------------------------------------------------------------------ cohorts from the shipped metadata

@pytest.mark.parametrize("dataset,ratio", list(SHIPPED_SIZES))
@pytest.mark.parametrize("fraction,sizes", [(0.0, SHIPPED_SIZES), (0.1, SHIPPED_SIZES_WITH_VALID_ID)])
def test_shipped_cohort_sizes_balance_and_reversal(pools, dataset, ratio, fraction, sizes):
    cohort = cohorts.draw_cohort(dataset, pools[dataset], ratio, seed=0, valid_id_fraction=fraction)
    assert cohort.n == {"xray": 2776, "rsna": 1348}[dataset]
    assert tuple(len(cohort.splits[s]) for s in cohorts.SPLITS) == sizes[(dataset, ratio)]
    for name in [s for s in cohorts.SPLITS if len(cohort.splits[s])]:
        neg0, pos0, neg1, pos1 = cells_of(cohort, name)
        assert neg0 + neg1 == pos0 + pos1 and neg0 + pos0 == neg1 + pos1   # classes and sites balanced
        in_distribution = name in ("train", "valid_id")
        if ratio != 0.5:  # train and valid_id: positives mostly from site 1; valid and test: reversed
            assert (pos1 > 4 * pos0 and neg0 > 4 * neg1) == in_distribution
            assert (pos0 > 4 * pos1 and neg1 > 4 * neg0) == (not in_distribution)
        else:
            assert neg0 == pos0 == neg1 == pos1


@pytest.mark.parametrize("patient_split", [False, True])
def test_every_drawn_image_is_in_exactly_one_split(pools, patient_split):
    cohort = cohorts.draw_cohort("xray", pools["xray"], 0.9, seed=0, patient_split=patient_split)
    rows = np.sort(np.concatenate([cohort.splits[s] for s in cohorts.SPLITS]))
    assert rows.tolist() == list(range(4 * cohort.n))
    assert not cohort.table["file"].duplicated().any()


def test_by_default_training_has_the_papers_sizes_and_there_is_no_valid_id(pools):
    """The release held nothing out of training. Its quotas (floats there, exact here) give the paper's N = 2696 /
    1348 / 1348 at ratio 0.5 and 2694 / 1346 / 1352 at 0.9: the paper's VPC sizes are those of No VPC."""
    for dataset, ratio in SHIPPED_SIZES:
        cohort = cohorts.draw_cohort(dataset, pools[dataset], ratio, seed=0)
        assert len(cohort.splits["valid_id"]) == 0
        assert cells_of(cohort, "train").tolist() == cohorts.split_quotas(cohort.n, ratio)["train"].tolist()
        n, r, half = cohort.n, ratio, (0.5, 0.25, 0.25)   # the release: int(n * ratio * split share * 2)
        release = [2 * (int(n * r * half[0] * 2) + int(n * (1 - r) * half[0] * 2)),
                   2 * (int(n * (1 - r) * half[1] * 2) + int(n * r * half[1] * 2))]
        assert [len(cohort.splits["train"]), len(cohort.splits["valid"])] == release


def test_the_release_float_quotas_are_one_short_only_where_n_tenths_is_whole():
    """split_quotas is exact; the release's int(n * 0.1) of a float falls one short at n = 10, 20, ... only.
    The paper's SPC sizes 5542 / 2770 are those of n = 2772 (our NIH metadata has 2776 cardiomegaly images)."""
    for n in range(1, 3000):
        q = cohorts.split_quotas(n, 0.9)
        release = (int(n * 0.9 * 0.5 * 2), int(n * (1 - 0.9) * 0.5 * 2))
        assert ((q["train"][0], q["train"][1]) != release) == (n % 10 == 0)
    q = cohorts.split_quotas(2772, 0.9)
    assert (q["train"].sum(), q["valid"].sum()) == (5542, 2770)


@pytest.mark.parametrize("dataset,ratio", list(SHIPPED_SIZES))
def test_valid_id_is_a_tenth_of_each_training_cell_so_it_follows_the_training_correlation(pools, dataset, ratio):
    cohort = cohorts.draw_cohort(dataset, pools[dataset], ratio, seed=0, valid_id_fraction=0.1)
    train, valid_id = cells_of(cohort, "train"), cells_of(cohort, "valid_id")
    assert valid_id.tolist() == ((train + valid_id) // 10).tolist()
    assert np.abs(valid_id / valid_id.sum() - train / train.sum()).max() < 0.01  # same share per cell


@pytest.mark.parametrize("dataset,ratio", list(SHIPPED_SIZES))
@pytest.mark.parametrize("seed", [0, 3])
def test_valid_id_is_carved_from_the_papers_training_images_and_leaves_valid_and_test_as_they_were(
        pools, dataset, ratio, seed):
    cohort = cohorts.draw_cohort(dataset, pools[dataset], ratio, seed, valid_id_fraction=0.1)
    paper = paper_rule(pools[dataset], ratio, seed)
    assert files_of(cohort, "valid") == paper["valid"] and files_of(cohort, "test") == paper["test"]
    assert files_of(cohort, "train") | files_of(cohort, "valid_id") == paper["train"]


def test_an_unset_data_seed_draws_the_seed_0_cohort_every_time(pools):
    """--data-seed now defaults to None (train.py fills in --seed); a direct load must stay reproducible."""
    unset = cohorts.draw_cohort("rsna", pools["rsna"], 0.9, seed=None)
    seed0 = cohorts.draw_cohort("rsna", pools["rsna"], 0.9, seed=0)
    assert all(np.array_equal(unset.splits[s], seed0.splits[s]) for s in cohorts.SPLITS)


@pytest.mark.parametrize("fraction", [0.0, 0.1])
def test_quotas_are_exact_where_floats_round_down(fraction):
    for n in range(1, 3000):
        q = cohorts.split_quotas(n, 0.9, fraction)
        papers_train = np.array([9 * n // 10, n // 10, n // 10, 9 * n // 10])
        valid_id = papers_train // 10 if fraction else np.zeros(4, int)
        assert q["valid_id"].tolist() == valid_id.tolist()
        assert q["train"].tolist() == (papers_train - valid_id).tolist()
        assert q["valid"].tolist() == [n // 20, 9 * n // 20, 9 * n // 20, n // 20]
        assert sum(q.values()).tolist() == [n] * 4
    assert int(10 * (1 - 0.9)) == 0 and cohorts.split_quotas(10, 0.9)["train"][1] == 1  # the float hazard


@pytest.mark.parametrize("ratio", [0.9, 0.5])
def test_patient_split_leaves_no_patient_in_two_of_the_four_splits(pools, ratio):
    by_image = cohorts.draw_cohort("xray", pools["xray"], ratio, seed=0, valid_id_fraction=0.1)
    by_patient = cohorts.draw_cohort("xray", pools["xray"], ratio, seed=0, patient_split=True, valid_id_fraction=0.1)
    patients = {s: set(by_patient.table["patient"].to_numpy()[by_patient.splits[s]]) for s in cohorts.SPLITS}
    for a, b in itertools.combinations(cohorts.SPLITS, 2):
        assert not patients[a] & patients[b], (a, b)
    for name in cohorts.SPLITS:  # and the same images per cell as the image split
        assert cells_of(by_patient, name).tolist() == cells_of(by_image, name).tolist()
    shared = {s: set(by_image.table["patient"].to_numpy()[by_image.splits[s]]) for s in cohorts.SPLITS}
    assert shared["train"] & shared["test"] and shared["train"] & shared["valid_id"]  # the paper's by-image split


def test_selection_rules_on_the_shipped_metadata(pools):
    pool = pools["xray"]
    pc = pd.read_csv(cohorts.metadata_path(data_args(), "padchest"), usecols=["ImageID", "Labels"]).set_index("ImageID")
    labels = pc.loc[pool["file"][pool["source"] == "padchest"], "Labels"]
    y = pool["y"][pool["source"] == "padchest"].to_numpy()
    assert labels[y == 0].str.contains("abnormal").sum() == 0        # 'abnormal foreign body' is not healthy
    assert labels[y == 1].str.contains("cardiomegaly").all()
    assert np.bincount(2 * pool["site"] + pool["y"]).tolist() == [60361, 2776, 22046, 4728]
    rsna = pools["rsna"]
    assert all((b is None) == (y == 0) for b, y in zip(rsna["boxes"], rsna["y"]))  # boxes exactly on positives


def summary_rows(out):
    """The summary's table: split -> its four cells and the total, as printed."""
    return {line.split()[0]: line.split()[1:6] for line in out.splitlines() if line.split()[:1] in
            [[s] for s in cohorts.SPLITS]}


def test_n_bad_images_counts_the_excluded_images_the_draw_passed_over(pools):
    """What --skip-bad-images cost a cohort, as the run's rows record it: an excluded image counts when the
    draw would have taken it (ranked within its cell's drawn images, or anywhere in a cell used whole),
    not when the draw never reached it, as with another seed's unreadable file in the shared list."""
    pool = pools["xray"]
    cohort = cohorts.draw_cohort("xray", pool, 0.9, seed=0)
    cell, files = (2 * pool["site"] + pool["y"]).to_numpy(), pool["file"].to_numpy()
    train = cohort.splits["train"]
    drawn = cohort.table["file"].to_numpy()[train[cohort.cells()[train] == 2]][0]  # among its cell's first ranks
    beyond = next(f for f in files[cell == 2] if f not in set(cohort.table["file"]))
    whole = files[cell == 1][0]                                            # NIH cardiomegaly: used whole
    assert cohort.n_bad_images == 0
    for exclude, expected in [({drawn}, 1), ({beyond}, 0), ({whole}, 1), ({drawn, beyond, whole}, 2)]:
        again = cohorts.draw_cohort("xray", pool, 0.9, seed=0, exclude=exclude)
        assert again.n_bad_images == expected and not exclude & set(again.table["file"])


def test_summary_cli_needs_no_image_and_shows_valid_id_per_cell(capsys):
    assert datasets.cli(["--dataset", "rsna", "--summary", "--valid-id-fraction", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "n = 1348 per cell" in out and "patients in more than one split: 0" in out
    rows = summary_rows(out)
    assert list(rows) == list(cohorts.SPLITS)
    assert rows["valid_id"] == ["121", "13", "13", "121", "268"]   # a tenth of the paper's 1213/134 training cells
    assert [r[4] for r in rows.values()] == ["2426", "268", "1346", "1352"]


def test_patient_split_flag_reaches_the_draw(capsys):
    """By image (the paper's way) NIH and PadChest patients span splits; --patient-split leaves none that do."""
    assert datasets.cli(["--dataset", "xray", "--summary"]) == 0
    assert "split by image" in capsys.readouterr().out
    assert datasets.cli(["--dataset", "xray", "--summary", "--patient-split"]) == 0
    out = capsys.readouterr().out
    assert "split by patient" in out and "patients in more than one split: 0 of" in out


@pytest.mark.parametrize("dataset,ratio,train", [("xray", "0.9", "5550"), ("rsna", "0.5", "2696")])
def test_summary_by_default_trains_on_the_papers_sizes(capsys, dataset, ratio, train):
    assert datasets.cli(["--dataset", dataset, "--ratio", ratio, "--summary"]) == 0
    out = capsys.readouterr().out
    rows = summary_rows(out)
    assert rows["train"][4] == train and rows["valid_id"][4] == "0" and "no valid_id" in out
