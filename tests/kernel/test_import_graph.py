"""The import graph of the project's packages (docs/architecture.md): every
`import` and `from ... import` of every module, at module level or inside a
function or an `if TYPE_CHECKING:` block alike (a lazy import is still a
dependency), read with `ast`, so nothing is run.

- Layers: each package imports only itself and the packages ALLOWED names
  (cardlookup < {hub, bank_sim, bank_kit} < client < devstack < bench, with
  client, hub and bank_sim blind to each other, bank_kit to everything).
- No import cycles between modules, but for KNOWN_CYCLES: cycles being
  broken on other branches right now. The list only shrinks: a cycle on it
  that is gone fails the test until its entry is removed.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ALLOWED: dict[str, frozenset[str]] = {
    "cardlookup": frozenset(),
    "hub": frozenset({"cardlookup"}),
    "bank_sim": frozenset({"cardlookup"}),
    "bank_kit": frozenset(),  # copied out whole by a bank: imports nothing of ours
    "client": frozenset({"cardlookup"}),
    "devstack": frozenset({"cardlookup", "hub", "bank_sim", "client"}),
    "bench": frozenset({"cardlookup", "hub", "bank_sim", "bank_kit", "client", "devstack"}),
}
"""Each package -> the other packages of this project it may import."""

KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset(
    {
        # Being broken on other branches; the lead empties this after merging.
        frozenset({"hub.server", "hub.admin"}),
        frozenset({"hub.fanout.lanes", "hub.metrics"}),
        frozenset({"hub.store.db", "hub.store.sqlite", "hub.store.postgres"}),
    }
)
"""Import cycles (the modules of each) that still exist and are allowed for now."""


def module_files() -> dict[str, Path]:
    """Every module of the packages: dotted name -> file (generated code included)."""
    found: dict[str, Path] = {}
    for package in ALLOWED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_names(path: Path, module: str, files: dict[str, Path]) -> Iterator[str]:
    """The dotted names `path` imports, anywhere in it: `from a import b` is
    a.b when that is a module, else a."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of this project it imports: the longest dotted
    prefix of each imported name that is a module (`from hub import config`
    and `from hub.config import Timings` -> hub.config). A package's
    __init__ that Python runs on the way to a submodule is not an edge."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = set()
        for name in imported_names(path, module, files):
            parts = name.split(".")
            while parts and ".".join(parts) not in files:
                parts.pop()
            if parts and ".".join(parts) != module:
                targets.add(".".join(parts))
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_reads_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from hub import api, store\n"
        "if TYPE_CHECKING:\n"
        "    from hub.store.db import Database\n"
        "def f() -> None:\n"
        "    import cardlookup.pki\n"
        "    from . import sibling\n",
        encoding="utf-8",
    )
    files = dict.fromkeys(["hub", "hub.api", "hub.store", "hub.store.db", "cardlookup.pki", "client.sibling"], source)
    names = set(imported_names(source, "client.mod", files))
    assert {"hub.api", "hub.store", "hub.store.db", "cardlookup.pki", "client.sibling"} <= names
    graph = import_graph()
    assert "cardlookup.sealed_report" in graph["hub.identity.validation"]  # imported inside a function
    assert len(graph) > 150


def test_each_package_imports_only_the_layers_below_it() -> None:
    upward = []
    for module, targets in import_graph().items():
        package = module.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            if other != package and other not in ALLOWED[package]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports against the layers (docs/architecture.md):\n" + "\n".join(upward)


def test_no_import_cycles_but_the_known_ones_and_those_still_exist() -> None:
    found = cycles(import_graph())
    new = found - KNOWN_CYCLES
    assert not new, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in new)
    gone = KNOWN_CYCLES - found
    assert not gone, "no longer cycles, remove from KNOWN_CYCLES: " + "; ".join(" <-> ".join(sorted(c)) for c in gone)


def test_the_cycle_finder_finds_a_lazy_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset({"a", "b", "c"})}
    assert cycles({"a": {"b"}, "b": set()}) == set()
