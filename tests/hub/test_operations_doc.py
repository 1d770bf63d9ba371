"""docs/operations.md matches the code: the metrics table lists exactly the
hub's metrics, and the admin command's subcommands are the documented ones."""

from __future__ import annotations

import re
from pathlib import Path

from hub.admin import cli
from hub.telemetry.metrics import HubMetrics

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")


def test_the_metrics_table_lists_exactly_the_hubs_metrics() -> None:
    table = DOC.split("## Reading the metrics", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M))
    exported = set(re.findall(r"^# HELP cardlookup_hub_([a-z_]+) ", HubMetrics().exposition(), flags=re.M))
    assert documented == exported


def test_the_documented_admin_commands_exist() -> None:
    documented = set(re.findall(r"cardlookup-admin --target \S+ --pki pki/ ([a-z-]+)", DOC))
    assert documented == {"health", "reload", "drain", "log-level", "rewrap"}
    for command in documented:
        args = cli.parse_args(
            ["--target", "x:1", "--pki", "pki", command, *(["hub", "INFO"] if command == "log-level" else [])]
        )
        assert args.command == command
