"""The one results CSV every script shares: its columns and the only code that writes or reads it.

Rows are appended, never rewritten: ``append_row`` takes an exclusive lock,
writes the header only to a new file, writes the whole row in one ``write``
and flushes. A file whose header differs from ``COLUMNS`` is refused, so one
file never mixes two schemas. ``kind`` says what a row is: ``epoch`` (one per
training epoch), ``final`` (one per finished run: the selected epoch's
metrics), ``saliency`` (a saved run scored again by saliency.py), ``failed``
(a sweep trial that crashed without a final row, recorded by sweep.py), ``probe``
(the model as it is at one of train.py's probe epochs, measured like a final row).

It also says how a run's row describes the run (``config_columns``,
``environment``, ``git_commit``), so train.py and saliency.py both describe
runs the same way without importing each other.

    python results.py --upgrade FILE   # rewrite a file from an earlier version under today's columns
"""
import csv
import fcntl
import io
import os
import shlex
import subprocess
import sys
import tempfile

from errors import ArgumentParser, UsageError

COLUMNS = [
    "time", "run_id", "kind", "status", "sweep_id", "trial",
    # what was trained
    # (valid_id_fraction: X-ray's share of each training cell held out as valid_id; n_bad_images: the images
    # --skip-bad-images left out of an X-ray cohort)
    "dataset", "method", "seed", "data_seed", "ratio", "n_train", "n_eval", "image_size", "patient_split",
    "valid_id_fraction", "n_bad_images", "lr", "lam", "disc_lr", "disc_ratio", "mask_blur", "mask_fill",
    "batch_size", "epochs", "patience", "burn_in", "empty_mask", "precision",
    # per-epoch metrics (for kind=final: those of the selected epoch)
    "epoch", "train_loss", "train_ce", "train_penalty", "train_disc",
    "valid_loss", "valid_auc", "valid_acc", "valid_id_loss", "valid_id_auc", "valid_id_acc",
    "test_loss", "test_auc", "test_acc",
    "selected_epoch", "seconds",
    # saliency on the positive test images (kind=final and kind=saliency); score_size: the side of the test
    # images scored (X-ray: 224 whatever the training size, as the release scored); score_images: "all" (every
    # positive with a mask, the paper's text) or "release" (the first 25 of each site x label cell, the release's)
    "saliency", "iou", "iop", "iot", "n_scored", "n_empty_masks", "score_size", "score_images", "saliency_seconds",
    # what the IoU is worth: a random top-k map's expected IoU, and the same saliency through an
    # untrained network; "randomized": on cascading-randomisation rows, the deepest layer re-initialised
    # (every layer above it is re-initialised too)
    "iou_chance", "iou_untrained", "randomized",
    # where the same smoothed map's mass lies, before binarising (attribution.map_measures): the share outside
    # the mask, the share on the synthetic box, whether its maximum is inside the mask; all-zero maps left out
    "outside_mass", "box_mass", "pointing", "n_zero_maps",
    # does the model use the shortcut (diagnostics.py): the synthetic ground truth (box moved, removed, put
    # where training put it) and what the masks alone tell, without saliency (every dataset)
    "box_effect", "test_auc_nobox", "test_auc_train_rule", "test_auc_masked_input", "mask_effect",
    # where it ran (software, hardware, CPU threads, cuDNN's determinism) and where its files are;
    # "threads" because the number of CPU threads changes the order of floating-point sums, and with it a
    # run's numbers (one epoch of Masked, seed 1, ends at train loss 0.2775 on one thread, 0.2805 on two)
    "device", "threads", "gpu", "torch_version", "cuda_version", "deterministic", "git_commit", "run_dir",
]


class ResultsError(UsageError):
    """The results file cannot be used; callers report it as a one-line error (exit 2)."""


def _header_line():
    return ",".join(COLUMNS) + "\n"


def _header(path):
    """The file's header as a list of names ([] for a missing or empty file)."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return []
    try:
        with open(path, newline="") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsError(f"--results {path}: cannot read it as a CSV ({e}); pass another --results file")
    return first.rstrip("\r\n").split(",")


def _is_earlier_version(header):
    """An earlier version's header: today's columns with some left out, in today's order."""
    return set(header) < set(COLUMNS) and header == [c for c in COLUMNS if c in header]


def check_file(path, for_reading=False):
    """Refuse a results file that exists but is not ours (other header, not text).

    A file from an earlier version of COLUMNS can still be read (its missing
    columns read as blank) but not appended to: that would mix two schemas.
    """
    header = _header(path)
    if not header or header == COLUMNS or (for_reading and _is_earlier_version(header)):
        return
    if _is_earlier_version(header):
        raise ResultsError(f"--results {path}: written by an earlier version ({len(COLUMNS) - len(header)} "
                           f"columns fewer); upgrade it once with: python results.py --upgrade {path} "
                           f"(while nothing writes to it)")
    raise ResultsError(f"--results {path}: its header differs from this version's columns; "
                       f"pass a new --results file")


def format_row(row):
    """One CSV line for `row` (a dict; unknown keys are an error, missing ones are empty)."""
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise KeyError(f"not results columns: {sorted(unknown)}")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(["" if row.get(c) is None else row.get(c) for c in COLUMNS])
    return buf.getvalue()


def _move_torn_tail(f, path):
    """If the file does not end in a newline (a writer was killed mid-row), move that partial
    last line to `<path>.torn` and cut it off, with a warning: never silently dropped."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return
    f.seek(size - 1)
    if f.read(1) == b"\n":
        return
    f.seek(0)
    data = f.read()
    keep = data.rfind(b"\n") + 1
    with open(path + ".torn", "ab") as torn:
        torn.write(data[keep:] + b"\n")
    f.truncate(keep)
    print(f"warning: {path} ended in a partial row (a writer was killed mid-write); "
          f"moved it to {path}.torn", file=sys.stderr)


def lock(f, path, how=fcntl.LOCK_EX):
    """flock the open results file; a filesystem without locks is one clear error, not a traceback.

    Some network filesystems (NFS without a lock daemon, some Lustre mounts)
    refuse flock; appending there unlocked could interleave two runs' rows.
    """
    try:
        fcntl.flock(f, how)
    except OSError as e:
        raise ResultsError(f"--results {path}: its filesystem does not support file locks ({e.strerror}); "
                           f"keep the results file on a local disk, or pass --results on a filesystem "
                           f"with locks") from e


def append_row(path, row):
    """Append one row under an exclusive lock; write the header first if the file is new."""
    line = format_row(row).encode()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a+b") as f:
        lock(f, path)
        try:
            _move_torn_tail(f, path)
            if f.seek(0, os.SEEK_END) == 0:
                line = _header_line().encode() + line
            else:
                check_file(path)
            f.write(line)  # one write: a concurrent reader sees the whole row or none of it
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_rows(path, **where):
    """All rows (as dicts of strings) whose columns equal the given values, e.g. kind="final"."""
    check_file(path, for_reading=True)
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        lock(f, path, fcntl.LOCK_SH)
        text = f.read()
    if text and not text.endswith("\n"):  # a writer was killed mid-row; the next append moves it aside
        print(f"warning: ignoring the partial last row of {path}", file=sys.stderr)
        text = text[: text.rfind("\n") + 1]
    rows = [dict(dict.fromkeys(COLUMNS, ""), **r) for r in csv.DictReader(io.StringIO(text))]
    return [r for r in rows if all(r.get(k) == str(v) for k, v in where.items())]


def upgrade(path):
    """Rewrite an earlier version's file under today's COLUMNS (new columns blank); returns the row count.

    The rewrite goes to a temporary file that replaces the original in one
    rename, so a kill leaves either file whole. Appenders hold a lock on the
    old file, not on its name, hence: only while nothing writes to it.
    """
    if not os.path.isfile(path):
        raise ResultsError(f"--upgrade {path}: no such file; pass a results CSV")
    header = _header(path)
    if header == COLUMNS:
        return None
    if not _is_earlier_version(header):
        raise ResultsError(f"--upgrade {path}: its header is not an earlier version of this one's; "
                           f"nothing to upgrade")
    rows = read_rows(path)
    write_atomic(path, _header_line() + "".join(format_row(r) for r in rows))
    return len(rows)


def write_atomic(path, text):
    """Write text to path through a temporary file beside it and os.replace: a reader, or a crash, never
    leaves half a file (the upgraded CSV, a tables.md, a diagnosis.md)."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def drawn_by(script, argv=None):
    """The line a report drawn from results CSVs opens with: the command that drew it, so that a committed
    report says how to redraw it (tests/test_committed.py redraws each and compares)."""
    return f"Drawn by `{shlex.join(['python', script, *(sys.argv[1:] if argv is None else argv)])}`."


# ------------------------------------------------------------------ how a row describes its run

CONFIG = ("dataset", "method", "seed", "data_seed", "ratio", "n_train", "n_eval", "image_size", "patient_split",
          "valid_id_fraction", "lr", "lam", "disc_lr", "disc_ratio", "mask_blur", "mask_fill", "empty_mask",
          "batch_size", "epochs", "patience", "burn_in")


def config_columns(args):
    """The results columns that describe what was trained (X-ray-only settings blank on synthetic)."""
    row = {k: getattr(args, k, None) for k in CONFIG}
    if args.dataset == "synthetic":
        row.update(image_size=None, patient_split=None, valid_id_fraction=None)
    return row


def git_commit():
    """The code's commit, with "+dirty" when the code (*.py, requirements.txt) had uncommitted changes.

    Only code counts: a committed results CSV that runs append to must not mark every later run dirty.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=here, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "*.py",
                                "requirements.txt"], capture_output=True, text=True, cwd=here, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head + ("+dirty" if dirty else "")) if head else "unknown"


def environment(device, deterministic=None):
    """The results columns that say where a run ran: GPU name (or "cpu"), CPU threads, torch and CUDA versions,
    commit.

    `deterministic`: whether the run asked for deterministic kernels (default: cuDNN's current setting).
    """
    import torch  # here: reading and appending rows (plots.py, sweep.py) does not need torch

    device = torch.device(device)
    return {"device": str(device), "threads": torch.get_num_threads(),
            "torch_version": torch.__version__, "cuda_version": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "deterministic": torch.backends.cudnn.deterministic if deterministic is None else deterministic,
            "git_commit": git_commit()}


def cli(argv=None):
    p = ArgumentParser(prog="results.py", description="The shared results CSV.")
    p.add_argument("--upgrade", metavar="FILE", required=True,
                   help="rewrite FILE, written by an earlier version, under this version's columns")
    args = p.parse_args(argv)
    try:
        n = upgrade(args.upgrade)
    except (ResultsError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.upgrade}: " + ("already has this version's columns" if n is None else
                                 f"{n} rows rewritten under {len(COLUMNS)} columns"))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
