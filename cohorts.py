"""The chest X-ray cohorts: which images a run uses, and in which split, read from metadata alone.

The paper's Section 4.3 (Tables 1 and 2): two sources of images, "sites",
whose identity is correlated with the label in training and anti-correlated
in validation and test. ``xray`` (site-pathology correlation): NIH
ChestX-ray8 (site 0) and PadChest (site 1), cardiomegaly vs healthy.
``rsna`` (view-pathology correlation): RSNA Pneumonia PA (site 0) and AP
(site 1) views, with the pneumonia boxes.

A cohort is drawn from the metadata CSVs torchxrayvision ships, so
``python datasets.py --dataset xray --summary`` needs no image. Each source
is described once here (`SOURCES`): its metadata, and what xray.py needs to
know about its files and its download. xray.py reads a cohort's images;
datasets.py describes the splits.
"""
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

# pandas is imported inside the functions that use it: every train.py run imports this module (through
# xray.py, for its flags), and a synthetic run should not pay for it.
import numpy as np

from errors import DataError  # bad metadata or a bad metadata location: one line naming the fix, exit 2

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
DATASET_SOURCES = {"xray": ("nih", "padchest"), "rsna": ("rsna",)}  # the SOURCES (below) each dataset draws from


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


def metadata_path(args, name):
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


def read_csv(path, meta):
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
    df = read_csv(metadata_path(args, "nih"), NIH_CSV)
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
    df = read_csv(metadata_path(args, "padchest"), PADCHEST_CSV)
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
    labels_path, views_path, ext = metadata_path(args, "rsna"), metadata_path(args, "rsna_views"), args.rsna_ext
    rows = read_csv(labels_path, RSNA_CSV)
    views = read_csv(views_path, RSNA_VIEWS_CSV)
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
    table: object         # a pandas.DataFrame: source, file, subdir, patient, site, y, boxes
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
