"""The one results CSV every script shares: its columns and the only code that writes or reads it.

Rows are appended, never rewritten: ``append_row`` takes an exclusive lock,
writes the header only to a new file, writes the whole row in one ``write``
and flushes. A file whose header differs from ``COLUMNS`` is refused, so one
file never mixes two schemas. ``kind`` says what a row is: ``epoch`` (one per
training epoch), ``final`` (one per finished run: the selected epoch's
metrics), ``saliency`` (a saved run scored again by saliency.py), ``failed``
(a sweep trial that crashed without a final row, recorded by sweep.py).
"""
import csv
import fcntl
import io
import os
import sys

COLUMNS = [
    "time", "run_id", "kind", "status", "sweep_id", "trial",
    # what was trained
    "dataset", "method", "seed", "data_seed", "ratio", "n_train", "n_eval", "image_size", "patient_split",
    "lr", "lam", "disc_lr", "disc_ratio", "mask_blur", "mask_fill",
    "batch_size", "epochs", "patience", "burn_in", "empty_mask", "precision",
    # per-epoch metrics (for kind=final: those of the selected epoch)
    "epoch", "train_loss", "train_ce", "train_penalty", "train_disc",
    "valid_loss", "valid_auc", "valid_acc", "valid_id_loss", "valid_id_auc", "valid_id_acc",
    "test_loss", "test_auc", "test_acc",
    "selected_epoch", "seconds",
    # saliency on the positive test images (kind=final and kind=saliency)
    "saliency", "iou", "iop", "iot", "n_scored", "n_empty_masks", "saliency_seconds",
    # where it ran (software, hardware, cuDNN's determinism) and where its files are
    "device", "gpu", "torch_version", "cuda_version", "deterministic", "git_commit", "run_dir",
]


class ResultsError(ValueError):
    """The results file cannot be used; callers report it as a one-line error (exit 2)."""


def _header_line():
    return ",".join(COLUMNS) + "\n"


def check_file(path):
    """Refuse a results file that exists but is not ours (other header, not text)."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return
    try:
        with open(path, newline="") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsError(f"--results {path}: cannot read it as a CSV ({e}); pass another --results file")
    if first != _header_line():
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


def append_row(path, row):
    """Append one row under an exclusive lock; write the header first if the file is new."""
    line = format_row(row).encode()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
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
    check_file(path)
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        fcntl.flock(f, fcntl.LOCK_SH)
        text = f.read()
    if text and not text.endswith("\n"):  # a writer was killed mid-row; the next append moves it aside
        print(f"warning: ignoring the partial last row of {path}", file=sys.stderr)
        text = text[: text.rfind("\n") + 1]
    rows = list(csv.DictReader(io.StringIO(text)))
    return [r for r in rows if all(r.get(k) == str(v) for k, v in where.items())]
