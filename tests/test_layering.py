"""Imports only go down the layers of DESIGN.md, and no modules of cscnn import each other in a circle.

Every ``import`` / ``from ... import`` statement of ``src/cscnn`` is read with :mod:`ast`, the
ones inside functions included (a lazy import still ties the two modules together); imports under
``if TYPE_CHECKING:`` never run and are skipped. ``from pkg import name`` counts as an import of
the submodule ``pkg.name`` when that is a module, else of ``pkg`` (its ``__init__``).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "cscnn"

#: the layers, lowest first (DESIGN.md "Layers of the code"); a module belongs to the longest prefix
#: listed. A module may import from its own layer or any lower one.
LAYERS: tuple[tuple[str, ...], ...] = (
    # _catalog (static names for the CLI) and _memory (memory estimates): import nothing from cscnn
    ("cscnn._catalog", "cscnn._memory", "cscnn.algebra"),
    ("cscnn.nn",),
    ("cscnn.models",),
    # DESIGN.md lists testing.py after training/, but it builds only on algebra (and _completeness) and
    # training.inspection calls its equivariance helpers, so it sits below training
    ("cscnn.testing", "cscnn._completeness"),
    ("cscnn.fields",),
    ("cscnn.data",),
    ("cscnn.training",),
    ("cscnn.demo", "cscnn.cli", "cscnn.__main__", "cscnn"),  # entry points; "cscnn": the package __init__
)

#: circles that are known and owned elsewhere; each entry must name its issue.
ALLOWED_CIRCLES: tuple[frozenset[str], ...] = ()


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from (n for child in node.orelse for n in [child] + list(_import_nodes(child)))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _import_nodes(node)


def import_graph() -> dict[str, dict[str, int]]:
    """``module -> {imported cscnn module: line}`` for every module of src/cscnn."""
    mods = _modules()

    def owner(name: str) -> str:
        while name not in mods:
            name = name.rsplit(".", 1)[0]
        return name

    graph: dict[str, dict[str, int]] = {}
    for mod, (path, is_pkg) in mods.items():
        edges: dict[str, int] = {}
        for node in _import_nodes(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == "cscnn"]
            else:
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    pkg = ".".join(base + ([node.module] if node.module else []))
                else:
                    pkg = node.module or ""
                if pkg.split(".")[0] == "cscnn":
                    targets = [f"{pkg}.{a.name}" if f"{pkg}.{a.name}" in mods else pkg for a in node.names]
            for t in targets:
                t = owner(t)
                if t != mod:
                    edges.setdefault(t, node.lineno)
        graph[mod] = edges
    return graph


def layer_of(mod: str, graph: dict[str, dict[str, int]] | None = None) -> int:
    """The layer of ``mod`` (index into LAYERS). The package itself (``cscnn``) matches only exactly; a
    module that is in no layer but imports nothing from cscnn (a leaf, e.g. a table of names) is in the
    lowest one, since it cannot import upwards."""
    best, rank = -1, None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (mod == name or (name != "cscnn" and mod.startswith(name + "."))) and len(name) > best:
                best, rank = len(name), i
    if rank is None and graph is not None and not graph.get(mod):
        return 0
    assert rank is not None, f"module {mod} has no layer: add it to LAYERS in {Path(__file__).name}"
    return rank


def circles(graph: dict[str, dict[str, int]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:  # the graph has ~100 nodes: recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    graph = import_graph()
    for mod in graph:
        layer_of(mod, graph)


def test_imports_only_go_down_the_layers():
    graph = import_graph()
    up = [f"{mod} (line {line}) imports {dep}: layer {LAYERS[layer_of(dep, graph)][0]} is above "
          f"{LAYERS[layer_of(mod, graph)][0]}"
          for mod, deps in sorted(graph.items()) for dep, line in sorted(deps.items())
          if layer_of(dep, graph) > layer_of(mod, graph)]
    assert not up, "imports that go up the layers:\n  " + "\n  ".join(up)


def test_no_import_circles():
    found = circles(import_graph())
    unexpected = [sorted(c) for c in found if c not in ALLOWED_CIRCLES]
    assert not unexpected, f"modules that import each other in a circle: {unexpected}"


def test_allowed_circles_still_exist():
    """An allowed circle that is gone must leave ALLOWED_CIRCLES, so that it cannot come back unnoticed."""
    found = circles(import_graph())
    gone = [sorted(c) for c in ALLOWED_CIRCLES if c not in found]
    assert not gone, f"circles {gone} no longer exist: remove them from ALLOWED_CIRCLES in {Path(__file__).name}"


def test_the_checker_sees_circles_and_upward_imports():
    """The checker itself: a lazy import inside a function and a relative import are both edges."""
    graph = {"cscnn.fields": {"cscnn.algebra": 1, "cscnn.data.tasks": 2}, "cscnn.data.tasks": {"cscnn.fields": 3},
             "cscnn.algebra": {}}
    assert circles(graph) == [frozenset({"cscnn.fields", "cscnn.data.tasks"})]
    assert layer_of("cscnn.data.tasks") > layer_of("cscnn.fields") > layer_of("cscnn.algebra")
    tree = ast.parse("def f():\n    from .data.tasks import TASKS\n")
    assert [n.module for n in _import_nodes(tree)] == ["data.tasks"]
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .data import X\n")
    assert [n.module for n in _import_nodes(tree)] == ["typing"]
