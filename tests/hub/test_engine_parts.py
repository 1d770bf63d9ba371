"""The engine package's map (docs/hub-engine.md, "The engine's parts")
names every module of hub/engine/, and each stays small (issue 20)."""

from __future__ import annotations

import re
from pathlib import Path

import hub.engine

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "hub" / "engine"


def _modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def test_the_documented_map_and_the_package_docstring_name_every_module() -> None:
    text = (ROOT / "docs" / "hub-engine.md").read_text(encoding="utf-8")
    section = text.split("## The engine's parts", 1)[1].split("\n## ", 1)[0]
    assert sorted(re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE)) == _modules()
    docstring = hub.engine.__doc__ or ""
    assert sorted(re.findall(r"^    (\w+) {2,}", docstring, re.MULTILINE)) == _modules()


def test_no_engine_module_is_over_400_lines() -> None:
    sizes = {name: len((PACKAGE / f"{name}.py").read_text(encoding="utf-8").splitlines()) for name in _modules()}
    assert {name: n for name, n in sizes.items() if n > 400} == {}


def test_callers_imports_keep_working() -> None:
    from hub.engine import QueryEngine, ReadyListener, ReportOpener, ReportSealer, default_replica_id

    assert QueryEngine.__module__ == "hub.engine.core"
    assert all((ReadyListener, ReportOpener, ReportSealer)) and default_replica_id().count(":") == 2
