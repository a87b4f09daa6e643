"""The chest X-ray tasks: cohorts drawn from metadata, and the loaders of their images.

The paper's Section 4.3 (Tables 1 and 2): two sources of images, "sites",
whose identity is correlated with the label in training and anti-correlated
in validation and test. ``xray`` (site-pathology correlation): NIH
ChestX-ray8 (site 0) and PadChest (site 1), cardiomegaly vs healthy, masked
by a fixed centred ellipse. ``rsna`` (view-pathology correlation): RSNA
Pneumonia PA (site 0) and AP (site 1) views, masked by the pneumonia boxes.

A cohort is drawn from the metadata CSVs torchxrayvision ships, so
``python datasets.py --dataset xray --summary`` needs no image, and
``python datasets.py --plan xray`` says which files to download. Its splits
are the ones datasets.py describes; datasets.py imports this module, never
the other way round, so the error class both raise lives here.
"""
import hashlib
import importlib.metadata
import importlib.util
import os
import shlex
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

# pandas and scikit-image are imported inside the functions that use them: every train.py run
# imports this module (for its flags), and a synthetic run should not pay ~1 s for them.
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from errors import DataError  # bad data or a bad data location: one line naming the fix, exit 2

# Cells are ordered [site 0 negative, site 0 positive, site 1 negative, site 1 positive].
SITES = {"xray": ("NIH", "PadChest"), "rsna": ("PA", "AP")}
DEFAULT_RATIO = {"xray": 0.9, "rsna": 0.9}  # the paper's tables; 0.5 is its "No SPC"/"No VPC" control
TASKS = {"xray": "cardiomegaly (1) vs healthy (0)", "rsna": "pneumonia (1) vs no pneumonia (0)"}
CELLS = ("site0 neg", "site0 pos", "site1 neg", "site1 pos")
SPLITS = ("train", "valid_id", "valid", "test")  # also the order in which a cell's ranked images are dealt
# Defaults where the paper's text is silent or a typo, and so the authors' released code decides (datasets.py
# and train.py fill unset flags from these). valid_id, the in-distribution validation split, is a share of each
# training cell held out of training (--valid-id-fraction). 0, as released: training has the paper's sizes and
# there is no valid_id, since the NIH cardiomegaly cell is used whole and leaves no image to draw one from.
VALID_ID_FRACTION = {"xray": 0.0, "rsna": 0.0}
# The side of the network input: the release trained NIH + PadChest at its joint dataset's default 128 px
# (no config overrides it; the text's "244x244" is a typo) and RSNA at 224.
IMAGE_SIZE = {"xray": 128, "rsna": 224}
# Images without a mask (RSNA negatives): the release masked them as all outside (penalize); the ellipse
# leaves no xray image without one.
EMPTY_MASK = {"xray": "skip", "rsna": "penalize"}
DATASET_SOURCES = {"xray": ("nih", "padchest"), "rsna": ("rsna",)}  # the SOURCES (below) each dataset draws from
RSNA_FRAME = 1024  # RSNA boxes are pixel coordinates of the released 1024x1024 images
CACHE_VERSION = "xray-cache-v1"  # bump when the preprocessing below changes


# ------------------------------------------------------------ sources

@dataclass(frozen=True)
class Metadata:
    """A metadata CSV: the copy torchxrayvision ships, which --<name>-csv overrides, and what is read of it."""
    name: str       # "nih", ..., "rsna_views": the flag is --nih-csv, ..., --rsna-views-csv
    shipped: str    # the file in torchxrayvision's data/ folder
    columns: tuple  # the columns the reader uses (and --stand-in --n-per-cell writes)
    key: str        # the column naming an image: its file name, or (RSNA) the file name without the extension
    help: str

    @property
    def flag(self):
        return "--" + self.name.replace("_", "-") + "-csv"


@dataclass(frozen=True)
class Source:
    """One source of chest X-ray images, described once: its metadata, its folder and files, its pixels,
    and where to download it."""
    read: Callable      # args -> its candidate images (source, file, subdir, patient, site, y, boxes)
    metadata: tuple     # the Metadata CSVs `read` reads
    white: int          # torchxrayvision's white level: the pixels run 0..white (255: 8-bit, 65535: 16-bit)
    dir_flag: str       # the flag naming its folder, by default the environment variable `env`
    env: str
    layout: str         # what that folder holds, in --help, errors and --plan ({ext}: --rsna-ext)
    title: str          # --plan: its name, official page, the step that gives access and the download
    page: str
    access: str
    download: str       # public figures, approximate
    units: str          # what `unit` counts
    unit: Callable      # its candidates (a DataFrame) -> the number of the download unit holding each
    unit_name: str      # a unit's name from its number
    plan_flags: tuple = ()  # the flags that read its official download as it comes
    plan_note: str = ""     # the plan's last word on its files


NIH_CSV = Metadata("nih", "Data_Entry_2017_v2020.csv.gz", ("Image Index", "Finding Labels", "Patient ID"),
                   "Image Index",
                   "another release of NIH's Data_Entry_2017 (default: torchxrayvision's v2020 copy)")
PADCHEST_CSV = Metadata("padchest", "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz",
                        ("ImageID", "ImageDir", "PatientID", "ViewPosition_DICOM", "Labels"), "ImageID",
                        "PadChest labels CSV (default: torchxrayvision's copy)")
RSNA_CSV = Metadata("rsna", "kaggle_stage_2_train_labels.csv.zip",
                    ("patientId", "x", "y", "width", "height", "Target"), "patientId",
                    "RSNA stage 2 train labels, one row per box (default: torchxrayvision's copy)")
RSNA_VIEWS_CSV = Metadata("rsna_views", "kaggle_stage_2_train_images_dicom_headers.csv.gz",
                          ("PatientID", "ViewPosition"), "PatientID",
                          "RSNA DICOM headers with PatientID, ViewPosition (default: torchxrayvision's copy)")


def _metadata(args, name):
    """The path of the metadata CSV `name` (a Metadata's): its --*-csv override, else the copy torchxrayvision
    ships."""
    meta = METADATA[name]
    override = getattr(args, f"{name}_csv", None)
    if override:
        return override
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None:
        raise DataError(f"{meta.flag} is not set and torchxrayvision (which ships "
                        f"{meta.shipped}) is not installed; pip install -r requirements.txt")
    return os.path.join(list(spec.submodule_search_locations)[0], "data", meta.shipped)


def _read_csv(path, meta):
    """The columns of the Metadata `meta` from the CSV at path."""
    import pandas as pd
    flag, columns = meta.flag, meta.columns
    if not os.path.isfile(path):
        raise DataError(f"{flag} {path}: no such file; pass the metadata CSV (or leave {flag} unset to use "
                        f"torchxrayvision's copy)")
    df = pd.read_csv(path, usecols=lambda c: c in columns, low_memory=False)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{flag} {path}: missing the column(s) {', '.join(missing)}")
    return df


def _labels_of(series, sep):
    """Each row's set of labels: 'A|B' (NIH) or "['a', ' b']" (PadChest), stripped; NaN -> empty."""
    if sep == "|":
        return series.fillna("").map(lambda s: {t.strip() for t in s.split("|")})
    return series.fillna("[]").map(lambda s: {t.strip(" '\"") for t in s.strip("[]").split(",")})


def read_nih(args):
    """NIH ChestX-ray8, every view: positive = 'Cardiomegaly' among the findings, healthy = 'No Finding'."""
    import pandas as pd
    df = _read_csv(_metadata(args, "nih"), NIH_CSV)
    labels = _labels_of(df["Finding Labels"], "|")
    pos = labels.map(lambda s: "Cardiomegaly" in s).to_numpy(bool)
    neg = labels.map(lambda s: s == {"No Finding"}).to_numpy(bool)
    keep = pos | neg
    return pd.DataFrame({"source": "nih", "file": df["Image Index"].to_numpy()[keep], "subdir": "",
                         "patient": "nih:" + df["Patient ID"].astype(str).to_numpy()[keep],
                         "site": 0, "y": pos[keep].astype(np.int64), "boxes": None})


def read_padchest(args):
    """PadChest PA images (ViewPosition_DICOM contains POSTEROANTERIOR): positive = 'cardiomegaly' among
    the labels, healthy = the label 'normal' itself (not 'abnormal foreign body'); both -> positive."""
    import pandas as pd
    df = _read_csv(_metadata(args, "padchest"), PADCHEST_CSV)
    df = df[df["ViewPosition_DICOM"].fillna("").str.contains("POSTEROANTERIOR", regex=False)]
    labels = _labels_of(df["Labels"], ",")
    pos = labels.map(lambda s: "cardiomegaly" in s).to_numpy(bool)
    neg = labels.map(lambda s: "normal" in s).to_numpy(bool) & ~pos
    keep = pos | neg
    return pd.DataFrame({"source": "padchest", "file": df["ImageID"].to_numpy()[keep],
                         "subdir": df["ImageDir"].astype(str).to_numpy()[keep],
                         "patient": "padchest:" + df["PatientID"].astype(str).to_numpy()[keep],
                         "site": 1, "y": pos[keep].astype(np.int64), "boxes": None})


def read_rsna(args):
    """RSNA Pneumonia (one row per box in the labels CSV) joined with the DICOM headers' ViewPosition; the
    images are <patientId>.<--rsna-ext>."""
    import pandas as pd
    labels_path, views_path, ext = _metadata(args, "rsna"), _metadata(args, "rsna_views"), args.rsna_ext
    rows = _read_csv(labels_path, RSNA_CSV)
    views = _read_csv(views_path, RSNA_VIEWS_CSV)
    image = rows.groupby("patientId", sort=False)["Target"].max()
    view = views.drop_duplicates("PatientID").set_index("PatientID")["ViewPosition"].reindex(image.index)
    if view.isna().any():
        raise DataError(f"--rsna-views-csv {views_path}: no ViewPosition for {view.isna().sum()} images of "
                        f"--rsna-csv, e.g. {view.index[view.isna()][0]}")
    boxed = rows.dropna(subset=["x"]).sort_values("patientId", kind="stable")  # each image's boxes in file order
    ids, first = np.unique(boxed["patientId"].to_numpy(), return_index=True)
    boxes = dict(zip(ids, np.split(boxed[["x", "y", "width", "height"]].to_numpy(np.float64), first[1:])))
    keep = view.isin(["PA", "AP"]).to_numpy()
    ids = image.index.to_numpy()[keep]
    return pd.DataFrame({"source": "rsna", "file": [f"{pid}.{ext}" for pid in ids], "subdir": "",
                         "patient": "rsna:" + ids,  # RSNA's patientId names one image: no patient linkage
                         "site": (view.to_numpy()[keep] == "AP").astype(np.int64),
                         "y": image.to_numpy()[keep].astype(np.int64),
                         "boxes": [boxes.get(pid) for pid in ids]})


# NIH publishes only its archives' links. Its images are in name order across them, and these are the last
# names of images_001 ... images_011 as public loaders map them; they cut the shipped Data_Entry's 112,120
# names into 4,999 + 10 x 10,000 + 7,121 (a test checks it), so images_012 holds the rest.
NIH_ARCHIVE_LAST = ("00001335_006.png", "00003923_013.png", "00006585_006.png", "00009232_003.png",
                    "00011558_007.png", "00013774_025.png", "00016051_009.png", "00018387_034.png",
                    "00020945_049.png", "00024717_000.png", "00028173_002.png")

SOURCES = {
    "nih": Source(
        read=read_nih, metadata=(NIH_CSV,), white=255, dir_flag="--nih-dir", env="NIH_DIR",
        layout="the ChestX-ray8 PNGs named by Data_Entry_2017's 'Image Index' (00000001_000.png, ...), "
               "flat or in images_NNN/images/",
        title="NIH ChestX-ray8", page="https://nihcc.app.box.com/v/ChestXray-NIHCC", access="none, a public download",
        download="~42 GB: 12 archives images_001.tar.gz ... images_012.tar.gz, 112,120 PNGs",
        units="archives (by file name, as public loaders map them; NIH lists only the archives' links)",
        unit=lambda files: np.searchsorted(NIH_ARCHIVE_LAST, files["file"].to_numpy(str)) + 1,
        unit_name="images_{:03d}.tar.gz"),
    "padchest": Source(
        read=read_padchest, metadata=(PADCHEST_CSV,), white=65535, dir_flag="--padchest-dir", env="PADCHEST_DIR",
        layout="the PadChest PNGs named by the CSV's ImageID, flat or in their ImageDir subfolders",
        title="PadChest", page="https://bimcv.cipf.es/bimcv-projects/padchest/",
        access="the registration form on that page, and accepting the dataset's research licence (its terms)",
        download="~1 TB: one zip per ImageDir folder, ~160,000 PNGs", units="ImageDir zips (the CSV's ImageDir column)",
        unit=lambda files: files["subdir"].astype(int).to_numpy(), unit_name="ImageDir {}",
        plan_note="A few PadChest PNGs are truncated: add --skip-bad-images here and to every run to leave them out."),
    "rsna": Source(
        read=read_rsna, metadata=(RSNA_CSV, RSNA_VIEWS_CSV), white=255, dir_flag="--rsna-dir", env="RSNA_DIR",
        layout="the RSNA Pneumonia images <patientId>.{ext} (stage_2_train_images)",
        title="RSNA Pneumonia", page="https://www.kaggle.com/c/rsna-pneumonia-detection-challenge",
        access="a Kaggle account, and accepting the competition's rules on its page",
        download="~3.7 GB: 26,684 DICOMs in stage_2_train_images/", units="folder (of the cohort's patientIds)",
        unit=lambda files: np.zeros(len(files), int), unit_name="stage_2_train_images/",
        plan_flags=("--rsna-ext dcm",)),  # Kaggle's files are the DICOMs, not torchxrayvision's JPEGs
}
METADATA = {meta.name: meta for source in SOURCES.values() for meta in source.metadata}


def candidates(args):
    """Every image the dataset may draw from, with its site, label and (RSNA) boxes."""
    import pandas as pd
    pool = pd.concat([SOURCES[name].read(args) for name in DATASET_SOURCES[args.dataset]], ignore_index=True)
    if pool["file"].duplicated().any():
        raise DataError(f"--dataset {args.dataset}: the metadata lists {pool['file'].duplicated().sum()} "
                        f"images twice, e.g. {pool['file'][pool['file'].duplicated()].iloc[0]}; fix the CSV")
    return pool


# ------------------------------------------------------------ cohorts

def split_quotas(n, ratio, valid_id_fraction=0.0):
    """Images per cell and split: train and valid_id follow the site-label correlation, valid/test reverse it.

    The paper's training quota of a cell, floor(n x ratio) or floor(n x (1 - ratio)),
    is split into train and valid_id = floor(valid_id_fraction x that quota); valid
    takes floor(n x (1 - ratio) / 2) or floor(n x ratio / 2), test the rest. These
    are the released code's quotas, in exact rational arithmetic where the release
    multiplied floats: the two differ only where n x 0.1 is a whole number (n = 10,
    20, ...: the float is one short), not at the n of any cohort in the paper.
    """
    r = Fraction(ratio).limit_denominator(10 ** 6)
    f = Fraction(valid_id_fraction).limit_denominator(10 ** 6)
    major, minor = int(n * r), int(n * (1 - r))
    v_major, v_minor = int(n * r / 2), int(n * (1 - r) / 2)
    paper_train = np.array([major, minor, minor, major])
    valid_id = paper_train * f.numerator // f.denominator
    valid = np.array([v_minor, v_major, v_major, v_minor])
    return {"train": paper_train - valid_id, "valid_id": valid_id, "valid": valid, "test": n - paper_train - valid}


def _assign_by_patient(patients, cells, quotas, rng):
    """Split index (into SPLITS) per image such that no patient spans two splits.

    Patients with the most images are placed first, each into a split chosen at
    random with weight = its room left in the patient's cells; the single-image
    patients that come last then fill the train, valid_id and valid quotas
    exactly (test takes whatever remains, so it absorbs any overflow).
    """
    uniq, inv = np.unique(patients, return_inverse=True)
    need = np.zeros((len(uniq), 4), np.int64)
    np.add.at(need, (inv, cells), 1)
    order = np.lexsort((rng.random(len(uniq)), -need.sum(1)))
    room = np.stack([quotas[s] for s in SPLITS]).astype(np.int64)  # (splits, cells)
    test = SPLITS.index("test")
    choice = np.empty(len(uniq), np.int64)
    for p in order:  # cohort building, once per run: a few thousand patients
        used = need[p] > 0
        fits = (room >= need[p]).all(1)
        weight = np.where(fits, room[:, used].min(1), 0).astype(float)
        s = rng.choice(len(SPLITS), p=weight / weight.sum()) if weight.sum() > 0 else test
        room[s] -= need[p]
        choice[p] = s
    return choice[inv]


@dataclass
class Cohort:
    """The images a run uses: one table row per image, and each split's sorted row numbers."""
    dataset: str
    table: "pandas.DataFrame"   # source, file, subdir, patient, site, y, boxes
    splits: dict          # split name -> sorted np.ndarray of table rows
    n: int                # images per cell
    pools: np.ndarray     # (4,) candidates per cell
    ratio: float
    patient_split: bool
    valid_id_fraction: float = 0.0
    n_bad_images: int = 0  # excluded (missing or unreadable) images the draw passed over: what they cost it

    def cells(self):
        return (2 * self.table["site"] + self.table["y"]).to_numpy()


def draw_cohort(dataset, pool, ratio, seed, patient_split=False, exclude=(), valid_id_fraction=0.0):
    """Subsample every cell to n = the smallest cell, then deal the cells out to the SPLITS.

    Every candidate gets a random rank from `seed` before `exclude` (unreadable
    files) is applied, so leaving a file out only brings in the next-ranked one.
    By image, a cell's ranks go to train, valid_id, valid, test in turn: valid_id
    (`valid_id_fraction` of the paper's training quota, none by default) is the
    tail of the paper's training range, so train is a subset of the paper's
    training images and valid and test are the paper's, for the same seed.
    seed None means 0, as for the synthetic data: never a fresh random draw, which
    would give xray_cohort and load_xray two different cohorts for the same args.
    """
    rng = np.random.default_rng(0 if seed is None else seed)
    rank = rng.random(len(pool))
    cell = (2 * pool["site"] + pool["y"]).to_numpy()
    usable = ~pool["file"].isin(set(exclude)).to_numpy()
    pools = np.bincount(cell[usable], minlength=4)
    n = int(pools.min())
    if n == 0:
        raise DataError(f"--dataset {dataset}: the cell {CELLS[pools.argmin()]} has no images; check the metadata")
    quotas = split_quotas(n, ratio, valid_id_fraction)
    chosen = [np.flatnonzero(usable & (cell == c)) for c in range(4)]
    chosen = [idx[np.argsort(rank[idx], kind="stable")[:n]] for idx in chosen]  # random n, in rank order
    # What --skip-bad-images cost: the excluded images ranked ahead of the last one drawn from their cell
    # (all of a cell's when the cell is used whole). Read from the ranks, not from the exclude list, which
    # also names other seeds' files: the same count whether this load found the files or a list recalled them.
    left_out = ~usable & (cell[None, :] == np.arange(4)[:, None])  # (4, candidates)
    whole = np.array([len(idx) == p for idx, p in zip(chosen, pools)])
    last = np.array([rank[idx[-1]] for idx in chosen])
    n_bad = int((left_out & (whole[:, None] | (rank[None, :] < last[:, None]))).sum())
    rows = np.sort(np.concatenate(chosen))
    if patient_split:
        split_of = _assign_by_patient(pool["patient"].to_numpy()[rows], cell[rows], quotas, rng)
    else:
        split_of = np.empty(len(rows), np.int64)
        for c, idx in enumerate(chosen):  # the first quota-many ranked images go to train, then valid_id, ...
            bounds = np.cumsum([quotas[s][c] for s in SPLITS[:-1]])
            split_of[np.searchsorted(rows, idx)] = np.searchsorted(bounds, np.arange(n), side="right")
    table = pool.iloc[rows].reset_index(drop=True)
    splits = {name: np.flatnonzero(split_of == k) for k, name in enumerate(SPLITS)}
    return Cohort(dataset, table, splits, n, pools, ratio, patient_split, valid_id_fraction, n_bad)


def summary(cohort):
    """A table of the cohort: n, images per cell and split, balance, patients shared between splits."""
    import pandas as pd
    site0, site1 = SITES[cohort.dataset]
    cell = cohort.cells()
    lines = [f"dataset {cohort.dataset}: site 0 = {site0}, site 1 = {site1}; label = {TASKS[cohort.dataset]}",
             f"ratio {cohort.ratio:g}; split by {'patient' if cohort.patient_split else 'image'}",
             "candidates per cell (site0 neg, site0 pos, site1 neg, site1 pos): " + " ".join(map(str, cohort.pools)),
             f"n = {cohort.n} per cell ({4 * cohort.n} images); " + (
                 f"valid_id = {cohort.valid_id_fraction:.0%} of the paper's training images of each cell, held "
                 f"out of train" if cohort.valid_id_fraction else
                 "no valid_id (--valid-id-fraction 0): train has the paper's sizes; pass e.g. 0.1 to hold out an "
                 "in-distribution split, at that cost to train"),
             f"{'':8}" + "".join(f"{c:>11}" for c in CELLS) + f"{'total':>8}{'neg/pos':>12}{'site0/1':>12}"]
    for name in SPLITS:
        c = np.bincount(cell[cohort.splits[name]], minlength=4)
        lines.append(f"{name:8}" + "".join(f"{v:>11}" for v in c) + f"{c.sum():>8}"
                     f"{f'{c[0] + c[2]}/{c[1] + c[3]}':>12}{f'{c[0] + c[1]}/{c[2] + c[3]}':>12}")
    split_of = np.empty(len(cohort.table), np.int64)
    for k, name in enumerate(SPLITS):
        split_of[cohort.splits[name]] = k
    per_patient = pd.Series(split_of).groupby(cohort.table["patient"].to_numpy()).nunique()
    lines.append(f"patients in more than one split: {(per_patient > 1).sum()} of {len(per_patient)}")
    if cohort.n_bad_images:
        lines.append(f"left out as missing or unreadable (--skip-bad-images): {cohort.n_bad_images}")
    return "\n".join(lines)


# ------------------------------------------------------------ images

def read_image(path, source):
    """One file -> (H, W) float32 scaled as torchxrayvision does: [0, maxval] -> [-1024, 1024]."""
    try:
        if path.endswith(".dcm"):
            import pydicom  # only the RSNA DICOMs need it; check_args made sure it is installed
            img = pydicom.dcmread(path).pixel_array
        else:
            with Image.open(path) as im:
                img = np.asarray(im)
    except Exception as e:  # decoders raise OSError, SyntaxError, ValueError... on broken files
        detail = " ".join(f"{type(e).__name__}: {e}".split())
        raise DataError(f"cannot read {path} ({detail}); pass --skip-bad-images to leave unreadable images "
                        f"out of the cohort")
    if img.ndim == 3:  # a few NIH PNGs are RGB(A); torchxrayvision keeps the first channel
        img = img[..., 0]
    white = SOURCES[source].white
    if img.max() > white:
        raise DataError(f"{path}: pixel value {img.max()} above {white}, the {source} white level")
    return (2 * (img.astype(np.float32) / white) - 1.0) * 1024


def centre_crop(h, w):
    """torchxrayvision's centre crop of an (h, w) image to a square: (top, left, side); vectorised."""
    side = np.minimum(h, w)
    return h // 2 - side // 2, w // 2 - side // 2, side


def preprocess(img, size):
    """(H, W) normalised image -> (size, size) float32: centre crop, then torchxrayvision's resize."""
    import skimage.transform
    top, left, side = centre_crop(*img.shape)
    img = img[top:top + side, left:left + side]
    return skimage.transform.resize(img, (size, size), mode="constant", preserve_range=True).astype(np.float32)


def ellipse_mask(size):
    """The xray 'mask': the centred ellipse (radii size/2.5) the authors used, a prior, not an annotation."""
    r = (np.arange(size) - size // 2) / (size / 2.5)
    return r[:, None] ** 2 + r[None, :] ** 2 < 1


def box_masks(boxes, shapes, size):
    """Union of each image's boxes after the image's crop and resize.  -> (B, size, size) bool

    boxes (B, K, 4): x, y, width, height in the RSNA 1024x1024 frame (NaN = no
    box), shapes (B, 2): the source images' (H, W); every output pixel a box
    touches is in the mask.
    """
    h, w = shapes[:, 0, None].astype(np.float64), shapes[:, 1, None].astype(np.float64)
    top, left, side = centre_crop(shapes[:, 0, None], shapes[:, 1, None])
    scale = size / side

    def span(start, length, extent, offset):  # frame coordinates -> [first, last) output pixel
        lo = np.floor(((start * extent / RSNA_FRAME) - offset) * scale)
        hi = np.ceil((((start + length) * extent / RSNA_FRAME) - offset) * scale)
        lo, hi = np.nan_to_num(lo).clip(0, size), np.nan_to_num(hi).clip(0, size)
        pix = np.arange(size)
        return torch.from_numpy((pix >= lo[..., None]) & (pix < hi[..., None])).float()  # (B, K, size)

    rows = span(boxes[..., 1], boxes[..., 3], h, top)
    cols = span(boxes[..., 0], boxes[..., 2], w, left)
    return torch.bmm(rows.transpose(1, 2), cols) > 0


class Masks:
    """The masks of a cohort's images, built for a batch at a time from their rows (and source shapes)."""

    def __init__(self, cohort, size):
        self.size = size
        self.ellipse = torch.from_numpy(ellipse_mask(size)).float() if cohort.dataset == "xray" else None
        if cohort.dataset == "rsna":
            k = max([len(b) for b in cohort.table["boxes"] if b is not None] + [1])
            self.boxes = np.full((len(cohort.table), k, 4), np.nan)
            for i, b in enumerate(cohort.table["boxes"]):
                if b is not None:
                    self.boxes[i, :len(b)] = b

    def __call__(self, rows, shapes):
        """rows (B,), shapes (B, 2) -> (B, 1, size, size) float32 in {0, 1}."""
        if self.ellipse is not None:
            return self.ellipse.repeat(len(rows), 1, 1, 1)
        return box_masks(self.boxes[rows], shapes, self.size).unsqueeze(1).float()


class CohortImages(torch.utils.data.Dataset):
    """Item i = cohort image i decoded and preprocessed: (x (1, S, S), y, mask (1, S, S), source shape)."""

    def __init__(self, paths, cohort, masks, size):
        self.paths, self.sources = paths, cohort.table["source"].to_numpy()
        self.y = torch.tensor(cohort.table["y"].to_numpy(np.int64))
        self.site = torch.tensor(cohort.table["site"].to_numpy(np.int64))  # saliency.py's release subset reads it
        self.masks, self.size = masks, size

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        img = read_image(self.paths[i], self.sources[i])
        shape = np.array(img.shape)
        x = torch.from_numpy(preprocess(img, self.size)).unsqueeze(0)
        return x, self.y[i], self.masks(np.array([i]), shape[None])[0], torch.from_numpy(shape)


def _clean_errors(batches):
    """Re-raise a DataError from a DataLoader worker as its own one-line message."""
    try:
        yield from batches
    except DataError as e:
        raise DataError(str(e).strip().splitlines()[-1].split("DataError: ", 1)[-1]) from None


def _version(package):
    """An installed package's version, or "none"."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "none"


class ImageSplit:
    """A split decoded from the image files every epoch by a DataLoader (the uncached path)."""

    def __init__(self, images, rows, workers=0):
        self.images, self.rows, self.workers = images, rows, workers
        self.y, self.site = images.y[rows], images.site[rows]  # (N,) each, in batch order

    def __len__(self):
        return len(self.rows)

    def fingerprint(self):
        """Bytes that change whenever a batch would, read without decoding an image: each row's file (path,
        size, modification time), source, label and boxes, the image size, this file's code and the versions
        of the libraries that decode and resize. A digest of the batches themselves (saliency.py's untrained
        cache) would decode every image once more."""
        im = self.images
        versions = " ".join(_version(lib) for lib in ("pillow", "scikit-image", "pydicom"))
        with open(__file__, "rb") as f:
            parts = [f.read(), f"{im.size} {versions}".encode()]
        for r in self.rows:
            try:
                st = os.stat(im.paths[r])
            except OSError as e:
                raise DataError(f"{im.paths[r]}: {e.strerror} (it was there when the cohort was loaded); restore "
                                f"the file, or rerun with --skip-bad-images to leave it out") from None
            parts.append(f"{im.paths[r]} {st.st_size} {st.st_mtime_ns} {im.sources[r]} {int(im.y[r])}".encode())
        if im.masks.ellipse is None:
            parts.append(im.masks.boxes[self.rows].tobytes())
        return b"\n".join(parts)

    def batches(self, batch_size, generator=None, pin_memory=False):
        """(x, y, mask) batches, shuffled when a generator is given; pinned by the loader's own thread."""
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(self.images, self.rows), batch_size=batch_size,
            shuffle=generator is not None, generator=generator, num_workers=self.workers, pin_memory=pin_memory)
        for x, y, mask, _ in _clean_errors(loader):
            yield x, y, mask


class CachedSplit:
    """A split read from the cohort's preprocessed (N, S, S) float16 memmap: one sorted fancy index per batch."""

    def __init__(self, pixels, shapes, rows, y, masks, site=None):
        self.pixels, self.shapes, self.rows, self.masks = pixels, shapes, rows, masks
        self.y = y[rows]
        self.site = None if site is None else site[rows]  # (N,), in batch order: saliency.py's release subset

    def __len__(self):
        return len(self.rows)

    def batches(self, batch_size, generator=None, pin_memory=False):
        """(x, y, mask) batches, shuffled when a generator is given."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        for start in range(0, n, batch_size):
            pos = np.sort(order[start:start + batch_size].numpy())  # rows are sorted: sorted reads
            rows = self.rows[pos]
            x = torch.from_numpy(self.pixels[rows]).float().unsqueeze(1)  # (B, 1, S, S)
            y, mask = self.y[pos], self.masks(rows, self.shapes[rows])
            if pin_memory:
                x, y, mask = x.pin_memory(), y.pin_memory(), mask.pin_memory()
            yield x, y, mask


# ------------------------------------------------------------ files and cache

def _dir_value(args, source):
    """The folder given for a source: its flag, else its environment variable; None when neither is set."""
    flag, env = SOURCES[source].dir_flag, SOURCES[source].env
    return getattr(args, flag[2:].replace("-", "_")) or os.environ.get(env)


def _data_dir(args, source):
    flag, env = SOURCES[source].dir_flag, SOURCES[source].env
    root = _dir_value(args, source)
    expected = SOURCES[source].layout.format(ext=args.rsna_ext)
    if not root:
        raise DataError(f"{flag} is not set (nor {env}); point it at the folder holding {expected}")
    if not os.path.isdir(root):
        raise DataError(f"{flag} {root}: no such directory; point it at the folder holding {expected}")
    return root


def _index_tree(root, depth=2):
    """File name -> path for the files at most `depth` folders below root (not a whole disk by mistake)."""
    index = {}
    for folder, subfolders, files in os.walk(root):
        if os.path.relpath(folder, root).count(os.sep) + 1 >= depth:
            subfolders.clear()
        index.update((f, os.path.join(folder, f)) for f in files)
    return index


def locate(args, table):
    """Full paths of the table's images, plus the names that are missing.

    Tries <dir>/<file> and <dir>/<subdir>/<file>; only if some are missing is
    the directory tree indexed once (e.g. NIH's images_001/images/ layout).
    """
    paths, missing = [], []
    roots = {s: _data_dir(args, s) for s in table["source"].unique()}
    index = {}
    for source, name, sub in zip(table["source"], table["file"], table["subdir"]):
        root = roots[source]
        found = next((p for p in (os.path.join(root, name), os.path.join(root, sub, name)) if os.path.isfile(p)),
                     None)
        if found is None:
            if root not in index:
                index[root] = _index_tree(root)
            found = index[root].get(name)
        paths.append(found)
        if found is None:
            missing.append((source, name))
    return paths, missing


def _missing_error(args, table, missing):
    source, name = missing[0]
    flag, root = SOURCES[source].dir_flag, _dir_value(args, source)
    count, total = sum(s == source for s, _ in missing), (table["source"] == source).sum()
    return DataError(f"{flag} {root}: missing {name} ({count} of the cohort's {total} {source} images missing); "
                     f"expected {SOURCES[source].layout.format(ext=args.rsna_ext)}"
                     + ("; or pass --skip-bad-images to leave them out" if count < total else ""))


def find_unreadable(paths, sources, workers):
    """The file names (among `paths`) whose image cannot be decoded, checked in DataLoader workers."""
    class Check(torch.utils.data.Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            try:
                read_image(paths[i], sources[i])
                return ""
            except DataError:
                return os.path.basename(paths[i])
    loader = torch.utils.data.DataLoader(Check(), batch_size=64, num_workers=workers, collate_fn=list)
    return [name for batch in tqdm(loader, desc="checking images", leave=False, disable=None)
            for name in batch if name]


def cache_path(cohort, root, size):
    """<root>/<dataset>-<size>px-<N>-<hash of the file list and preprocessing>.npy"""
    h = hashlib.sha256(f"{CACHE_VERSION} {size}\n".encode())
    for source, name in zip(cohort.table["source"], cohort.table["file"]):
        h.update(f"{source}/{name}\n".encode())
    return os.path.join(root, f"{cohort.dataset}-{size}px-{len(cohort.table)}-{h.hexdigest()[:16]}.npy")


def _shapes_path(path):
    return path[:-len(".npy")] + "-shapes.npy"


def build_cache(images, path, workers):
    """Decode every cohort image once into an (N, S, S) float16 .npy (+ the source shapes), atomically."""
    tmp = f"{path}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    pixels = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(images), images.size, images.size))
    shapes = np.zeros((len(images), 2), np.int64)
    loader = torch.utils.data.DataLoader(images, batch_size=32, num_workers=workers)
    try:
        start = 0
        for x, _, _, shape in _clean_errors(tqdm(loader, desc="caching images", leave=False, disable=None)):
            pixels[start:start + len(x)] = x[:, 0].numpy().astype(np.float16)
            shapes[start:start + len(x)] = shape.numpy()
            start += len(x)
        pixels.flush()
        del pixels
        np.save(tmp + ".shapes.npy", shapes)
        os.replace(tmp + ".shapes.npy", _shapes_path(path))  # the pixels file last: its presence = complete
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, tmp + ".shapes.npy"):
            if os.path.exists(leftover):
                os.remove(leftover)


def _bad_list(args):
    return os.path.join(args.cache, f"unreadable-{args.dataset}.txt") if args.cache else None


def fill_defaults(args):
    """Set the X-ray flags left unset (None, or absent from an older run's config) to args.dataset's
    defaults, in place; returns args."""
    for flag, default in (("image_size", IMAGE_SIZE), ("valid_id_fraction", VALID_ID_FRACTION)):
        if getattr(args, flag, None) is None:
            setattr(args, flag, default[args.dataset])
    return args


def xray_cohort(args):
    """The cohort args describe (from metadata only; honours the unreadable list kept in --cache)."""
    fill_defaults(args)
    ratio = DEFAULT_RATIO[args.dataset] if args.ratio is None else args.ratio
    exclude = set()
    bad_list = _bad_list(args)
    if args.skip_bad_images and bad_list and os.path.isfile(bad_list):
        with open(bad_list) as f:
            exclude = {line.strip() for line in f if line.strip()}
        print(f"leaving out {len(exclude)} images recorded as unreadable in {bad_list}", file=sys.stderr)
    pool = candidates(args)
    return pool, exclude, draw_cohort(args.dataset, pool, ratio, args.data_seed, args.patient_split, exclude,
                                      args.valid_id_fraction)


def load_xray(args):
    """The SPLITS of --dataset xray or rsna: from the --cache memmap when present, else the files.

    Each split also carries `n_bad_images`, the images --skip-bad-images left out of the cohort, which
    train.py records in the run's rows."""
    pool, exclude, cohort = xray_cohort(args)
    size, cuda = args.image_size, str(getattr(args, "device", "cpu")).startswith("cuda")
    workers = args.workers if args.workers is not None else (min(8, os.cpu_count() or 1) if cuda else 0)
    cached = None
    if args.cache:
        try:
            os.makedirs(args.cache, exist_ok=True)
        except OSError as e:
            raise DataError(f"--cache {args.cache}: cannot create it ({e.strerror}); pass a writable directory")
    checked = set()
    while True:  # only loops when --skip-bad-images leaves files out and the cohort is redrawn
        cached = cache_path(cohort, args.cache, size) if args.cache else None
        if cached and os.path.isfile(cached) and os.path.isfile(_shapes_path(cached)):
            break  # a cache hit: every image in it was decoded before, none is read now
        paths, missing = locate(args, cohort.table)
        bad = [name for _, name in missing]
        if missing and not args.skip_bad_images:
            raise _missing_error(args, cohort.table, missing)
        if args.skip_bad_images:
            todo = [(p, s) for p, s in zip(paths, cohort.table["source"]) if p is not None and p not in checked]
            bad += find_unreadable([p for p, _ in todo], [s for _, s in todo], workers)
            checked.update(p for p, _ in todo)
        if not bad:
            break
        print(f"--skip-bad-images: leaving out {len(bad)} missing or unreadable images: "
              f"{', '.join(sorted(bad)[:5])}{' ...' if len(bad) > 5 else ''}", file=sys.stderr)
        exclude |= set(bad)
        if args.cache:  # remembered, so later runs draw the same cohort without checking every file again
            with open(_bad_list(args), "a") as f:
                f.write("".join(f"{name}\n" for name in sorted(bad)))
        cohort = draw_cohort(args.dataset, pool, cohort.ratio, args.data_seed, args.patient_split, exclude,
                             cohort.valid_id_fraction)

    masks = Masks(cohort, size)
    sizes = ", ".join(f"{name} {len(rows)}" for name, rows in cohort.splits.items())
    if cached:
        if not os.path.isfile(cached):
            build_cache(CohortImages(paths, cohort, masks, size), cached, workers)
        y = torch.tensor(cohort.table["y"].to_numpy(np.int64))
        pixels, shapes = np.load(cached, mmap_mode="r"), np.load(_shapes_path(cached))
        if pixels.shape != (len(cohort.table), size, size) or len(shapes) != len(cohort.table):
            raise DataError(f"--cache {cached}: holds {pixels.shape}, expected {(len(cohort.table), size, size)}; "
                            f"delete the file to rebuild it")
        print(f"{args.dataset}: n = {cohort.n} per cell; {sizes}; cache {cached}", flush=True)
        site = torch.tensor(cohort.table["site"].to_numpy(np.int64))
        splits = {name: CachedSplit(pixels, shapes, rows, y, masks, site) for name, rows in cohort.splits.items()}
    else:
        images = CohortImages(paths, cohort, masks, size)
        print(f"{args.dataset}: n = {cohort.n} per cell; {sizes}; decoding images ({workers} workers)", flush=True)
        splits = {name: ImageSplit(images, rows, workers) for name, rows in cohort.splits.items()}
    for split in splits.values():
        split.n_bad_images = cohort.n_bad_images
    return splits



# ------------------------------------------------------------ flags

def add_arguments(parser):
    """The chest X-ray flags; datasets.add_arguments adds them after the flags every dataset shares."""
    x = parser.add_argument_group("chest X-rays (--dataset xray: NIH + PadChest; --dataset rsna: RSNA Pneumonia)")
    for source in SOURCES.values():
        x.add_argument(source.dir_flag, default=None, help=f"folder of {source.layout} (default: ${source.env})")
    x.add_argument("--rsna-ext", choices=("jpg", "dcm"), default="jpg",
                   help="read the RSNA images as JPEG or DICOM (needs pydicom)")
    for meta in METADATA.values():
        x.add_argument(meta.flag, default=None, help=meta.help)
    x.add_argument("--image-size", type=int, default=None,
                   help="side of the square network input (default: " + ", ".join(
                       f"{size} on {name}" for name, size in IMAGE_SIZE.items()) + ", as the authors' code trained)")
    x.add_argument("--valid-id-fraction", type=float, default=None, metavar="F",
                   help="share of each training cell held out of training as the in-distribution valid_id split "
                        "(default 0, as released: train has the paper's sizes, and the valid_id selection rule's "
                        "column is blank; the synthetic task draws its own 128-image valid_id instead)")
    x.add_argument("--patient-split", action="store_true",
                   help="no patient in two splits (default: split by image, as the paper did)")
    x.add_argument("--skip-bad-images", action="store_true",
                   help="leave missing or unreadable images out of the cohort (reported) instead of failing")
    x.add_argument("--cache", default=None, metavar="DIR",
                   help="preprocess the cohort once into DIR/<dataset>-<size>px-<N>-<hash>.npy (float16 "
                        "memmap) and read batches from it")
    x.add_argument("--workers", type=int, default=None,
                   help="DataLoader workers decoding images (default 0 on CPU, up to 8 on CUDA)")


def check_args(args):
    """Reject bad X-ray flags with a DataError naming the flag and the fix."""
    fill_defaults(args)
    if args.image_size < 8:
        raise DataError(f"--image-size {args.image_size} is too small; pass at least 8 (the authors used "
                        f"{IMAGE_SIZE[args.dataset]} on {args.dataset})")
    if not 0 <= args.valid_id_fraction < 1:
        raise DataError(f"--valid-id-fraction {args.valid_id_fraction} is outside [0, 1); pass a share such as "
                        f"0.1, or 0 for no valid_id (the paper's training sizes)")
    if args.workers is not None and args.workers < 0:
        raise DataError(f"--workers {args.workers} is negative; pass 0 (decode in the main process) or more")
    if args.dataset == "rsna" and args.rsna_ext == "dcm" and importlib.util.find_spec("pydicom") is None:
        raise DataError("--rsna-ext dcm needs pydicom, which is not installed; pip install pydicom "
                        "(or read the JPEGs: --rsna-ext jpg)")


# ------------------------------------------------------------ what to download

def download_units(pool, source):
    """{archive, ImageDir zip or folder: how many of the pool's images from `source` it holds}, in order."""
    files, name = pool[pool["source"] == source], SOURCES[source].unit_name
    return {name.format(u): int(c) for u, c in zip(*np.unique(SOURCES[source].unit(files), return_counts=True))}


def plan(args):
    """What to download for args.dataset, read from the metadata the cohort uses, and how to cache it."""
    fill_defaults(args)
    pool = candidates(args)
    n = int(np.bincount(2 * pool["site"] + pool["y"], minlength=4).min())
    sources = pool["source"].unique()
    lines = [f"--dataset {args.dataset}: every --data-seed and --ratio draws from the same candidate pool of "
             f"{len(pool):,} images,",
             f"so the files below serve every run; one run uses {4 * n:,} of them (n = {n:,} per site x label cell)."]
    for source in sources:
        s = SOURCES[source]
        y = pool["y"][pool["source"] == source]
        units = download_units(pool, source)
        entries = [f"{where}: {count:,}" for where, count in units.items()]
        width = max(map(len, entries)) + 3
        per_line = max(1, 90 // width)
        lines += ["", f"{s.title}: {len(y):,} candidate images, {(y == 0).sum():,} negative and "
                      f"{(y == 1).sum():,} positive",
                  f"  page      {s.page}", f"  access    {s.access}",
                  f"  download  {s.download} (public figures, approximate)",
                  f"  needed    {len(units)} {s.units}; candidate images:"]
        lines += ["    " + "".join(e.ljust(width) for e in entries[i:i + per_line]).rstrip()
                  for i in range(0, len(entries), per_line)]
        lines += [f"  folder    {s.dir_flag} (or ${s.env}), holding", f"    {s.layout.format(ext='dcm')}"]
    q = shlex.quote  # the folders given; the $NAMEs left for the shell to fill in
    command = ["python datasets.py --dataset", args.dataset]
    for source in sources:
        given = _dir_value(args, source)
        command += [SOURCES[source].dir_flag, q(given) if given else f"${SOURCES[source].env}"]
    for meta in METADATA.values():
        if getattr(args, f"{meta.name}_csv"):
            command += [meta.flag, q(getattr(args, f"{meta.name}_csv"))]
    for source in sources:
        command += SOURCES[source].plan_flags
    if args.image_size != IMAGE_SIZE[args.dataset]:
        command += ["--image-size", str(args.image_size)]
    command += ["--cache", q(args.cache) if args.cache else "$CACHE_DIR", "--data-seed $SEED"]
    gigabytes = 4 * n * args.image_size ** 2 * 2 / 1e9
    lines += ["", "Once the files are there, build the cache of each --data-seed the runs use (train.py's --seed "
                  "unless set),",
              f"one float16 file of {gigabytes:.1f} GB per seed at {args.image_size} px, and give train.py the same "
              f"data flags:",
              "  " + " ".join(command)]
    lines += [SOURCES[source].plan_note for source in sources if SOURCES[source].plan_note]
    return "\n".join(lines)
