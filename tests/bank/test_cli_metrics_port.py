"""Issue 18 item 6: `cardlookup-banks --metrics-port 0` binds a free port and
says which, on the ready line and in --addresses-out; without metrics the
file says null."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from pathlib import Path

from cardlookup.pki import PkiPaths
from tests.bank.test_cli import start_cli, stop_cli


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
    return body.decode()


async def test_metrics_port_zero_is_reported_on_the_ready_line_and_in_the_addresses_file(
    pki: PkiPaths, tmp_path: Path
) -> None:
    out = tmp_path / "addresses.json"
    proc, ready = await start_cli(
        "--pki", str(pki.root), "--count", "2", "--no-admin", "--metrics-port", "0", "--addresses-out", str(out)
    )
    try:
        match = re.search(r"metrics http://(127\.0\.0\.1:(\d+))/metrics", ready)
        assert match, ready
        assert int(match.group(2)) > 0
        document = json.loads(out.read_text())
        assert document["metrics"] == match.group(1)
        text = await asyncio.to_thread(scrape, f"http://{document['metrics']}/metrics")
        assert "# TYPE" in text  # a Prometheus exposition, really served there
    finally:
        if proc.returncode is None:
            await stop_cli(proc)


async def test_without_metrics_the_file_says_null(pki: PkiPaths, tmp_path: Path) -> None:
    out = tmp_path / "addresses.json"
    proc, ready = await start_cli("--pki", str(pki.root), "--count", "1", "--no-admin", "--addresses-out", str(out))
    try:
        assert "metrics" not in ready
        assert json.loads(out.read_text())["metrics"] is None
    finally:
        if proc.returncode is None:
            await stop_cli(proc)
