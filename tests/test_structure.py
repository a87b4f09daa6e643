"""The modules' imports form a tree: no module imports one that imports it back, not even inside a function; and
the Python files keep to one line length."""
import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = sorted(f[:-3] for f in os.listdir(REPO) if f.endswith(".py"))


def imports_of(module):
    """Our modules that `module` imports anywhere in its file (top level or deferred)."""
    with open(os.path.join(REPO, module + ".py")) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(MODULES) - {module}


def test_the_import_graph_of_our_modules_has_no_cycle():
    graph = {m: imports_of(m) for m in MODULES}
    state = {}  # module -> "visiting" | "done"

    def visit(m, path):
        assert state.get(m) != "visiting", f"import cycle: {' -> '.join(path + [m])}"
        if state.get(m) == "done":
            return
        state[m] = "visiting"
        for n in sorted(graph[m]):
            visit(n, path + [m])
        state[m] = "done"

    for m in MODULES:
        visit(m, [])
    assert "train" not in graph["saliency"] and "datasets" not in graph["xray"]


CHECKS = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "checks")) if f.endswith(".py") and f != "__init__.py")


def test_the_check_scripts_sit_above_the_library_and_run_as_modules_from_the_root():
    """checks/ imports the library, never the reverse, and each check is listed in the package's docstring and
    documented as `python -m checks.NAME` (run from the root: no sys.path edits, in the checks or the library)."""
    assert CHECKS and not any("checks" in imports_of(m) for m in MODULES)
    with open(os.path.join(REPO, "checks", "__init__.py")) as f:
        listing = ast.get_docstring(ast.parse(f.read()))
    for name in CHECKS:
        with open(os.path.join(REPO, "checks", name + ".py")) as f:
            tree = ast.parse(f.read())
        assert f"python -m checks.{name}" in ast.get_docstring(tree) and f"python -m checks.{name}" in listing
    for path in [os.path.join(REPO, m + ".py") for m in MODULES] + [os.path.join(REPO, "checks", c + ".py")
                                                                     for c in CHECKS]:
        with open(path) as f:
            assert "sys.path" not in f.read(), path


MAX_LINE = 120


def test_no_python_line_is_longer_than_120_characters():
    """One line length for the modules, checks and tests alike (CONTRIBUTING.md), so that a diff reads at one
    width."""
    paths = [os.path.join(folder, f) for folder in (REPO, os.path.join(REPO, "checks"), os.path.join(REPO, "tests"))
             for f in sorted(os.listdir(folder)) if f.endswith(".py")]
    long = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            long += [f"{os.path.relpath(path, REPO)}:{i}" for i, line in enumerate(f, 1)
                     if len(line.rstrip("\n")) > MAX_LINE]
    assert long == []
