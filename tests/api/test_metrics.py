"""Metrics (issue 11 item 1): a real hub and the real bank fleet, each with
its Prometheus endpoint, and the real client; after a journey (a refused
call, a bank that fails transiently, a bank that leaks a full card number)
both expositions, fetched over HTTP, carry per-bank figures, and the hub's
carries no personal data (R14)."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bank_sim.faults import Faults, Misbehaviour
from bank_sim.fleet import BankFleet, FleetConfig
from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from hub.core.config import HubConfig
from tests.api.conftest import FAST, served_harness
from tests.api.helpers import HubHarness, refused

LEAKY_BANK, FLAKY_BANK = "102", "103"


@pytest.fixture
async def metered_fleet(pki: PkiPaths, population: Population, clock: ManualClock) -> AsyncIterator[BankFleet]:
    fleet = BankFleet(FleetConfig.default(pki, population, count=16, clock=clock, admin_port=None, metrics_port=0))
    await fleet.start()
    yield fleet
    await fleet.stop(grace=0)


@pytest.fixture
async def metered(
    pki: PkiPaths, population: Population, metered_fleet: BankFleet, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[HubHarness]:
    fleet = metered_fleet
    config = HubConfig.dev(
        pki, fleet.addresses, tmp_path, listen="127.0.0.1:0", metrics_listen="127.0.0.1:0", timings=FAST
    )
    async with served_harness(config, pki, population, fleet, clock) as served:
        yield served


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def value(text: str, name: str, **labels: str) -> float:
    """The sample `name{labels...}` (labels in any order, others allowed)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels}")


async def test_metrics_show_per_bank_figures_and_no_personal_data(metered: HubHarness) -> None:
    hub = metered
    port = hub.server.metrics_port
    assert port > 0
    hub.fleet.set_faults(LEAKY_BANK, Faults(misbehaviour=Misbehaviour.FULL_CARD_NUMBER))
    hub.fleet.set_faults(FLAKY_BANK, Faults(error_rate=1.0))
    people = [hub.eligible(i) for i in range(2)]
    await refused("USER_NOT_FOUND", hub.client.start_verification("nobody-" + people[0].user_id))
    for i, person in enumerate(people):
        await hub.enrol(person)
        query = await hub.create(person, DEFAULT_BANK_CODES)
        if i == 0:  # the flaky bank fails until it has been retried, then recovers
            for _ in range(500):
                if "cardlookup_hub_bank_retries_total{" in hub.server.metrics.exposition():
                    break
                await asyncio.sleep(0.02)
            hub.fleet.set_faults(FLAKY_BANK, Faults())
            hub.server.engine.wake()
        await hub.until_ready(person, query.query_id)
        report = await hub.client.get_report(person.user_id, query.query_id, person.payment_password)
        assert report.cards
    hub.server.engine.wake()
    text = ""
    for _ in range(200):  # the sweeper refreshes the store gauges every 50 ms
        text = await asyncio.to_thread(scrape, port)
        if "cardlookup_hub_queries{" in text and value(text, "cardlookup_hub_queries", state="READY") >= 2:
            break
        await asyncio.sleep(0.05)

    # Per-bank figures, for every bank the queries went to.
    for code in DEFAULT_BANK_CODES:
        assert value(text, "cardlookup_hub_bank_attempts_total", bank=code) >= 2
        assert value(text, "cardlookup_hub_bank_call_seconds_count", bank=code) >= 1
        assert value(text, "cardlookup_hub_bank_breaker_state", bank=code) in (0, 1, 2)
        assert value(text, "cardlookup_hub_bank_in_flight", bank=code) == 0
    assert value(text, "cardlookup_hub_bank_outcomes_total", bank="104", state="ANSWERED") == 2
    assert value(text, "cardlookup_hub_bank_outcomes_total", bank=LEAKY_BANK, reason="FULL_CARD_NUMBER") == 2
    assert value(text, "cardlookup_hub_bank_retries_total", bank=FLAKY_BANK, reason="UNAVAILABLE") >= 1
    assert value(text, "cardlookup_hub_queries", state="READY") == 2
    assert value(text, "cardlookup_hub_oldest_report_age_seconds") >= 0
    assert value(text, "cardlookup_hub_sms_sent_total", kind="VERIFICATION_CODE") == 2
    assert value(text, "cardlookup_hub_sms_sent_total", kind="REPORT_READY") >= 1
    assert value(text, "cardlookup_hub_store_operation_seconds_count", operation="write") > 0
    assert value(text, "cardlookup_hub_store_operation_seconds_count", operation="read") > 0
    assert value(text, "cardlookup_hub_api_calls_total", method="CreateQuery", code="OK") == 2
    assert value(text, "cardlookup_hub_api_calls_total", method="StartVerification", code="NOT_FOUND") == 1
    assert value(text, "cardlookup_hub_api_calls_total", method="WatchQuery", code="OK") == 2
    assert value(text, "cardlookup_hub_watch_subscribers") == 0

    # No personal data anywhere in the exposition: names, ID numbers,
    # phones, card numbers (full, and no card digits as label values).
    personal: list[str] = []
    for person in people:
        personal += [person.full_name, person.id_number, person.phone, person.user_id]
        for code in DEFAULT_BANK_CODES:
            personal += [c.number for c in hub.population.cards_at(code, person.id_number)]
    assert len(personal) > 20
    for secret in personal:
        assert secret not in text
    label_values = re.findall(r'="([^"]*)"', text)
    assert label_values
    assert not [v for v in label_values if re.search(r"\d{11,}", v)], "a phone, ID or card number as a label"
    assert not re.search(r"[\u4e00-\u9fff]", text), "CJK text (a name) in the metrics"

    # The simulated banks count what they were asked, per bank and status code.
    assert hub.fleet.metrics_port
    banks = await asyncio.to_thread(scrape, hub.fleet.metrics_port)
    for code in set(DEFAULT_BANK_CODES) - {LEAKY_BANK}:  # the hub cuts the leaky bank's stream short
        assert value(banks, "cardlookup_banksim_calls_total", bank=code, method="ListCards", code="OK") >= 2
    flaky = [
        line
        for line in banks.splitlines()
        if line.startswith("cardlookup_banksim_calls_total{") and f'bank="{FLAKY_BANK}"' in line
    ]
    failed = sum(float(line.rsplit(" ", 1)[1]) for line in flaky if 'code="OK"' not in line)
    assert failed >= 1, flaky  # the simulated failures, counted by status code
    assert value(banks, "cardlookup_banksim_in_flight", bank="104") == 0
