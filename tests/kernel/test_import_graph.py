"""The import graph of the project's packages (docs/architecture.md): every
`import` and `from ... import` of every module, at module level or inside a
function or an `if TYPE_CHECKING:` block alike (a lazy import is still a
dependency), read with `ast`, so nothing is run.

- Layers: each package imports only itself and the packages ALLOWED names
  (cardlookup < {hub, bank_sim, bank_kit} < client < devstack < bench, with
  client, hub and bank_sim blind to each other, bank_kit to everything).
- No import cycles between modules.
- Inside hub/: every module sits in a sub-package of HUB_LAYERS and imports
  only its own row and lower ones (no loose top-level modules).
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


HUB_LAYERS: tuple[tuple[str, ...], ...] = (
    ("process",),  # the cardlookup-hub command and the server that wires every service
    ("api", "admin"),  # the services the server installs
    ("runtime",),  # what a running hub is made of: installer context, reload, ports, health
    ("identity", "engine"),  # the rules: the user's journey, the queries' life
    ("reports",),  # building a report, sealing answers to the user
    ("fanout",),  # calling banks, validating their answers
    ("telemetry",),  # metrics and tracing: hooks every layer above calls
    ("store",),  # persistence, named SQL
    ("keys",),  # cryptography, the HSM, certificates
    ("core",),  # configuration, domain values, logging, the SMS seam
)
"""hub's sub-packages from the top down (docs/architecture.md): a module may
import its own sub-package and those on lower rows, never a higher row."""


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
    and `from hub.core.config import Timings` -> hub.core.config). A package's
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


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in found)


def test_the_cycle_finder_finds_a_lazy_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset({"a", "b", "c"})}
    assert cycles({"a": {"b"}, "b": set()}) == set()


def hub_layer(module: str) -> int | None:
    """The row of HUB_LAYERS a hub module belongs to (None: the hub package itself)."""
    if module == "hub":
        return None
    package = module.split(".")[1]
    for row, packages in enumerate(HUB_LAYERS):
        if package in packages:
            return row
    raise AssertionError(f"{module} is in no layer: move it into a sub-package of HUB_LAYERS (docs/architecture.md)")


def test_hub_sub_packages_import_only_their_own_row_and_lower() -> None:
    upward = {}
    for module, targets in import_graph().items():
        own = hub_layer(module) if module.split(".")[0] == "hub" else None
        for target in targets if own is not None else ():
            row = hub_layer(target) if target.split(".")[0] == "hub" else None
            if row is not None and own is not None and row < own:
                upward[(module, target)] = f"{module} -> {target}"
    assert not upward, "imports up hub's layers (docs/architecture.md):\n" + "\n".join(sorted(upward.values()))


def test_the_architecture_page_names_every_package_and_hub_layer() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [f"{package}/" for package in ALLOWED if f"`{package}/`" not in page]
    missing += [f"hub/{package}/" for row in HUB_LAYERS for package in row if f"`hub/{package}/`" not in page]
    assert not missing, f"docs/architecture.md does not name: {missing}"
