"""What sealing to the user costs (issue 17), per bank answer and per
GetReport, measured in this process on the real code paths.

    .venv/bin/python -m bench.sealing [--banks 16] [--cards 3] [--rounds 2000]

- Arrival: `hub.reports.sealing.AnswerSealer` sealing one validated answer of
  `--cards` cards to the user's key (one HPKE message; two when the user
  tracks new cards), against what it replaced (the hub envelope). The key
  lookup is cached per query, so the store read is paid once per query and
  is not part of this figure.
- READY: the summary sealed and bundled with `--banks` sealed answers.
- GetReport: the hub's part for a device-key user (hand the bundle over:
  nothing to open) and for a password-key user (one argon2id derivation of
  the report key, then open and assemble the bundle); the device's part
  (open, assemble, build the pb.Report). The password check (R10's
  argon2id) comes on top for both and is printed apart.

Wall-clock µs (perf_counter) and CPU µs (process_time), mean per operation.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import argon2
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cardlookup import sealed_report as sr
from client import device_key
from hub.core.domain import BankState, ReportCard
from hub.fanout.validation import BankAnswer
from hub.identity.passwords import DEFAULT_PARAMETERS
from hub.keys.crypto import Envelope, KeyedHash
from hub.keys.user_sealing import DEVICE, derive_private_key
from hub.reports.report import encode_answer
from hub.reports.sealing import AnswerSealer, SealingKey
from hub.store.db import open_database
from hub.store.device_keys import DeviceKeyStore


def _measure(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    fn()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - wall) / rounds * 1e6, (time.process_time() - cpu) / rounds * 1e6


class _Keys:
    """The two hub keys the sealer uses (no files, no store)."""

    def __init__(self) -> None:
        self.keyed_hash = KeyedHash(os.urandom(32))
        self.envelope = Envelope(os.urandom(32), "bench")


def _answer(bank: str, cards: int) -> BankAnswer:
    return BankAnswer(
        bank,
        tuple(ReportCard(bank, "debit", "6222", f"{i:04d}", 19, f"ref-{bank}-{i}") for i in range(cards)),
        {"NO_PHONE_ON_FILE": 1},
    )


async def _key_read(rounds: int) -> tuple[float, float]:
    """The one statement per answer that reads the user's key (SQLite)."""
    with tempfile.TemporaryDirectory() as tmp:
        db = await open_database(Path(tmp) / "hub.db")
        try:
            sealer = AnswerSealer(db, _Keys())  # type: ignore[arg-type]
            await sealer.migrate()
            await DeviceKeyStore(db).put("u1", sr.public_raw(X25519PrivateKey.generate()), dt.datetime.now(dt.UTC))
            await sealer.key_for("u1")
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(rounds):
                await sealer.key_for("u1")
            return (time.perf_counter() - wall) / rounds * 1e6, (time.process_time() - cpu) / rounds * 1e6
        finally:
            await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--banks", type=int, default=16)
    parser.add_argument("--cards", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    keys = _Keys()
    sealer = AnswerSealer.__new__(AnswerSealer)
    sealer._keys = keys  # type: ignore[assignment]  # only the in-memory sealing is measured
    device = X25519PrivateKey.generate()
    key = SealingKey(DEVICE, 1, sr.public_raw(device))
    qid = "6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    answer = _answer("102", args.cards)
    rows: list[tuple[str, float, float]] = []

    def row(name: str, fn: Callable[[], object], rounds: int = args.rounds) -> None:
        wall, cpu = _measure(fn, rounds)
        rows.append((name, wall, cpu))

    row("arrival: envelope (before issue 17)", lambda: keys.envelope.seal(encode_answer(answer), b"answer:q:102"))
    row("arrival: HPKE to the user", lambda: sealer._seal_parts(qid, "u1", key, False, answer))
    row("arrival: HPKE, new cards tracked", lambda: sealer._seal_parts(qid, "u1", key, True, answer))

    banks = [f"{100 + i}" for i in range(args.banks)]
    parts = [sealer._seal_parts(qid, "u1", key, False, _answer(b, args.cards)) for b in banks]
    now = dt.datetime.now(dt.UTC)
    summary = {
        "query_id": qid,
        "generate_time": now.isoformat(),
        "expire_time": (now + dt.timedelta(days=7)).isoformat(),
        "banks": [[b, BankState.ANSWERED.value, ""] for b in banks],
    }

    def ready() -> bytes:
        i = sr.info(sr.SUMMARY, qid)
        message = sr.seal(key.public_key, json.dumps(summary).encode(), i)
        entries = [(i, message)] + [e for p in parts for e in sr.decode_bundle(p.ciphertext)]
        return sr.encode_bundle(entries)

    row(f"READY: summary + bundle of {args.banks}", ready, max(1, args.rounds // 10))
    bundle = ready()
    row(f"GetReport, hub, device user ({args.banks} banks)", lambda: bundle, args.rounds)
    row(
        f"GetReport, open + assemble ({args.banks} banks)",
        lambda: sr.assemble(sr.open_bundle(device, bundle, qid)),
        max(1, args.rounds // 10),
    )
    row(
        f"GetReport, device: open + pb.Report ({args.banks} banks)",
        lambda: device_key.to_proto(sr.assemble(sr.open_bundle(device, bundle, qid)), "u1"),
        max(1, args.rounds // 10),
    )
    row(
        "GetReport, hub, password user: argon2id report key",
        lambda: derive_private_key("123456", b"\0" * 16, b"\1" * 32, DEFAULT_PARAMETERS),
        10,
    )
    hasher = argon2.PasswordHasher.from_parameters(DEFAULT_PARAMETERS)
    stored = hasher.hash("123456")
    row("GetReport, both: R10 password check (argon2id)", lambda: hasher.verify(stored, "123456"), 10)
    rows.append(("arrival: the key read (SQLite, one statement)", *asyncio.run(_key_read(args.rounds // 4))))
    print(f"{'operation':58} {'wall µs':>10} {'CPU µs':>10}")
    for name, wall, cpu in rows:
        print(f"{name:58} {wall:10.1f} {cpu:10.1f}")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"({len(bundle)} bytes of sealed report: {args.banks} banks of {args.cards} cards; load {load})")


if __name__ == "__main__":
    main()
