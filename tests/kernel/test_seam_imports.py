"""The import cycles issue 20 named are gone: the store's engines do not
import the module that opens them, and the metrics import neither the
fan-out (whose lanes register themselves as the breaker source) nor the
store. Each check imports in a fresh interpreter, so nothing imported by
an earlier test hides a dependency."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import hub.telemetry.metrics


def _loaded_after(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(m for m in sys.modules if m.startswith('hub'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("engine", ["hub.store.sqlite", "hub.store.postgres"])
def test_an_engine_imports_the_interface_not_the_factory(engine: str) -> None:
    loaded = _loaded_after(engine)
    assert "hub.store.types" in loaded
    assert not {"hub.store.db", "hub.store.factory"} & loaded


def test_the_metrics_import_neither_the_fanout_nor_the_store() -> None:
    loaded = _loaded_after("hub.telemetry.metrics")
    assert not {m for m in loaded if m.startswith(("hub.fanout", "hub.store"))}
    # Not even for type checking: the fan-out registers a BreakerSource.
    tree = ast.parse(Path(hub.telemetry.metrics.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if m.startswith("hub.fanout")}
