"""The repository stands on its own: nothing in it links or refers outside
it for the product rules, and docs/rules.md states R1-R17 in order."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Built from pieces so that this file does not match itself.
OUTSIDE = ("../" + "shared", "shared/" + "SPEC.md")


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout.split(b"\0")
    return [ROOT / name.decode() for name in listed if name and (ROOT / name.decode()).is_file()]


def test_nothing_tracked_refers_outside_the_repository() -> None:
    files = tracked_files()
    assert len(files) > 100
    offenders = sorted(
        f"{path.relative_to(ROOT)}: {needle}"
        for path in files
        for needle in OUTSIDE
        if needle.encode() in path.read_bytes()
    )
    assert offenders == []


def test_the_rules_are_all_there_in_order() -> None:
    rules = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    numbers = [int(n) for n in re.findall(r"^## R(\d+) ", rules, flags=re.M)]
    assert numbers == list(range(1, 18))
    for section in re.split(r"^## R\d+ ", rules, flags=re.M)[1:]:
        # What each rule means for each party.
        assert all(f"- **{who}:**" in section for who in ("Bank", "App backend", "Hub")), section[:60]


def test_relative_links_in_the_docs_resolve() -> None:
    """README and docs link files and headings inside the repository only."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # an absolute URL
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists() or ROOT not in (file, *file.parents):
                broken.append(f"{page.name}: {target}")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to '-'."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
