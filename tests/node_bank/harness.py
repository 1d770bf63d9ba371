"""Runs the Node.js bank (server.js) as a subprocess for tests.

    write_bank_data(population, "102", tmp_path / "cards.json")
    async with NodeBank(pki, "102", tmp_path / "cards.json") as address:
        ...  # dial `address` with TLS name 102.bank.cardlookup.internal

The data file carries only what a bank may send (masked cards, card refs,
unlisted counts) keyed by ID number: the Node bank never sees a full card
number.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO

from cardlookup.pki import CONSENT_KEY_ID, HUB_CLIENT_NAME, PkiPaths
from cardlookup.population import R13_TEST_CUSTOMER, Population

NODE_BANK_DIR = Path(__file__).resolve().parent
SERVER_JS = NODE_BANK_DIR / "server.js"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0

_CARD_TYPES = {"debit": "CARD_TYPE_DEBIT", "credit": "CARD_TYPE_CREDIT"}


def bank_data(population: Population, bank_code: str) -> dict[str, object]:
    """The Node bank's records: every person of `population` holding cards
    at the bank (and the R13 test customer), listed cards masked as the
    contract requires, and for each unlisted card its R13 conditions (the
    Node bank picks the one reason it counts under)."""
    subjects: dict[str, object] = {}
    holders = [(p.full_name, p.id_number) for p in population.people] + [R13_TEST_CUSTOMER]
    for full_name, id_number in holders:
        held = population.cards_at(bank_code, id_number)
        if not held:
            continue
        subjects[id_number] = {
            "full_name": full_name,
            "cards": [
                {
                    "card_type": _CARD_TYPES[card.kind],
                    "first_four": card.first_four,
                    "last_four": card.last_four,
                    "number_length": len(card.number),
                    "card_ref": card.card_ref,
                }
                for card in held
                if not card.conditions
            ],
            "unlisted_cards": [
                {"conditions": [f"UNLISTED_REASON_{c}" for c in sorted(card.conditions)]}
                for card in held
                if card.conditions
            ],
        }
    return {"bank_code": bank_code, "subjects": subjects}


def write_bank_data(population: Population, bank_code: str, path: Path) -> Path:
    path.write_text(json.dumps(bank_data(population, bank_code), ensure_ascii=False))
    return path


def node_command(
    pki: PkiPaths,
    bank_code: str,
    data_file: Path,
    listen: str = "127.0.0.1:0",
    consent_keys: dict[str, Path] | None = None,
) -> list[str]:
    """The command line of the Node bank; `consent_keys` (key id -> public
    key PEM) defaults to the development PKI's consent key."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("Node.js is not installed (scripts/test.sh installs it)")
    if not (NODE_BANK_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        raise RuntimeError(f"run `npm ci` in {NODE_BANK_DIR} first (scripts/test.sh does)")
    return [
        node,
        str(SERVER_JS),
        "--listen",
        listen,
        "--bank-code",
        bank_code,
        "--cert",
        str(pki.bank_cert(bank_code)),
        "--key",
        str(pki.bank_key(bank_code)),
        "--ca",
        str(pki.ca_cert),
        *(
            arg
            for key_id, pem in (consent_keys or {CONSENT_KEY_ID: pki.consent_public_key}).items()
            for arg in ("--consent-key", f"{key_id}={pem}")
        ),
        "--hub-name",
        HUB_CLIENT_NAME,
        "--data",
        str(data_file),
    ]


class NodeBank:
    """`async with NodeBank(pki, code, data_file) as address`: the bank runs
    for the block and is stopped with SIGTERM after it."""

    def __init__(
        self,
        pki: PkiPaths,
        bank_code: str,
        data_file: Path,
        host: str = "127.0.0.1",
        consent_keys: dict[str, Path] | None = None,
    ) -> None:
        self._command = node_command(pki, bank_code, data_file, f"{host}:0", consent_keys)
        self._host = host
        self._process: asyncio.subprocess.Process | None = None
        # stderr goes to a file, not a pipe: nobody reads it while the bank
        # runs, and a full pipe would block the bank.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __aexit__
        self.address = ""

    async def __aenter__(self) -> str:
        self._process = await asyncio.create_subprocess_exec(
            *self._command, stdout=asyncio.subprocess.PIPE, stderr=self._stderr
        )
        try:
            port = await asyncio.wait_for(self._ready_port(), READY_TIMEOUT)
        except BaseException:
            await self._stop()
            self._stderr.close()
            raise
        self.address = f"{self._host}:{port}"
        return self.address

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()
        self._stderr.close()

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.returncode

    async def _ready_port(self) -> int:
        assert self._process is not None and self._process.stdout is not None
        line = await self._process.stdout.readline()
        if not line.startswith(b"READY "):
            await self._process.wait()
            raise RuntimeError(f"the Node bank did not start: {line!r} {self.stderr_text()[-2000:]}")
        return int(line.split()[1])

    def stderr_text(self) -> str:
        """What the bank wrote to stderr so far (reasons only, never data)."""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    async def _stop(self) -> None:
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
