"""The modules' imports form a tree: no module imports one that imports it back, not even inside a function."""
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
