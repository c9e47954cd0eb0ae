"""The package's shape (docs/design.md §2), checked from the source: layers import downward only.

Read with ``ast``, so imports inside functions count as much as those at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "streamnorm"
MAX_LINES = 700
MAX_KERNEL_LINES = 900


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _absolute(module: str, level: int, target: str | None) -> str:
    """The absolute name of ``from <level dots><target> import ...`` written in ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not _is_package(module):
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _imports(module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import of this package."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: list[tuple[str, list[str], int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "streamnorm" and alias.name in MODULES:
                    found.append((alias.name, [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node.level, node.module)
            if source.split(".")[0] != "streamnorm":
                continue
            names = []
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in MODULES:  # `from . import io`: an import of that module
                    found.append((submodule, [], node.lineno))
                else:
                    names.append(alias.name)
            if names and source in MODULES:
                found.append((source, names, node.lineno))
    return found


GRAPH = {m: sorted({target for target, _, _ in _imports(m) if target != m}) for m in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_another_that_imports_it_back() -> None:
    assert _cycles() == []


def test_no_module_takes_another_modules_private_names() -> None:
    taken = [
        f"{MODULES[m].relative_to(PACKAGE.parent)}:{line} takes {name} from {source}"
        for m in MODULES
        for source, names, line in _imports(m)
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert taken == []


def test_no_module_reads_private_attributes_of_an_imported_module() -> None:
    problems = []
    for m, path in MODULES.items():
        aliases = {}
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _absolute(m, node.level, node.module)
                for alias in node.names:
                    if f"{source}.{alias.name}" in MODULES:
                        aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} "
                                f"{node.value.id}.{node.attr}")
    assert problems == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_small_enough_to_read(module: str) -> None:
    limit = MAX_KERNEL_LINES if module.startswith("streamnorm.kernels.") else MAX_LINES
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= limit, f"{MODULES[module].name}: {lines} lines (at most {limit})"


def test_base_modules_import_nothing_above_them() -> None:
    base = {"streamnorm.errors", "streamnorm._version", "streamnorm.progress"}
    for module in base:
        assert GRAPH[module] == [] or set(GRAPH[module]) <= base, (module, GRAPH[module])


def test_lower_layers_never_import_higher_ones() -> None:
    # Bottom to top: kernels know numpy alone; columns read Arrow buffers for them (by address);
    # arrow reads and writes files and uses the type rules of columns; state, normalize and
    # pipeline build on all three.
    order = ["kernels", "columns", "arrow", "state", "normalize", "pipeline"]
    rank = {name: i for i, name in enumerate(order)}
    problems = []
    for module, targets in GRAPH.items():
        parts = module.split(".")
        if len(parts) < 3 or parts[1] not in rank:
            continue
        for target in targets:
            t = target.split(".")
            if len(t) >= 2 and t[1] in rank and rank[t[1]] > rank[parts[1]]:
                problems.append(f"{module} -> {target}")
            if len(t) >= 2 and t[1] in {"cli", "dask", "sklearn", "bench", "selection"}:
                problems.append(f"{module} -> {target}")
    assert problems == []
