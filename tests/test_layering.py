"""Layering of the packages (docs/architecture.md, "Packages and layers").

Two rules, both read from the source with ``ast`` (nothing is imported):

1. Dependency direction is one way between packages: ``channels`` <- ``optim`` <- ``semcom``.
2. Inside a package the modules form a directed acyclic graph: no module imports, directly or
   through others, a module that imports it back. Every import counts: at module level, inside
   a function, under ``TYPE_CHECKING``, absolute (``from optim.power import x``) or relative
   (``from .power import x``). ``optim`` and ``channels`` must have no cycle; cycles of
   ``semcom`` are reported (``python tests/test_layering.py``) but not yet enforced.
3. In ``optim/`` and ``channels/kernels/`` no private name (``_x``) crosses a file: a name
   that another file needs is public in the file that owns its concept.

Edges are module to module. ``from pkg import name`` is an edge to ``pkg.name`` when that is a
module and to ``pkg`` (its ``__init__``) otherwise. The implicit import of a parent package
that Python performs before a submodule is not an edge: it is not a choice the code makes.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"channels": {"optim", "semcom"}, "optim": {"semcom"}}
ACYCLIC = ("channels", "optim")
REPORTED = ("channels", "optim", "semcom")
NO_PRIVATE_CROSSING = ("optim", "channels/kernels")


def imported_top_level_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_upward_imports(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources found for {package}"
    for path in files:
        bad = imported_top_level_packages(path) & FORBIDDEN[package]
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


# --- the intra-package import graph -------------------------------------------------------


def module_name(path: Path, root: Path = ROOT) -> str:
    """Dotted module name of a source file under ``root`` (a package is its ``__init__``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(package: str, root: Path = ROOT) -> dict[str, Path]:
    """Every module of ``package`` (recursively): dotted name -> source file."""
    return {module_name(path, root): path for path in sorted((root / package).rglob("*.py"))}


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from ... import`` names (resolving relative levels)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    # A package's own __init__ is "inside" itself: level 1 names the package.
    keep = len(base) - node.level + (1 if is_package else 0)
    prefix = base[:keep]
    return ".".join(prefix + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: set[str]) -> Iterator[tuple[str, int, list[str]]]:
    """``(target module, line, imported names)`` for each import in ``path`` that names a
    module in ``known`` (the package's own modules)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name, node.lineno, []
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, is_package)
            plain: list[str] = []
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in known:
                    yield sub, node.lineno, []
                else:
                    plain.append(alias.name)
            if plain and source in known:
                yield source, node.lineno, plain


def import_graph(package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the modules of the same top-level package it imports (all imports)."""
    modules = package_modules(package, root)
    known = set(modules)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, _line, _names in imports_of(name, path, known):
            if target != name:
                graph[name].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan), each
    as a closed path ``[a, b, ..., a]`` through real edges."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_through(graph, set(component)) for component in components]


def _cycle_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest closed path inside ``component`` starting at its first module."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if nxt not in parents:
                    parents[nxt] = node
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    raise AssertionError("a strongly connected component always holds a cycle")


def test_cycle_finder_reports_a_planted_cycle() -> None:
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a", "p.d"}, "p.d": set()}
    assert find_cycles(graph) == [["p.a", "p.b", "p.c", "p.a"]]
    assert find_cycles({"p.a": {"p.b"}, "p.b": set()}) == []


def test_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    for name in ("__init__", "a", "b", "c", "d", "e", "f", "sub/__init__", "sub/g"):
        (pkg / f"{name}.py").write_text("")
    (pkg / "a.py").write_text(
        "import pkg.b\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg.f import F\n"
        "def f():\n    from .c import x\n    from . import d\n    from pkg import e\n"
    )
    (pkg / "sub" / "g.py").write_text("from ..a import y\nfrom . import h\n")
    (pkg / "sub" / "__init__.py").write_text("from .g import z\n")
    graph = import_graph("pkg", tmp_path)
    assert graph["pkg.a"] == {"pkg.b", "pkg.c", "pkg.d", "pkg.e", "pkg.f"}
    assert graph["pkg.sub.g"] == {"pkg.a", "pkg.sub"}
    assert graph["pkg.sub"] == {"pkg.sub.g"}
    assert find_cycles(graph) == [["pkg.sub", "pkg.sub.g", "pkg.sub"]]


@pytest.mark.parametrize("package", ACYCLIC)
def test_no_import_cycles(package: str) -> None:
    graph = import_graph(package)
    assert len(graph) > 3, f"no modules found for {package}"
    cycles = find_cycles(graph)
    assert not cycles, f"import cycles in {package}: " + "; ".join(
        " -> ".join(cycle) for cycle in cycles
    )


# --- private names stay in their file ------------------------------------------------------


def private_crossings(folder: str, root: Path = ROOT) -> list[str]:
    """Each use of another module's private name (``_x``, not dunder) by a file in ``folder``:
    imported by name, or read as an attribute of an imported module."""
    package = folder.split("/")[0]
    modules = package_modules(package, root)
    known = set(modules)
    found: list[str] = []
    for name, path in modules.items():
        if not path.is_relative_to(root / folder):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        module_aliases: dict[str, str] = {}
        for target, line, names in imports_of(name, path, known):
            for imported in names:
                if _private(imported):
                    where = path.relative_to(root)
                    found.append(f"{where}:{line} imports {target}.{imported}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _absolute(node, name, path.name == "__init__.py")
                for alias in node.names:
                    if f"{source}.{alias.name}" in known:
                        module_aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in known:
                        module_aliases[alias.asname or alias.name] = alias.name
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                owner = _dotted(node.value)
                target = module_aliases.get(owner or "") or (owner if owner in known else None)
                if target and target != name:
                    where = path.relative_to(root)
                    found.append(f"{where}:{node.lineno} uses {target}.{node.attr}")
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


@pytest.mark.parametrize("folder", NO_PRIVATE_CROSSING)
def test_no_private_name_crosses_a_file(folder: str) -> None:
    crossings = private_crossings(folder)
    assert not crossings, "private names used outside their file:\n" + "\n".join(crossings)


def test_private_crossing_finder_sees_a_planted_one(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("_secret = 1\npublic = 2\n")
    (pkg / "b.py").write_text(
        "from pkg.a import _secret, public\nfrom pkg import a\ny = a._secret\n"
    )
    crossings = private_crossings("pkg", tmp_path)
    assert crossings == ["pkg/b.py:1 imports pkg.a._secret", "pkg/b.py:3 uses pkg.a._secret"]


if __name__ == "__main__":
    for package in REPORTED:
        for cycle in find_cycles(import_graph(package)):
            print(f"{package}: " + " -> ".join(cycle))
    for folder in NO_PRIVATE_CROSSING:
        for crossing in private_crossings(folder):
            print(crossing)
