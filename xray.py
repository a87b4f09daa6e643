"""The chest X-ray images: from a cohort's files to batches of (x, y, mask).

cohorts.py says which images a run uses and in which split; this module
finds their files (``--nih-dir``, ...), decodes and preprocesses them as
torchxrayvision does, builds their masks (a fixed centred ellipse on
``xray``, the pneumonia boxes on ``rsna``), caches them (``--cache``), and
says what to download (``python datasets.py --plan xray``). datasets.py
imports this module, never the other way round.
"""
import hashlib
import importlib.metadata
import importlib.util
import os
import shlex
import sys
import uuid

# scikit-image is imported inside the function that uses it: every train.py run imports this module (for its
# flags), and a synthetic run should not pay for it.
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

import cohorts
from errors import DataError  # bad data or a bad data location: one line naming the fix, exit 2

# The side of the network input: the release trained NIH + PadChest at its joint dataset's default 128 px
# (no config overrides it; the text's "244x244" is a typo) and RSNA at 224.
IMAGE_SIZE = {"xray": 128, "rsna": 224}
# Images without a mask (RSNA negatives): the release masked them as all outside (penalize); the ellipse
# leaves no xray image without one.
EMPTY_MASK = {"xray": "skip", "rsna": "penalize"}
RSNA_FRAME = 1024  # RSNA boxes are pixel coordinates of the released 1024x1024 images
CACHE_VERSION = "xray-cache-v1"  # bump when the preprocessing below changes


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
    white = cohorts.SOURCES[source].white
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
    s = cohorts.SOURCES[source]
    return getattr(args, s.dir_flag[2:].replace("-", "_")) or os.environ.get(s.env)


def _data_dir(args, source):
    s, root = cohorts.SOURCES[source], _dir_value(args, source)
    expected = s.layout.format(ext=args.rsna_ext)
    if not root:
        raise DataError(f"{s.dir_flag} is not set (nor {s.env}); point it at the folder holding {expected}")
    if not os.path.isdir(root):
        raise DataError(f"{s.dir_flag} {root}: no such directory; point it at the folder holding {expected}")
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
    s, root = cohorts.SOURCES[source], _dir_value(args, source)
    count, total = sum(src == source for src, _ in missing), (table["source"] == source).sum()
    return DataError(f"{s.dir_flag} {root}: missing {name} ({count} of the cohort's {total} {source} images missing); "
                     f"expected {s.layout.format(ext=args.rsna_ext)}"
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
    for flag, default in (("image_size", IMAGE_SIZE), ("valid_id_fraction", cohorts.VALID_ID_FRACTION)):
        if getattr(args, flag, None) is None:
            setattr(args, flag, default[args.dataset])
    return args


def xray_cohort(args):
    """The cohort args describe (from metadata only; honours the unreadable list kept in --cache)."""
    fill_defaults(args)
    ratio = cohorts.DEFAULT_RATIO[args.dataset] if args.ratio is None else args.ratio
    exclude = set()
    bad_list = _bad_list(args)
    if args.skip_bad_images and bad_list and os.path.isfile(bad_list):
        with open(bad_list) as f:
            exclude = {line.strip() for line in f if line.strip()}
        print(f"leaving out {len(exclude)} images recorded as unreadable in {bad_list}", file=sys.stderr)
    pool = cohorts.candidates(args)
    cohort = cohorts.draw_cohort(args.dataset, pool, ratio, args.data_seed, args.patient_split, exclude,
                                 args.valid_id_fraction)
    return pool, exclude, cohort


def load_xray(args):
    """The SPLITS (cohorts.py) of --dataset xray or rsna: from the --cache memmap when present, else the files.

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
        cohort = cohorts.draw_cohort(args.dataset, pool, cohort.ratio, args.data_seed, args.patient_split,
                                     exclude, cohort.valid_id_fraction)

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
    for source in cohorts.SOURCES.values():
        x.add_argument(source.dir_flag, default=None, help=f"folder of {source.layout} (default: ${source.env})")
    x.add_argument("--rsna-ext", choices=("jpg", "dcm"), default="jpg",
                   help="read the RSNA images as JPEG or DICOM (needs pydicom)")
    for meta in cohorts.METADATA.values():
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
    files, name = pool[pool["source"] == source], cohorts.SOURCES[source].unit_name
    units, counts = np.unique(cohorts.SOURCES[source].unit(files), return_counts=True)
    return {name.format(u): int(c) for u, c in zip(units, counts)}


def plan(args):
    """What to download for args.dataset, read from the metadata the cohort uses, and how to cache it."""
    fill_defaults(args)
    pool = cohorts.candidates(args)
    n = int(np.bincount(2 * pool["site"] + pool["y"], minlength=4).min())
    sources = pool["source"].unique()
    lines = [f"--dataset {args.dataset}: every --data-seed and --ratio draws from the same candidate pool of "
             f"{len(pool):,} images,",
             f"so the files below serve every run; one run uses {4 * n:,} of them (n = {n:,} per site x label cell)."]
    for source in sources:
        s = cohorts.SOURCES[source]
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
        command += [cohorts.SOURCES[source].dir_flag, q(given) if given else f"${cohorts.SOURCES[source].env}"]
    for meta in cohorts.METADATA.values():
        if getattr(args, f"{meta.name}_csv"):
            command += [meta.flag, q(getattr(args, f"{meta.name}_csv"))]
    for source in sources:
        command += cohorts.SOURCES[source].plan_flags
    if args.image_size != IMAGE_SIZE[args.dataset]:
        command += ["--image-size", str(args.image_size)]
    command += ["--cache", q(args.cache) if args.cache else "$CACHE_DIR", "--data-seed $SEED"]
    gigabytes = 4 * n * args.image_size ** 2 * 2 / 1e9
    lines += ["", "Once the files are there, build the cache of each --data-seed the runs use (train.py's --seed "
                  "unless set),",
              f"one float16 file of {gigabytes:.1f} GB per seed at {args.image_size} px, and give train.py the same "
              f"data flags:",
              "  " + " ".join(command)]
    lines += [cohorts.SOURCES[source].plan_note for source in sources if cohorts.SOURCES[source].plan_note]
    return "\n".join(lines)
