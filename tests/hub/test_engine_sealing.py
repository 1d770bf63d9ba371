"""Issue 17 on the engine alone (`cardlookup-hub --without-api`, any
replica): every finished query is sealed to its user by the engine's own
sealer, never with the hub's envelope; the subject and the held watch
records leave memory when their last user leaves."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cardlookup import sealed_report as sr
from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from hub.keys.crypto import Sealed
from hub.keys.user_sealing import DEVICE, PASSWORD, hpke_kind, is_hpke_sealed
from hub.store.db import open_database
from hub.store.device_keys import DeviceKeyStore
from hub.store.queries import Progress
from tests.hub.helpers import (
    expected_cards,
    fleet_config,
    hub_config,
    new_query,
    rich_person,
    running_engine,
    running_fleet,
    wait_for,
    wait_until,
)

CODES = list(DEFAULT_BANK_CODES)[:4]


def _cards(data: dict[str, Any]) -> Counter[tuple[Any, ...]]:
    return Counter((c[0], c[1], c[2], c[3], c[4]) for c in data["cards"])


@pytest.mark.parametrize("kind", ["device", "password"])
async def test_an_engine_only_hub_seals_every_answer_and_the_report_to_the_user(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path, kind: str
) -> None:
    person = rich_person(population, clock.now().date(), CODES, min_banks=2)
    key = X25519PrivateKey.generate()
    async with running_fleet(fleet_config(pki, population, clock, CODES)) as fleet:
        config = hub_config(pki, fleet.addresses, tmp_path)
        async with running_engine(config, clock) as engine:
            db = engine._db
            if kind == "device":
                await DeviceKeyStore(db).put(person.user_id, sr.public_raw(key), clock.now())
            else:  # a payment-password key row, as issue 12's EnrollUser writes it

                async def put(conn: object) -> None:
                    await conn.execute(  # type: ignore[attr-defined]
                        "INSERT INTO user_keys (user_id, epoch, public_key, salt, update_time) VALUES (?, 1, ?, ?, 0)",
                        (person.user_id, sr.public_raw(key), b"\0" * 16),
                    )

                await db.write(put)
            query = new_query(person, CODES)
            await engine.submit(query)
            await wait_for(engine, query.query_id)
            with pytest.raises(ValueError, match="opener"):
                await engine.read_report(query.query_id)  # the hub's keys do not open it
        db = await open_database(config.database)
        try:
            row = await db.fetch_one("SELECT data_key, ciphertext FROM reports WHERE query_id = ?", (query.query_id,))
        finally:
            await db.close()
    sealed = Sealed(bytes(row["data_key"]), bytes(row["ciphertext"]))
    assert is_hpke_sealed(sealed) and hpke_kind(sealed) == (DEVICE if kind == "device" else PASSWORD)
    data = sr.assemble(sr.open_bundle(key, sealed.ciphertext, query.query_id))
    assert _cards(data) == expected_cards(population, person, CODES)
    assert [b[0] for b in data["banks"]] == CODES


async def test_the_subject_leaves_memory_when_this_replicas_last_call_ends_whoever_completes(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    person = rich_person(population, clock.now().date(), CODES, min_banks=2)
    async with running_fleet(fleet_config(pki, population, clock, CODES)) as fleet:
        config = hub_config(pki, fleet.addresses, tmp_path)
        async with running_engine(config, clock) as engine:
            completions: list[str] = []

            async def completed_elsewhere(query_id: str) -> None:
                completions.append(query_id)  # another replica builds the report

            engine._completion.complete = completed_elsewhere  # type: ignore[method-assign]
            query = new_query(person, CODES)
            await engine.submit(query)
            await wait_until(lambda: completions == [query.query_id] and not engine.lanes.running())
            assert query.query_id not in engine._tasks.queries  # the subject and the request's times
            assert query.query_id not in engine._sealer._cache  # the owner and key


async def test_the_held_watch_record_is_dropped_when_the_last_watcher_leaves(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    person = rich_person(population, clock.now().date(), CODES, min_banks=2)
    async with running_fleet(fleet_config(pki, population, clock, CODES)) as fleet:
        config = hub_config(pki, fleet.addresses, tmp_path)
        async with running_engine(config, clock, run_fanout=False) as engine:
            query = new_query(person, CODES)
            await engine.submit(query)
            watch = engine.watch(query.query_id)
            await anext(watch)  # the snapshot: the watcher is registered
            # The last bank's outcome, held until READY (which never comes here).
            engine._watch.held[query.query_id] = Progress(query.query_id, None, 0)
            await watch.aclose()
            await asyncio.sleep(0)
            assert query.query_id not in engine._watch.held
