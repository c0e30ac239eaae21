"""The layering of ``actors``, checked on every import statement of the package.

Every ``import`` and ``from ... import`` is read from the source with ``ast``,
wherever it stands: module level, inside functions, under ``TYPE_CHECKING``.
Rules (docs/architecture.md):

1. Layers depend only downward: foundation -> codecs -> transports -> core ->
   framework -> distributed -> launch | split -> the public entry points
   (``actors`` itself and ``actors.run``). Foundation modules (errors, buffers,
   settings, _parse, tomlfile, _optional, _cli) may be imported by every layer. ``launch`` and
   ``split`` are siblings: neither imports the other.
2. No cycle between packages (each folder is one package).
3. No cycle between the modules of one package at run time: the imports that
   run (module level and inside functions; those under ``TYPE_CHECKING`` never
   run) must not lead from a module back to itself. A function-level import
   only hides such a cycle; the piece both modules need belongs in one of them,
   or in a lower module both import.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

import actors

PACKAGE_DIR = Path(actors.__file__).parent

#: Foundation modules: importable from every layer.
FOUNDATION = frozenset(
    {
        "actors.errors",
        "actors._optional",
        "actors.buffers",
        "actors.tomlfile",
        "actors.settings",
        "actors._parse",
        "actors._cli",
    }
)
#: Layer rank of each top-level package (longest prefix wins).
LAYERS: dict[str, int] = {
    "actors.codecs": 1,
    "actors.transports": 2,
    "actors.core": 3,
    "actors.framework": 4,
    "actors.distributed": 5,
    "actors.launch": 6,
    "actors.split": 6,
    "actors.run": 7,
    "actors": 7,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}


def _imports(
    module: str,
    path: Path | None = None,
    *,
    runtime: bool = False,
    modules: Collection[str] = MODULES.keys(),
) -> Iterator[tuple[int, str]]:
    """(line, imported actors module) for every import statement of ``module``.

    ``runtime``: only the imports that run (those under ``if TYPE_CHECKING:``
    are left out; its ``else:`` branch is kept). ``modules``: the module names
    that exist (``from package import name`` imports the module ``name`` when
    there is one).
    """
    path = path or MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    for node in _runtime_nodes(tree) if runtime else ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "actors":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "actors":
                continue
            for alias in node.names:  # "from . import x" may import the module x
                sub = f"{target}.{alias.name}"
                yield node.lineno, sub if sub in modules else target


def _is_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING`` (any module's attribute of that name)."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` but the bodies of ``if TYPE_CHECKING:`` blocks."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def _top(module: str) -> str:
    """The layer package (or foundation module) ``module`` belongs to."""
    if module in FOUNDATION:
        return module
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS or FOUNDATION")


def _upward_imports(module: str, path: Path | None = None) -> list[str]:
    problems = []
    here = _top(module)
    where = path or MODULES[module]
    for line, target in _imports(module, path):
        there = _top(target)
        if there in FOUNDATION or there == here:
            continue
        if here in FOUNDATION:
            problems.append(f"{where}:{line}: foundation module imports {target}")
        elif LAYERS[there] >= LAYERS[here]:
            problems.append(f"{where}:{line}: {here} imports {target} ({there})")
    return problems


def _package_of(module: str, path: Path | None = None) -> str:
    if module in FOUNDATION or module in ("actors", "actors.run"):
        return module
    path = path or MODULES[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _package_cycles() -> list[list[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        source = _package_of(module)
        for _, target in _imports(module):
            if target in MODULES and _package_of(target) != source:
                graph.setdefault(source, set()).add(_package_of(target))
    return [c for c in _strongly_connected(graph) if len(c) > 1]


def _module_cycles(modules: dict[str, Path] | None = None) -> list[list[str]]:
    """Cycles of run-time imports between the modules of one package.

    ``modules``: ``{name: path}`` to check (default: the whole package); only
    imports between two of them count.
    """
    modules = MODULES if modules is None else modules
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        package = _package_of(module, path)
        for _, target in _imports(module, path, runtime=True, modules=modules.keys()):
            if target == module or target not in modules:
                continue
            if _package_of(target, modules[target]) == package:
                graph.setdefault(module, set()).add(target)
    return [c for c in _strongly_connected(graph) if len(c) > 1]


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative over an explicit stack."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def test_every_module_belongs_to_a_layer() -> None:
    for module in MODULES:
        _top(module)


def test_layers_import_only_downward() -> None:
    problems = [p for module in sorted(MODULES) for p in _upward_imports(module)]
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_no_cycle_between_packages() -> None:
    cycles = _package_cycles()
    assert not cycles, f"package cycles: {cycles}"


def test_no_cycle_between_modules_of_a_package() -> None:
    cycles = _module_cycles()
    assert not cycles, (
        "run-time import cycles inside a package (function-level imports count, "
        f"TYPE_CHECKING ones do not): {cycles}"
    )


def test_the_checks_see_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    """The walker reports imports inside functions and TYPE_CHECKING blocks."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ..launch import cli\n"
        "def f():\n    from ..distributed import hub\n"
    )
    path = tmp_path / "probe.py"
    path.write_text(source)
    found = {target for _, target in _imports("actors.codecs.probe", path)}
    problems = _upward_imports("actors.codecs.probe", path)
    assert found == {"actors.launch.cli", "actors.distributed.hub"}
    assert len(problems) == 2


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_cycle_finder(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert [c for c in _strongly_connected(graph) if len(c) > 1] == expected


def test_module_cycle_check_on_a_probe_package(tmp_path: Path) -> None:
    """A function-level import closing a cycle is found; a TYPE_CHECKING one is not."""
    pkg = tmp_path / "probe"
    pkg.mkdir()
    files = {
        "__init__.py": "from .a import A\n",
        "a.py": "from .b import B\nclass A: ...\n",
        # hides the cycle a -> b -> a in a function: still a cycle at run time
        "b.py": "class B:\n    def f(self):\n        from .a import A\n        return A\n",
        # c -> d at run time, d -> c only for the type checker: no cycle
        "c.py": "from .d import D\n",
        "d.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from .c import C\n"
            "else:\n    from .e import E\n"
            "class D: ...\n"
        ),
        # e -> f -> e through typing.TYPE_CHECKING's else branch and a module import
        "e.py": "import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n    from . import f\n",
        "f.py": "def g():\n    from actors.codecs.probe import e\n",
    }
    modules = {}
    for name, text in files.items():
        (pkg / name).write_text(text)
        module = "actors.codecs.probe" + ("" if name == "__init__.py" else f".{name[:-3]}")
        modules[module] = pkg / name
    assert _module_cycles(modules) == [
        ["actors.codecs.probe.a", "actors.codecs.probe.b"],
        ["actors.codecs.probe.e", "actors.codecs.probe.f"],
    ]
    runtime_d = {t for _, t in _imports("actors.codecs.probe.d", pkg / "d.py", runtime=True)}
    all_d = {t for _, t in _imports("actors.codecs.probe.d", pkg / "d.py")}
    assert runtime_d == {"actors.codecs.probe.e"}
    assert all_d == {"actors.codecs.probe.c", "actors.codecs.probe.e"}
