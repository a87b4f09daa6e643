"""The committed results are what the code says they are.

Every ``tables.md`` under results/ opens with the plots.py command that drew it. Rerunning that command on the
committed CSV (and the committed saliency maps its rows point to) must give the same file, so a table can
never go stale behind a change to plots.py or a CSV that grew: redraw it and commit both together.
"""
import glob
import os
import re
import shlex

import matplotlib.pyplot as plt
import pytest

import figures
import plots

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "results", "**", "tables.md"),
                                                                 recursive=True))


def drawn_by(path):
    """The plots.py arguments on the first line of a tables.md."""
    with open(os.path.join(REPO, path)) as f:
        first = f.readline().rstrip("\n")
    found = re.fullmatch(r"Drawn by `python plots\.py (.*)`\.", first)
    assert found, f"{path} does not open with the command that drew it; redraw it with plots.py"
    return shlex.split(found.group(1))


def with_out(argv, out):
    """argv with its --out replaced by `out`."""
    argv = list(argv)
    argv[argv.index("--out") + 1] = out
    return argv


def body(path):
    with open(path) as f:
        return f.read().split("\n", 1)[1]  # everything after the command, which names its --out


def test_results_hold_committed_tables():
    assert "results/synthetic/tables.md" in COMMITTED and len(COMMITTED) >= 5


@pytest.mark.parametrize("path", COMMITTED)
def test_a_committed_table_is_what_its_command_draws_from_the_committed_files(path, tmp_path, monkeypatch):
    argv = drawn_by(path)
    assert "--out" in argv and os.path.normpath(argv[argv.index("--out") + 1]) == os.path.dirname(path), \
        f"{path}: its command draws into another folder"
    monkeypatch.chdir(REPO)  # the command's paths, and the run_dir column, are relative to the repository
    monkeypatch.setattr(figures, "save", lambda fig, out, name, written: plt.close(fig))  # tables only: faster
    assert plots.cli(with_out(argv, str(tmp_path))) == 0
    assert body(tmp_path / "tables.md") == body(os.path.join(REPO, path)), \
        f"{path} is stale: redraw it with the command on its first line"
    tex = os.path.join(REPO, os.path.dirname(path), "tables.tex")
    if "--latex" in argv:
        assert body(tmp_path / "tables.tex") == body(tex), f"{tex} is stale"
