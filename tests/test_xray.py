"""The chest X-ray images: the download plan, and the image pipeline on tiny files (the cohorts: test_cohorts.py).

The loader tests write a temporary tree of 64-pixel images under real
file names (8-bit PNG for NIH, 16-bit PNG for PadChest, JPEG and DICOM for
RSNA) and point small subset CSVs at them. The stand-in tests write files with
`datasets.py --stand-in` and read them back through the same loader.
"""
import ast
import contextlib
import csv
import io
import os
import re
import shlex
import shutil

import numpy as np
import pandas as pd
import pydicom
import pytest
import torch
from PIL import Image

import cohorts
import datasets
import results
import saliency
import standins
import train
import xray
from conftest import cells_of, data_args
from diagnostics import auc


# ------------------------------------------------------------------ what to download (--plan)

UNITS = {"nih": r"images_\d{3}\.tar\.gz", "padchest": r"ImageDir \d+", "rsna": r"stage_2_train_images/"}


@pytest.mark.parametrize("dataset", ["xray", "rsna"])
def test_plan_lists_the_files_that_hold_every_candidate_of_each_source(pools, capsys, dataset):
    assert datasets.cli(["--plan", dataset]) == 0
    out = capsys.readouterr().out
    pool = pools[dataset]
    assert f"pool of {len(pool):,} images" in out  # the pool every seed draws from, not one seed's cohort
    for source in pool["source"].unique():
        counts = re.findall(UNITS[source] + r": ([\d,]+)", out)
        assert sum(int(c.replace(",", "")) for c in counts) == (pool["source"] == source).sum()


def test_nih_archive_boundaries_give_archives_of_10000_images_but_the_first_and_last():
    names = pd.read_csv(cohorts.metadata_path(data_args(), "nih"), usecols=["Image Index"])["Image Index"]
    units = xray.download_units(pd.DataFrame({"source": "nih", "file": names}), "nih")
    assert list(units) == [f"images_{k:03d}.tar.gz" for k in range(1, 13)]
    assert list(units.values()) == [4999] + [10000] * 10 + [7121]  # 112,120 images in name order


@pytest.mark.parametrize("plan", ["synthetic", "chexpert"])
def test_plan_of_anything_but_an_xray_dataset_is_a_one_line_error(capsys, plan):
    assert datasets.cli(["--plan", plan]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--plan {plan!r}" in err and "xray, rsna" in err


# ------------------------------------------------------------------ a tree of tiny images

def _picture(rng, h, w, maxval):
    """A smooth gradient plus noise: enough structure for the resize to matter."""
    ramp = np.add.outer(np.linspace(0, 0.6, h), np.linspace(0, 0.3, w))
    return ((ramp + 0.1 * rng.random((h, w))) * maxval).astype(np.uint16 if maxval > 255 else np.uint8)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Subset CSVs of real metadata rows and 64-pixel images under their real names.

    NIH: 12 Cardiomegaly + 12 No Finding (four in the images_001/images/ layout).
    PadChest: 14 cardiomegaly + 14 normal PA (64x80, 16-bit, in ImageDir folders),
    plus an 'abnormal foreign body' PA and a lateral 'normal', which must not be drawn.
    RSNA: 12 images per view x label, as JPEG and as DICOM.
    At n = 12 per cell and ratio 0.9 every split holds both classes (valid_id is empty
    by default; with --valid-id-fraction 0.1 it is [1, 0, 0, 1]), and PadChest's spares
    replace a bad file.
    """
    root = tmp_path_factory.mktemp("xray")
    rng = np.random.default_rng(0)
    meta = cohorts.metadata_path
    args = data_args()

    nih = pd.read_csv(meta(args, "nih"))
    nih = pd.concat([nih[nih["Finding Labels"].str.contains("Cardiomegaly")].head(12),
                     nih[nih["Finding Labels"] == "No Finding"].head(12)])
    nih.to_csv(root / "nih.csv", index=False)
    for i, name in enumerate(nih["Image Index"]):
        folder = root / "nih" / ("images_001/images" if i % 7 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_picture(rng, 64, 64, 255)).save(folder / name)

    # Only the columns the loader reads: all of the 160K-row CSV's take seconds more.
    pc = pd.read_csv(meta(args, "padchest"), usecols=cohorts.PADCHEST_CSV.columns, low_memory=False)
    pa = pc[pc["ViewPosition_DICOM"].fillna("").str.contains("POSTEROANTERIOR")]
    labels = pa["Labels"].fillna("")
    pc = pd.concat([pa[labels == "['cardiomegaly']"].head(14), pa[labels == "['normal']"].head(14),
                    pa[labels.str.contains("abnormal foreign body")].head(1),
                    pc[(pc["ViewPosition_DICOM"] == "LATERAL") & (pc["Labels"] == "['normal']")].head(1)])
    pc.to_csv(root / "padchest.csv", index=False)
    for name, sub in zip(pc["ImageID"], pc["ImageDir"]):
        (root / "padchest" / str(sub)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(_picture(rng, 64, 80, 65535)).save(root / "padchest" / str(sub) / name)

    boxes = pd.read_csv(meta(args, "rsna"))
    views = pd.read_csv(meta(args, "rsna_views")).set_index("PatientID")["ViewPosition"]
    per = boxes.groupby("patientId")["Target"].max().to_frame().join(views)
    ids = [pid for view in ("PA", "AP") for t in (0, 1)
           for pid in per.index[(per["ViewPosition"] == view) & (per["Target"] == t)][:12]]
    boxes[boxes["patientId"].isin(ids)].to_csv(root / "rsna.csv", index=False)
    (root / "rsna_jpg").mkdir()
    (root / "rsna_dcm").mkdir()
    for pid in ids:
        pixels = _picture(rng, 64, 64, 255)
        Image.fromarray(pixels).save(root / "rsna_jpg" / f"{pid}.jpg", quality=95)
        standins.write_dicom(str(root / "rsna_dcm" / f"{pid}.dcm"), pixels)  # RSNA's 8-bit MONOCHROME2
    return root


def tree_argv(tree, dataset, ext="jpg"):
    if dataset == "xray":
        return ["--dataset", "xray", "--nih-dir", str(tree / "nih"), "--nih-csv", str(tree / "nih.csv"),
                "--padchest-dir", str(tree / "padchest"), "--padchest-csv", str(tree / "padchest.csv")]
    return ["--dataset", "rsna", "--rsna-dir", str(tree / f"rsna_{ext}"), "--rsna-ext", ext,
            "--rsna-csv", str(tree / "rsna.csv")]


def everything(split):
    """All of a split's batches, in order, concatenated: x, y, mask (None for an empty split)."""
    batches = list(split.batches(8))
    return tuple(torch.cat(t) for t in zip(*batches)) if batches else None


def expected_box_mask(boxes, size):
    """Reference for a square source image: the 1024-frame boxes scaled to size, every touched pixel."""
    m = np.zeros((size, size), bool)
    for x, y, w, h in boxes * size / xray.RSNA_FRAME:
        m[int(np.floor(y)):int(np.ceil(y + h)), int(np.floor(x)):int(np.ceil(x + w))] = True
    return m


@pytest.mark.parametrize("dataset,ext", [("xray", "jpg"), ("rsna", "jpg"), ("rsna", "dcm")])
def test_loader_reads_real_formats_with_labels_and_masks(tree, dataset, ext):
    args = data_args(*tree_argv(tree, dataset, ext), "--data-seed", "1")
    pool, _, cohort = xray.xray_cohort(args)
    splits = datasets.load(args)
    assert cohort.n == 12
    if dataset == "xray":  # the 'abnormal foreign body' and the lateral image are never drawn
        drawn = pd.read_csv(tree / "padchest.csv").set_index("ImageID").reindex(cohort.table["file"]).dropna(
            subset=["Labels"])
        assert len(drawn) == 24 and not drawn["Labels"].str.contains("abnormal").any()
        assert drawn["ViewPosition_DICOM"].eq("POSTEROANTERIOR").all()
    assert list(splits) == list(cohorts.SPLITS)
    size = xray.IMAGE_SIZE[dataset]  # the release's: 128 on xray, 224 on rsna
    assert len(splits["valid_id"]) == 0 and everything(splits["valid_id"]) is None  # none by default
    for name, split in [(name, split) for name, split in splits.items() if name != "valid_id"]:
        x, y, mask = everything(split)
        assert x.shape == mask.shape == (len(split), 1, size, size) and x.dtype == mask.dtype == torch.float32
        assert x.abs().max() <= 1024 and x.std() > 10
        assert torch.equal(y, split.y) and y.tolist() == cohort.table["y"].to_numpy()[cohort.splits[name]].tolist()
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        if dataset == "xray":  # the fixed ellipse on every image
            assert torch.equal(mask[:, 0], torch.from_numpy(xray.ellipse_mask(size)).float().expand(len(y), -1, -1))
            continue
        for m, label, row in zip(mask[:, 0], y, cohort.splits[name]):
            if label == 0:
                assert m.sum() == 0                          # no annotation: never masked, never penalised
            else:
                assert np.array_equal(m.numpy() > 0, expected_box_mask(cohort.table["boxes"][row], size))


def test_a_sources_folder_may_come_from_its_environment_variable_and_the_flag_wins(tree, monkeypatch, tmp_path):
    """--rsna-dir unset: $RSNA_DIR is read; both set: the flag, so a stale variable cannot hide a typo."""
    argv = tree_argv(tree, "rsna")
    i = argv.index("--rsna-dir")
    without_flag = argv[:i] + argv[i + 2:]
    monkeypatch.setenv("RSNA_DIR", str(tree / "rsna_jpg"))
    from_env = datasets.load(data_args(*without_flag, "--image-size", "16"))["test"]
    from_flag = datasets.load(data_args(*argv, "--image-size", "16"))["test"]
    assert torch.equal(everything(from_env)[0], everything(from_flag)[0])
    monkeypatch.setenv("RSNA_DIR", str(tmp_path / "nowhere"))
    assert len(datasets.load(data_args(*argv, "--image-size", "16"))["test"]) == len(from_flag)
    with pytest.raises(datasets.DataError, match="--rsna-dir .*nowhere: no such directory"):
        datasets.load(data_args(*without_flag, "--image-size", "16"))

def test_preprocessing_is_torchxrayvisions(tree):
    import torchxrayvision as xrv  # noqa: PLC0415  (a requirement; its import is slow, and only this test runs it)
    name = pd.read_csv(tree / "padchest.csv")["ImageID"][0]
    path = next(str(p) for p in (tree / "padchest").rglob(name))
    raw = np.asarray(Image.open(path))
    assert raw.dtype == np.uint16 and raw.shape == (64, 80)  # 16-bit and not square: the crop matters
    ref = xrv.datasets.XRayResizer(224)(xrv.datasets.XRayCenterCrop()(xrv.datasets.normalize(raw, 65535, True)))
    assert np.array_equal(xray.preprocess(xray.read_image(path, "padchest"), 224), ref[0])


def test_boxes_follow_the_centre_crop():
    """A box in the middle third of a wide image's frame lands where the crop puts it."""
    boxes = np.array([[[512.0, 256.0, 128.0, 512.0]]])   # x, y, w, h in the 1024 frame
    got = xray.box_masks(boxes, np.array([[64, 128]]), 64)[0].numpy()  # a 64x128 source: crop 32..96
    rows, cols = np.flatnonzero(got.any(1)), np.flatnonzero(got.any(0))
    assert (rows[0], rows[-1] + 1) == (16, 48)      # y 256..768 of 1024 -> 16..48 of 64
    assert (cols[0], cols[-1] + 1) == (32, 48)      # x 512..640 of 1024 -> 64..80 of 128, minus the crop's 32


def test_cache_gives_the_same_tensors_and_is_reused(tree, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(tree / "rsna_jpg", images)
    argv = ["--dataset", "rsna", "--rsna-dir", str(images), "--rsna-csv", str(tree / "rsna.csv")]
    plain = datasets.load(data_args(*argv, "--workers", "1"))  # decoded in a DataLoader worker
    cached = datasets.load(data_args(*argv, "--cache", str(tmp_path / "cache")))
    files = sorted(os.listdir(tmp_path / "cache"))
    pixels = np.load(tmp_path / "cache" / files[1], mmap_mode="r")
    assert files[1].startswith("rsna-224px-48-") and files[0] == files[1][:-4] + "-shapes.npy"
    assert pixels.dtype == np.float16 and pixels.shape == (48, 224, 224)  # one file for all four splits
    assert everything(plain["valid_id"]) is everything(cached["valid_id"]) is None  # no valid_id by default
    for name in ("train", "valid", "test"):
        (x0, y0, m0), (x1, y1, m1) = everything(plain[name]), everything(cached[name])
        assert torch.allclose(x0, x1, rtol=2 ** -10, atol=2 ** -14) and torch.equal(y0, y1) and torch.equal(m0, m1)
    shutil.rmtree(images)  # a second run reads the cache only
    again = datasets.load(data_args(*argv, "--cache", str(tmp_path / "cache")))
    assert sorted(os.listdir(tmp_path / "cache")) == files
    for name in ("train", "valid", "test"):
        assert all(torch.equal(a, b) for a, b in zip(everything(cached[name]), everything(again[name])))
    g = torch.Generator().manual_seed(0)  # shuffled batches still pair each image with its label and mask
    x, y, m = next(cached["train"].batches(4, g))
    positives = (m.flatten(1).amax(1) > 0)
    assert torch.equal(positives, y == 1)


def test_the_untrained_cache_keys_a_decoded_split_by_its_files_without_decoding_them(tree, tmp_path, monkeypatch):
    """saliency.py caches the untrained network's scores under a digest of the split: for images decoded from
    files, their names, sizes and times stand for the pixels, so the key costs no second pass over the images
    and still changes when a file does."""
    images = tmp_path / "images"
    shutil.copytree(tree / "rsna_jpg", images)
    argv = ["--dataset", "rsna", "--rsna-dir", str(images), "--rsna-csv", str(tree / "rsna.csv")]
    monkeypatch.setattr(xray, "read_image", lambda *a: pytest.fail("an image was decoded"))
    net = saliency.untrained_model(0)
    key = lambda split: saliency._untrained_key(net, split, "grad", 200, 8, "cpu")
    test = datasets.load(data_args(*argv))["test"]
    first = key(test)
    assert key(datasets.load(data_args(*argv))["test"]) == first
    assert key(datasets.load(data_args(*argv))["valid"]) != first
    os.utime(test.images.paths[test.rows[0]], ns=(0, 0))  # a file rewritten (here only its time changes)
    assert key(test) != first
    os.remove(test.images.paths[test.rows[0]])  # gone since the load: one line naming it, no OSError
    with pytest.raises(datasets.DataError, match="--skip-bad-images") as e:
        key(test)
    assert test.images.paths[test.rows[0]] in str(e.value) and len(str(e.value).splitlines()) == 1


def test_skip_bad_images_replaces_unreadable_files_and_says_so(tree, tmp_path, capsys):
    padchest = tmp_path / "padchest"
    shutil.copytree(tree / "padchest", padchest)
    argv = tree_argv(tree, "xray")
    argv[argv.index("--padchest-dir") + 1] = str(padchest)
    cohort = xray.xray_cohort(data_args(*argv))[2]
    victim = cohort.table["file"][cohort.table["source"] == "padchest"].iloc[0]
    path = next(padchest.rglob(victim))
    path.write_bytes(path.read_bytes()[:100])  # a truncated PNG, as in PadChest's known bad files
    with pytest.raises(datasets.DataError, match=f"cannot read .*{victim}.*--skip-bad-images"):
        datasets.load(data_args(*argv, "--cache", str(tmp_path / "cache")))
    with pytest.raises(datasets.DataError) as error:  # uncached, the first epoch meets it: still one line
        [everything(split) for split in datasets.load(data_args(*argv, "--workers", "1")).values()]
    assert str(error.value).startswith("cannot read") and "\n" not in str(error.value)
    splits = datasets.load(data_args(*argv, "--cache", str(tmp_path / "cache"), "--skip-bad-images"))
    assert victim in capsys.readouterr().err
    assert [len(s) for s in splits.values()] == [len(cohort.splits[s]) for s in cohorts.SPLITS]  # replaced
    assert (tmp_path / "cache" / "unreadable-xray.txt").read_text() == f"{victim}\n"
    recalled = xray.xray_cohort(data_args(*argv, "--cache", str(tmp_path / "cache"), "--skip-bad-images"))[2]
    assert victim not in recalled.table["file"].tolist()
    assert {s.n_bad_images for s in splits.values()} == {1} and recalled.n_bad_images == 1  # the run's row says so


def test_the_plans_cache_command_run_as_printed_builds_the_cache(tree, tmp_path, capsys):
    folders = ["--rsna-dir", str(tree / "rsna_dcm"), "--rsna-csv", str(tree / "rsna.csv")]
    assert datasets.cli(["--plan", "rsna", *folders, "--cache", str(tmp_path)]) == 0
    command = next(line for line in capsys.readouterr().out.splitlines() if "python datasets.py" in line)
    argv = shlex.split(command.replace("$SEED", "1"))
    assert argv[:2] == ["python", "datasets.py"] and datasets.cli(argv[2:]) == 0
    assert [f for f in os.listdir(tmp_path) if not f.endswith("-shapes.npy")][0].startswith("rsna-224px-48-")


def test_batches_are_pinned_only_when_asked(tree, tmp_path, monkeypatch):
    """pin_memory=True is for a CUDA run, which copies with non_blocking=True; a CPU run is left as it was."""
    argv = [*tree_argv(tree, "rsna"), "--image-size", "32"]
    cached = datasets.load(data_args(*argv, "--cache", str(tmp_path)))["valid"]
    decoded = datasets.load(data_args(*argv))["valid"]
    pinned, loaders = [], []  # no GPU here: record what would be pinned, and what the DataLoader is told
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda t: pinned.append(t) or t)
    loader = torch.utils.data.DataLoader
    monkeypatch.setattr(torch.utils.data, "DataLoader",
                        lambda *a, pin_memory, **kw: loaders.append(pin_memory) or loader(*a, **kw))
    for split in (cached, decoded):
        list(split.batches(4))
    assert pinned == [] and loaders == [False]
    batches = [t for batch in cached.batches(4, pin_memory=True) for t in batch]
    list(decoded.batches(4, pin_memory=True))
    assert len(pinned) == len(batches) and all(p is t for p, t in zip(pinned, batches)) and loaders == [False, True]


# ------------------------------------------------------------------ through train.py

def test_one_epoch_on_rsna_writes_a_final_row(tree, tmp_path):
    out, path = tmp_path / "run", tmp_path / "results.csv"
    code = train.cli([*tree_argv(tree, "rsna"), "--image-size", "16", "--epochs", "1", "--batch-size", "4",
                      "--results", str(path), "--out", str(out), "--method", "gradmask", "--no-probes",
                      "--score-size", "train"])  # saliency at 16 px too: the release's 224 costs a minute here
    assert code == 0
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    final = [r for r in rows if r["kind"] == "final"]
    assert len(final) == 1 and final[0]["status"] == "ok" and final[0]["dataset"] == "rsna"
    assert float(final[0]["ratio"]) == 0.9 and 0 <= float(final[0]["test_auc"]) <= 1
    assert (out / "best.pt").exists()
    # The release's RSNA protocol by default; no valid_id, so its columns are blank, not an error.
    assert final[0]["empty_mask"] == "penalize" and float(final[0]["valid_id_fraction"]) == 0
    assert all(r["valid_id_loss"] == r["valid_id_auc"] == "" and r["n_bad_images"] == "0" for r in rows)


def _missing_file_tree(tree, tmp_path):
    images = tmp_path / "rsna"
    shutil.copytree(tree / "rsna_jpg", images)
    gone = sorted(os.listdir(images))[0]
    os.remove(images / gone)
    return str(images), gone


@pytest.mark.parametrize("case", ["missing directory", "missing file", "no directory given"])
def test_missing_data_exits_2_with_one_line_and_leaves_the_csv_untouched(tree, tmp_path, capsys, case):
    argv = tree_argv(tree, "rsna")
    if case == "missing directory":
        argv[argv.index("--rsna-dir") + 1], expect = "/no/such/dir", ["--rsna-dir", "/no/such/dir", ".jpg"]
    elif case == "missing file":
        argv[argv.index("--rsna-dir") + 1], gone = _missing_file_tree(tree, tmp_path)
        expect = ["--rsna-dir", gone, ".jpg"]
    else:
        del argv[argv.index("--rsna-dir"):argv.index("--rsna-dir") + 2]
        expect = ["--rsna-dir", "RSNA_DIR"]
    path = tmp_path / "results.csv"
    results.append_row(str(path), {"kind": "final", "method": "baseline"})
    before = path.read_bytes()
    code = train.cli([*argv, "--image-size", "32", "--epochs", "1", "--results", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and all(e in err for e in expect), err
    assert path.read_bytes() == before


@pytest.mark.parametrize("module", [cohorts, xray], ids=["cohorts", "xray"])
def test_the_xray_modules_import_no_module_of_ours_that_imports_them(module):
    """datasets.py imports xray.py, which imports cohorts.py: the other way round would be a cycle, even inside a
    function. cohorts.py reads metadata only, so it needs nothing of ours but the error class."""
    syntax = ast.parse(open(module.__file__).read())
    imported = {a.name for node in ast.walk(syntax) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module for node in ast.walk(syntax) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"datasets", "train", "sweep", "saliency", "plots", "bench", "results", "standins"}
    if module is cohorts:
        assert not imported & {"xray", "torch"}


# ------------------------------------------------------------------ the release's defaults, per dataset

@pytest.mark.parametrize("dataset,size,fraction,empty", [("xray", 128, 0.0, "skip"), ("rsna", 224, 0.0, "penalize"),
                                                         ("synthetic", None, None, "skip")])
def test_train_fills_the_releases_defaults_per_dataset_and_a_flag_given_wins(dataset, size, fraction, empty):
    args = train.resolve(train.parse_args(["--dataset", dataset]))
    assert (args.image_size, args.valid_id_fraction, args.empty_mask) == (size, fraction, empty)
    given = train.resolve(train.parse_args(["--dataset", dataset, "--image-size", "64", "--empty-mask", "skip"]))
    assert (given.image_size, given.empty_mask) == (64, "skip")


def test_help_states_the_per_dataset_defaults(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: 128 on xray, 224 on rsna" in text and "Default: penalize on rsna" in text


@pytest.mark.parametrize("argv,expect", [
    (["--dataset", "synthetic", "--valid-id-fraction", "0.1"], "xray and rsna only"),
    (["--dataset", "rsna", "--valid-id-fraction", "1"], "outside [0, 1)"),
])
def test_a_valid_id_fraction_that_cannot_apply_is_a_one_line_error(capsys, argv, expect):
    assert datasets.cli([*argv, "--summary"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--valid-id-fraction" in err and expect in err


# ------------------------------------------------------------------ stand-ins: the real formats, not X-rays

STAND_INS = [("xray", "jpg"), ("rsna", "jpg"), ("rsna", "dcm")]


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """(dataset, ext) -> the data flags `datasets.py --stand-in` printed, for 20 images per cell."""
    flags = {}
    for dataset, ext in STAND_INS:
        root = tmp_path_factory.mktemp(f"stand-ins-{dataset}-{ext}")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert datasets.cli(["--stand-in", str(root), "--dataset", dataset, "--rsna-ext", ext,
                                 "--n-per-cell", "20"]) == 0
        command = shlex.split(out.getvalue().splitlines()[-1])
        assert command[:2] == ["python", "train.py"] and command[-2:] == ["--method", "baseline"]
        flags[dataset, ext] = command[2:-2]
    return flags


@pytest.mark.parametrize("dataset,ext", STAND_INS)
def test_stand_ins_load_through_the_real_loader_with_every_cell_in_every_split(stand_ins, dataset, ext):
    args = data_args(*stand_ins[dataset, ext], "--image-size", "16")
    cohort, splits = xray.xray_cohort(args)[2], datasets.load(args)
    assert cohort.n == 20 and cohort.pools.tolist() == [20] * 4  # the metadata subset lists exactly these
    for name, split in splits.items():
        assert len(split) == len(cohort.splits[name]) and torch.equal(
            split.y, torch.from_numpy(cohort.table["y"].to_numpy()[cohort.splits[name]]))
        assert (cells_of(cohort, name) > 0).all() == (name != "valid_id")  # no valid_id by default


@pytest.mark.parametrize("dataset,ext", STAND_INS)
def test_stand_ins_are_files_in_each_sources_real_format(stand_ins, dataset, ext):
    args = data_args(*stand_ins[dataset, ext])
    cohort = xray.xray_cohort(args)[2]
    paths, missing = xray.locate(args, cohort.table)
    assert not missing
    for path, source, sub in zip(paths, cohort.table["source"], cohort.table["subdir"]):
        if ext == "dcm":
            pixels = pydicom.dcmread(path).pixel_array
            assert pixels.dtype == np.uint8 and pixels.shape == (64, 64)
            continue
        with Image.open(path) as im:
            assert (im.format, im.mode) == {"nih": ("PNG", "L"), "padchest": ("PNG", "I;16"),
                                            "rsna": ("JPEG", "L")}[source]
        if source == "padchest":  # in its ImageDir folder, as the PadChest zips unpack
            assert os.path.basename(os.path.dirname(path)) == sub


@pytest.mark.parametrize("dataset,ext", STAND_INS)
def test_stand_ins_show_the_label_inside_the_mask_and_the_site_outside_it(stand_ins, dataset, ext):
    """Both signals a model could learn: the mean brightness inside the mask ranks every positive above
    every negative (RSNA negatives, which have no mask, by their whole image), and the top row, outside
    every mask, ranks every site-1 image above every site-0 one."""
    args = data_args(*stand_ins[dataset, ext], "--image-size", "16")
    cohort, splits = xray.xray_cohort(args)[2], datasets.load(args)
    x, y, mask = (torch.cat(t) for t in zip(*(everything(s) for s in splits.values() if len(s))))
    rows = np.concatenate([cohort.splits[name] for name, s in splits.items() if len(s)])
    inside = torch.where(mask.sum((1, 2, 3)) > 0, (x * mask).sum((1, 2, 3)) / mask.sum((1, 2, 3)).clamp(min=1),
                         x.mean((1, 2, 3)))
    assert auc(inside.numpy(), y.numpy()) == 1.0
    assert auc(x[:, 0, 0].mean(1).numpy(), cohort.table["site"].to_numpy()[rows]) == 1.0


def test_the_stand_ins_of_n_per_cell_are_the_first_ranked_images_of_the_seeds_cohort():
    args = data_args("--dataset", "rsna", "--data-seed", "4")
    cohort = cohorts.draw_cohort("rsna", cohorts.candidates(args), 0.9, seed=4)
    assert standins.stand_in_table(args, None)["file"].tolist() == cohort.table["file"].tolist()
    first = standins.stand_in_table(args, 20)
    assert set(first["file"]) < set(cohort.table["file"])
    assert np.bincount(2 * first["site"] + first["y"]).tolist() == [20] * 4


@pytest.mark.parametrize("argv,expect", [
    (["--dataset", "xray", "--n-per-cell", "19"], "pass at least 20"),
    (["--dataset", "xray", "--n-per-cell", "3", "--ratio", "0.5"], "pass at least 4"),
    (["--dataset", "synthetic"], "pass --dataset xray or rsna"),
    (["--dataset", "rsna", "real data"], "may hold real images"),
])
def test_stand_ins_refuse_what_they_cannot_write_in_one_line(tmp_path, capsys, argv, expect):
    if argv[-1] == "real data":  # a folder that already holds an rsna/ of its own, without our marker
        argv = argv[:-1]
        (tmp_path / "rsna").mkdir()
    assert datasets.cli(["--stand-in", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err, err
