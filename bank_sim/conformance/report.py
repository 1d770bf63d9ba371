"""Shows results to a person: a rich table, or JSON for machines."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from bank_sim.conformance.results import CheckResult, Outcome

_STYLE = {Outcome.PASS: "green", Outcome.FAIL: "bold red", Outcome.SKIP: "yellow"}


def render_table(results: Sequence[CheckResult], console: Console, title: str) -> None:
    table = Table(title=title, show_lines=True, expand=True)
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("rule / what to fix")
    for result in results:
        text = result.description if not result.explanation else f"{result.description}\n{result.explanation}"
        table.add_row(result.name, f"[{_STYLE[result.outcome]}]{result.outcome.value.upper()}[/]", text)
    console.print(table)
    console.print(summary_line(results))


def summary_line(results: Sequence[CheckResult]) -> str:
    counts = Counter(r.outcome for r in results)
    return f"{counts[Outcome.PASS]} passed, {counts[Outcome.FAIL]} failed, {counts[Outcome.SKIP]} skipped"


def to_json(results: Sequence[CheckResult]) -> str:
    return json.dumps(
        [
            {"name": r.name, "outcome": r.outcome.value, "description": r.description, "explanation": r.explanation}
            for r in results
        ],
        ensure_ascii=False,
        indent=2,
    )
