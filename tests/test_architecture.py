"""The layout's rules, checked on the source: no import cycle, imports go one way, small modules.

Layers, lowest first (a module may import from its own layer or lower ones only)::

    soundnet < interp.corpus < interp.run < interp.recording < interp.analysis < interp.report
             < interp.studies < interp (the package's __init__), interp.cli, interp.__main__

``dashboard`` reads and displays: it may import ``soundnet`` and ``interp`` up to
``interp.report``, never the studies or the command line (which may start the dashboard). ``soundnet`` imports nothing of
``interp`` or ``dashboard``. Every import counts, at module level or inside a function.
See ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("soundnet", "interp", "dashboard")
MAX_LINES = 800

LAYERS = (
    "soundnet",
    "interp.corpus",
    "interp.run",
    "interp.recording",
    "interp.analysis",
    "interp.report",
    "interp.studies",
    "interp.top",
)


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The first-party modules that ``name`` imports (``from pkg import mod`` resolves to the module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    # imports under `if TYPE_CHECKING:` run only for the type checker: not edges of the graph
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in MODULES:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(name: str) -> str | None:
    if name.startswith("dashboard"):
        return None
    if name in ("interp", "interp.cli", "interp.__main__"):
        return "interp.top"
    for layer in LAYERS:
        if name == layer or name.startswith(layer + "."):
            return layer
    raise AssertionError(f"{name} belongs to no layer: place it in one of {LAYERS}")


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (``[a, b, ..., a]``), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for name in sorted(graph):
        if name not in state and (found := visit(name)):
            return found
    return None


def _where(name: str) -> str:
    return str(MODULES[name].relative_to(REPO)) if name in MODULES else name


def _against_the_flow(graph: dict[str, set[str]]) -> list[str]:
    """Every import of ``graph`` from a higher layer (and of the dashboard, the studies or the CLI
    by the dashboard), one line each, naming the file."""
    bad = []
    for name, deps in sorted(graph.items()):
        layer = _layer(name)
        for dep in sorted(deps):
            dep_layer = _layer(dep)
            if layer is None:  # dashboard
                if dep_layer in ("interp.studies", "interp.top"):
                    bad.append(f"{_where(name)}: the dashboard imports {dep}")
            elif dep_layer is None and name == "interp.cli":
                pass  # the command line starts the dashboard: both are front ends
            elif dep_layer is None:
                bad.append(f"{_where(name)}: imports the dashboard ({dep})")
            elif LAYERS.index(dep_layer) > LAYERS.index(layer):
                bad.append(f"{_where(name)}: {layer} imports {dep} from the higher layer {dep_layer}")
    return bad


def test_no_import_cycle():
    cycle = _find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(f"{m} ({_where(m)})" for m in cycle)


def test_imports_go_one_way():
    bad = _against_the_flow(GRAPH)
    assert not bad, "imports against the data flow:\n" + "\n".join(bad)


def test_no_module_over_800_lines():
    big = [
        f"{p.relative_to(REPO)}: {n} lines"
        for p in MODULES.values()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    ]
    assert not big, f"modules over {MAX_LINES} lines (split them by responsibility):\n" + "\n".join(big)


def test_the_checks_see_a_violation():
    """The graph is read right (known edges, module- and function-level), and planted faults are caught."""
    assert "interp.run.store" in GRAPH["interp.recording.pipeline"]
    assert "soundnet.weights" in GRAPH["soundnet.model"]
    assert "interp.analysis.selectivity" in GRAPH["interp.cli"]  # imported inside a function
    assert "interp.analysis.selectivity" in GRAPH["interp.analysis.ablation"]
    # a planted back-edge closes a cycle and goes against the flow
    planted = {k: set(v) for k, v in GRAPH.items()}
    planted["interp.analysis.selectivity"].add("interp.analysis.ablation")
    cycle = _find_cycle(planted)
    assert cycle is not None and cycle[0] == cycle[-1] and "interp.analysis.ablation" in cycle
    planted = {k: set(v) for k, v in GRAPH.items()}
    planted["soundnet.specs"].add("interp.run.store")
    planted["dashboard.data"].add("interp.studies")
    bad = _against_the_flow(planted)
    assert any(b.startswith("soundnet/specs.py: soundnet imports interp.run.store") for b in bad), bad
    assert any(b.startswith("dashboard/data.py: the dashboard imports interp.studies") for b in bad), bad
