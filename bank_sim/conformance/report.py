"""Shows results to a person: a rich table, or JSON for machines."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from bank_sim.conformance.results import CheckResult, Outcome

_STYLE = {Outcome.PASS: "green", Outcome.FAIL: "bold red", Outcome.SKIP: "yellow", Outcome.NEW: "cyan"}


def render_table(results: Sequence[CheckResult], console: Console, title: str, profile: str = "") -> None:
    table = Table(title=title, show_lines=True, expand=True)
    table.add_column("check", no_wrap=True)
    table.add_column("since", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("rule / what to fix")
    for result in results:
        if result.outcome is Outcome.NEW:
            continue
        text = result.description if not result.explanation else f"{result.description}\n{result.explanation}"
        table.add_row(result.name, result.since, f"[{_STYLE[result.outcome]}]{result.outcome.value.upper()}[/]", text)
    console.print(table)
    newer = [r for r in results if r.outcome is Outcome.NEW]
    if newer:
        later = Table(
            title=f"new since your profile {profile}: not run, not part of this certification",
            show_lines=True,
            expand=True,
        )
        later.add_column("check", no_wrap=True)
        later.add_column("since", no_wrap=True)
        later.add_column("rule (see the changelog for banks in docs/bank-integration.md)")
        for result in newer:
            later.add_row(result.name, result.since, result.description)
        console.print(later)
    console.print(summary_line(results, profile))


def summary_line(results: Sequence[CheckResult], profile: str = "") -> str:
    counts = Counter(r.outcome for r in results)
    line = f"{counts[Outcome.PASS]} passed, {counts[Outcome.FAIL]} failed, {counts[Outcome.SKIP]} skipped"
    if profile:
        line += f" (profile {profile})"
    if counts[Outcome.NEW]:
        line += f"; {counts[Outcome.NEW]} new since your profile"
    return line


def to_json(results: Sequence[CheckResult]) -> str:
    return json.dumps(
        [
            {
                "name": r.name,
                "since": r.since,
                "outcome": r.outcome.value,
                "description": r.description,
                "explanation": r.explanation,
            }
            for r in results
        ],
        ensure_ascii=False,
        indent=2,
    )
