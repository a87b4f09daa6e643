"""The committed results are what the code says they are.

Every ``tables.md`` under results/ opens with the plots.py command that drew it. Rerunning that command on the
committed CSV (and the committed saliency maps its rows point to) must give the same file, so a table can
never go stale behind a change to plots.py or a CSV that grew: redraw it and commit both together. The same
holds for the bf16 bridge's verdict.txt and its check, and the README's headline table names the tables.md it
comes from and must show that file's numbers.
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


def test_the_committed_tables_are_found():  # else the test below would pass over none
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


def cells(text):
    """The rows of the markdown tables in `text`, each a list of cells (the |---| lines left out)."""
    return [[c.strip() for c in l.strip().strip("|").split("|")] for l in text.splitlines()
            if l.startswith("|") and not l.startswith("|---")]


def table(markdown, heading):
    """(header, rows) of the table under the first '## ' heading that starts with `heading`."""
    section = re.split(r"\n## ", markdown)
    lines = cells(next(s for s in section if s.startswith(heading)))
    return lines[0], lines[1:]


def mean(cell):
    """'**0.94 ± 0.06 (n=10)**' -> '0.94'; '–' stays."""
    return cell.strip("*").split(" ")[0]


def test_the_readme_headline_shows_the_means_of_the_committed_table_it_names():
    with open(os.path.join(REPO, "README.md")) as f:
        headline = f.read().split("\n## The headline", 1)[1].split("\n## ", 1)[0]
    source = re.search(r"\]\((results/[\w./-]+/tables\.md)\)", headline).group(1)
    with open(os.path.join(REPO, source)) as f:
        tables = f.read()
    lines = cells(headline)
    methods, shown = lines[0][1:], {l[0]: l[1:] for l in lines[1:]}
    assert methods and set(shown) == {"ours", "paper"}

    header, rows = table(tables, "synthetic\n")
    ours = {r[1]: (mean(r[header.index("ratio 1.0 AUC")]), mean(r[header.index("ratio 1.0 IoU")])) for r in rows}
    header, rows = table(tables, "synthetic ratio 1.0: compared with the paper's per-seed results")
    paper, method = {}, None
    for r in rows:
        method = r[0] or method
        paper[method, r[1]] = mean(r[header.index("paper")])
    for m, cell in zip(methods, shown["ours"], strict=True):
        assert cell == " / ".join(ours[m]), (source, m)
    for m, cell in zip(methods, shown["paper"], strict=True):
        assert cell == f"{paper[m, 'test AUC']} / {paper[m, 'IoU, grad']}", (source, m)


def test_the_committed_bf16_verdict_is_what_its_check_prints_from_the_committed_files(capsys, monkeypatch):
    """results/synthetic-bf16-bridge/verdict.txt, the output REPRODUCTION.md's bf16 decision quotes."""
    from checks import bf16_bridge
    monkeypatch.chdir(REPO)
    assert bf16_bridge.main(["results/synthetic-bf16-bridge/results.csv", "results/synthetic/results.csv"]) == 0
    with open(os.path.join(REPO, "results", "synthetic-bf16-bridge", "verdict.txt")) as f:
        assert capsys.readouterr().out == f.read()
