"""The house rules of ``src/medactive``, checked from the source with :mod:`ast`.

* Layers: errors | defaults -> progress | rng | registry | metrics | geometry -> data | selection
  -> models -> strategies | coldstart -> rounds -> experiment | annotate -> cli -> __main__. A module
  imports only from its own package or from a lower layer (function-level imports included),
  so no import runs back up and sibling packages of one layer stay independent.
* No import circle among modules (function-level imports included; ``TYPE_CHECKING`` blocks
  excluded, they never run). Imports of a package's face (its ``__init__``, which only hands
  names on) are left out: that is how a registry loads its built-in entries without a loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "medactive"
LAYERS = {
    "errors": 0, "defaults": 0,
    "progress": 1, "rng": 1, "registry": 1, "metrics": 1, "geometry": 1,
    "data": 2, "selection": 2,
    "models": 3,
    "strategies": 4, "coldstart": 4,
    "rounds": 5,
    "experiment": 6, "annotate": 6, "integrations": 6,
    "cli": 7,
    "__main__": 8, "__init__": 8,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / PACKAGE).rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path) -> list[tuple[str, bool]]:
    """``(imported medactive module, at module level?)`` for every import in ``path``."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # never executed
            nested = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                    ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, top) for a in child.names if a.name.startswith(PACKAGE))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".") if is_package else module.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                if base.startswith(PACKAGE):
                    found.append((base, top))
                    # `from medactive.coldstart import simulation` imports a submodule
                    found.extend((f"{base}.{a.name}", top) for a in child.names)
            visit(child, nested)

    visit(tree, True)
    return found


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``(edges for the circle check, every edge)``."""
    mods = _modules()
    faces = {m for m, path in mods.items() if path.name == "__init__.py"}
    circle: dict[str, set[str]] = {m: set() for m in mods}
    every: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for target, _ in _imports(mod, path):
            if target in mods and target != mod:
                every[mod].add(target)
                if target not in faces:
                    circle[mod].add(target)
    return circle, every


def _layer(module: str) -> tuple[str, int]:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "__init__"
    return name, LAYERS[name]


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        _layer(module)  # KeyError names a module the rules do not place


def test_no_import_runs_back_up_or_sideways() -> None:
    _, every = _graph()
    bad = []
    for source, targets in every.items():
        package, level = _layer(source)
        for target in targets:
            t_package, t_level = _layer(target)
            if t_package == package or t_level < level:
                continue
            if target == PACKAGE:
                continue  # the top-level package face defines nothing
            bad.append(f"{source} -> {target}")
    assert not bad, "imports against the layers:\n" + "\n".join(sorted(bad))


def test_no_import_circle() -> None:
    top, _ = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def dfs(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(top[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                dfs(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(top):
        if node not in state:
            dfs(node)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


BENCHMARKS = SRC.parent / "benchmarks"


def test_benchmark_scripts_import_only_what_the_package_has() -> None:
    """Every ``from medactive.X import name`` in ``benchmarks/`` resolves (mypy checks only
    ``src``, so a benchmark could otherwise keep importing a module that was removed)."""
    import importlib

    missing = []
    for path in sorted(BENCHMARKS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE):
                try:
                    module = importlib.import_module(node.module or "")
                except ImportError as err:
                    missing.append(f"{path.name}: {node.module} ({err})")
                    continue
                missing.extend(f"{path.name}: {node.module}.{a.name}" for a in node.names
                               if not hasattr(module, a.name)
                               and importlib.util.find_spec(f"{node.module}.{a.name}") is None)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(PACKAGE):
                        try:
                            importlib.import_module(alias.name)
                        except ImportError as err:
                            missing.append(f"{path.name}: {alias.name} ({err})")
    assert not missing, missing
