"""Stand-in chest X-ray files: the X-ray tables rehearsed end to end without the images.

    python datasets.py --stand-in DIR --dataset xray [--n-per-cell 20] [--data-seed 0] [--ratio 0.9]
    python datasets.py --stand-in DIR --dataset rsna [--n-per-cell 20] [--rsna-ext dcm]

These are NOT X-rays. They are small (64 px) synthetic images written in the
real files' formats and under their real names, for a cohort drawn from the
real metadata torchxrayvision ships: 8-bit PNGs for NIH, 16-bit PNGs in their
ImageDir folders for PadChest, JPEGs (or DICOMs, ``--rsna-ext dcm``) for RSNA.
Read through the real loader, they exercise every step a run on the real data
takes (metadata, cohort, files, decoding, crop and resize, masks, cache); what
a model learns from them says nothing about chest X-rays.

Each image is noise about a grey level, with two learnable signals: one tied
to the label inside the mask (a bright disc in the middle of the xray ellipse,
an enlarged heart; the RSNA positives' boxes lit up) and one tied to the site
outside it (a bright band along the top edge of every site-1 image, where no
mask reaches). A model can thus learn the task or the shortcut, as on the real data.

Without ``--n-per-cell``, the images are the whole cohort that ``--data-seed``
draws from the real metadata (11,104 for xray, 5,392 for rsna), and the loader
reads the shipped metadata as usual. With ``--n-per-cell N``, they are the
first N ranked candidates of each site x label cell, and DIR also gets the
subset of the metadata that lists them, so that every cohort drawn from it uses
exactly those images. The tool prints the data flags that read them.
"""
import os
import shlex
import types

import numpy as np
from PIL import Image

import cohorts
import xray
from errors import DataError

SIZE = 64                            # side of every stand-in image: small, so that writing and decoding are fast
LEVEL, SIGNAL, NOISE = 0.3, 0.3, 0.05  # grey level, signal amplitude and noise sd, as fractions of the white level
BAND = SIZE // 8                     # the site signal's rows at the top: outside the ellipse (its top is at 6.4)
MARKER = "STAND-INS.txt"             # in DIR: says what the files are, and that DIR may be written again


def smallest_n(ratios, valid_id_fraction):
    """The fewest images per cell with which every split of every ratio holds every cell (valid_id only when
    it is drawn): what --n-per-cell must reach for a rehearsal to have a figure panel per cell."""
    def fits(n):
        return all((q > 0).all() for r in ratios for name, q in cohorts.split_quotas(n, r, valid_id_fraction).items()
                   if name != "valid_id" or valid_id_fraction)
    return next(n for n in range(1, 10 ** 5) if fits(n))


def stand_in_table(args, n_per_cell):
    """The candidates to write: the cohort --data-seed draws (n_per_cell None), else the first n_per_cell
    ranked images of each cell, ranked as cohorts.draw_cohort ranks them."""
    pool = cohorts.candidates(args)
    if n_per_cell is None:
        return cohorts.draw_cohort(args.dataset, pool, 0.5, args.data_seed).table  # the same images at any ratio
    cell = (2 * pool["site"] + pool["y"]).to_numpy()
    sizes = np.bincount(cell, minlength=4)
    if n_per_cell > sizes.min():
        raise DataError(f"--n-per-cell {n_per_cell} is more than the cell {cohorts.CELLS[sizes.argmin()]} holds "
                        f"({sizes.min()}); pass at most {sizes.min()}, or leave it out for the whole cohort")
    rank = np.random.default_rng(args.data_seed).random(len(pool))
    order = np.lexsort((rank, cell))  # by cell, then by rank
    first = order[np.arange(len(order)) - np.searchsorted(cell[order], cell[order]) < n_per_cell]
    return pool.iloc[np.sort(first)].reset_index(drop=True)


def draw_pixels(dataset, table, size, rng):
    """(B, size, size) in [0, 1] for the table's images, and their masks (B, size, size) bool."""
    b = len(table)
    site, y = table["site"].to_numpy(), table["y"].to_numpy()
    cohort = types.SimpleNamespace(dataset=dataset, table=table.reset_index(drop=True))
    mask = xray.Masks(cohort, size)(np.arange(b), np.full((b, 2), size))[:, 0].numpy() > 0  # the loader's masks
    if dataset == "xray":  # the label's signal: a disc of radius size/5, well inside the ellipse
        r = np.hypot(*np.meshgrid(np.arange(size) - size // 2, np.arange(size) - size // 2))
        inside = np.broadcast_to(r < size / 5, mask.shape)
    else:                  # the label's signal: the boxes, which only positives have
        inside = mask
    top = np.zeros((size, size), bool)
    top[:BAND] = True
    x = LEVEL + NOISE * rng.standard_normal((b, size, size))
    x += SIGNAL * (inside & (y[:, None, None] == 1))
    x += SIGNAL * (top & ~mask & (site[:, None, None] == 1))
    return x.clip(0, 1), mask


def write_dicom(path, pixels):
    """An 8-bit MONOCHROME2 DICOM, as RSNA's stage_2_train_images are."""
    import pydicom  # only --rsna-ext dcm needs it; xray.check_args made sure it is installed
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_image(path, pixels, source):
    """One stand-in in its source's format: [0, 1] scaled to the source's white level."""
    white = cohorts.SOURCES[source].white
    values = np.round(pixels * white).astype(np.uint16 if white > 255 else np.uint8)
    if path.endswith(".dcm"):
        write_dicom(path, values)
    elif path.endswith(".jpg"):
        Image.fromarray(values).save(path, quality=95)
    else:
        Image.fromarray(values).save(path)  # PNG: mode L for uint8 (NIH), I;16 for uint16 (PadChest)


def check_target(root):
    """Refuse a DIR whose source folders exist without our marker: they may hold the real images."""
    if os.path.isfile(os.path.join(root, MARKER)):
        return
    taken = [s for s in cohorts.SOURCES if os.path.exists(os.path.join(root, s))]
    if taken:
        raise DataError(f"--stand-in {root}: {os.path.join(root, taken[0])} exists and {root} has no {MARKER}, so "
                        f"it may hold real images; pass a new or empty folder")


def write(args, root, n_per_cell=None):
    """Write the stand-ins of args.dataset under root; returns the data flags that read them."""
    if args.dataset not in cohorts.DATASET_SOURCES:
        raise DataError(f"--stand-in writes chest X-ray stand-ins; pass --dataset xray or rsna, not {args.dataset}")
    ratios = (0.9, 0.5) if args.ratio is None else (args.ratio,)  # unset: both of the paper's tables must work
    need = smallest_n(ratios, args.valid_id_fraction or 0.0)
    if n_per_cell is not None and n_per_cell < need:
        raise DataError(f"--n-per-cell {n_per_cell} leaves a site x label cell of some split empty at ratio "
                        f"{' and '.join(map(str, ratios))}; pass at least {need}")
    check_target(root)
    table = stand_in_table(args, n_per_cell)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, MARKER), "w") as f:
        f.write("Stand-ins written by `python datasets.py --stand-in`: synthetic images in the real formats and "
                "names, NOT X-rays.\n")
    rng = np.random.default_rng(args.data_seed)
    for start in range(0, len(table), 1024):  # the whole xray cohort at once would be 360 MB of float64
        chunk = table.iloc[start:start + 1024]
        pixels, _ = draw_pixels(args.dataset, chunk, SIZE, rng)
        for x, source, name, sub in zip(pixels, chunk["source"], chunk["file"], chunk["subdir"]):
            folder = os.path.join(root, source, sub)  # PadChest's ImageDir folders (the others' subdir is "")
            os.makedirs(folder, exist_ok=True)
            write_image(os.path.join(folder, name), x, source)  # one file per image: it is a file format

    flags = ["--dataset", args.dataset]
    sources = cohorts.DATASET_SOURCES[args.dataset]
    for source in sources:
        flags += [cohorts.SOURCES[source].dir_flag, os.path.join(root, source)]
    if args.dataset == "rsna" and args.rsna_ext != "jpg":
        flags += ["--rsna-ext", args.rsna_ext]
    if n_per_cell is None:  # the shipped metadata: only this --data-seed's cohort is there
        flags += ["--data-seed", str(args.data_seed)]
    else:                   # a subset of the metadata that lists exactly these images
        names = set(table["file"])
        ids = {name.rsplit(".", 1)[0] for name in names}  # RSNA's CSVs name an image by its patientId alone
        for meta in (meta for source in sources for meta in cohorts.SOURCES[source].metadata):
            rows = cohorts.read_csv(cohorts.metadata_path(args, meta.name), meta)
            path = os.path.join(root, f"{meta.name}.csv")
            rows[rows[meta.key].isin(names | ids)].to_csv(path, index=False)  # a key is a file name or an id
            flags += [meta.flag, path]
    if args.ratio is not None:
        flags += ["--ratio", str(args.ratio)]
    return flags, table


def report(flags, table, root):
    """What was written and the command that trains on it."""
    counts = np.bincount(2 * table["site"] + table["y"], minlength=4)
    return (f"wrote {len(table):,} stand-ins (synthetic {SIZE}-px images in the real formats and names, NOT X-rays; "
            f"{', '.join(f'{c} {k:,}' for c, k in zip(cohorts.CELLS, counts))}) under {root}\n"
            f"train on them with:\n  python train.py {shlex.join(flags)} --method baseline")
