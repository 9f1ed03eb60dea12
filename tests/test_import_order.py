"""The written order of the packages: each imports only the ones to its left, and itself.

    shared_model < privacy < client < server < sim

``shared_model`` and ``privacy`` are libraries; ``client`` is a site (its data library, its
ClientApp, its admin tools); ``server`` is the coordinator; ``sim`` drives both. Every import
counts (module level, inside functions, under ``TYPE_CHECKING``). No package imports a private
name (``_x``) of another, and the module-level imports of m3fed's modules form no cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path

ORDER = ("shared_model", "privacy", "client", "server", "sim")
ROOT = Path(__file__).resolve().parent.parent


def _modules() -> dict[str, Path]:
    """Dotted name → file of every module in the five packages."""
    found = {}
    for package in ORDER:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path, *, top_level_only: bool = False) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) of each import in ``path``; relative imports resolved.

    ``top_level_only``: only the statements that run when the module is imported (not inside a
    function or class body; those under ``if``/``try`` at module level do run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    if top_level_only:
        nodes, stack = [], list(tree.body)
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            nodes.append(node)
            for field in ("body", "orelse", "finalbody", "handlers"):
                stack.extend(getattr(node, field, []) or [])
    else:
        nodes = list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((module, [alias.name for alias in node.names], node.lineno))
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


def test_every_import_points_left_in_the_written_order():
    wrong = []
    for name, path in MODULES.items():
        rank = ORDER.index(_top(name))
        for module, _, line in _imports(name, path):
            if _top(module) in ORDER and ORDER.index(_top(module)) > rank:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {_top(name)} imports {module}")
    assert not wrong, "imports against the order " + " < ".join(ORDER) + ":\n" + "\n".join(wrong)


def test_no_private_name_is_imported_from_another_package():
    wrong = []
    for name, path in MODULES.items():
        for module, names, line in _imports(name, path):
            if _top(module) not in ORDER or _top(module) == _top(name):
                continue
            private = [n for n in names if n.startswith("_")]
            private += [p for p in module.split(".") if p.startswith("_") and p != "__init__"]
            if private:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {module} {', '.join(private)}")
    assert not wrong, "private names imported across packages:\n" + "\n".join(wrong)


def _resolve(module: str, names: list[str]) -> list[str]:
    """The m3fed modules an import statement needs: ``from a import b`` needs ``a.b`` when that is a
    module, and ``a`` itself only for the names that are not its submodules (a package's own
    ``__init__`` runs before any of its submodules, so that edge is no cycle)."""
    if module not in MODULES:
        return []
    submodules = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
    return submodules if names and len(submodules) == len(names) else [module, *submodules]


def test_module_level_imports_form_no_cycle():
    graph = {name: sorted({target for module, names, _ in _imports(name, path, top_level_only=True)
                           for target in _resolve(module, names) if target != name})
             for name, path in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [node, nxt]) if nxt in trail
                              else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_scan_sees_the_packages():
    assert {"shared_model.config", "privacy.ledger", "server.server_app", "sim.synth"} <= set(MODULES)
