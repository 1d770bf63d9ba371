"""Banks with several addresses (issue 23 item 7): the registry accepts
them beside the single `address` form, and the hub's one channel per bank
fails over between them with gRPC client-side load balancing, so a bank
keeps answering when one of its endpoints stops in the middle of a burst."""

from __future__ import annotations

import dataclasses
import itertools
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from bank_sim.conformance.probe import Probe
from bank_sim.conformance.target import dev_target
from bank_sim.faults import Faults
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from hub.core.config import BankEndpoint, ConfigError, HubConfig, TlsFiles
from hub.core.domain import BankState
from hub.fanout.channels import HEALTH_SERVICE, BankChannels, bank_target, channel_options
from hub.fanout.policy import BankCallPolicy
from tests.bank.test_starter_kit import EXAMPLE as KIT_EXAMPLE
from tests.bank.test_starter_kit import ROOT, ZHANG, kit_server
from tests.hub.helpers import (
    FAST,
    assert_report_is_ground_truth,
    fleet_config,
    hub_config,
    new_query,
    running_engine,
    running_fleet,
    wait_for,
    wait_until,
)
from tests.hub.test_config_file import EXAMPLE, example_dir

CODE = "102"
SINGLE = 'code = "102"\naddress = "127.0.0.1:7100"\n'

POLICY = BankCallPolicy.from_timings(FAST)


def _with_bank_102(tmp_path: Path, pki: PkiPaths, entry: str) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert SINGLE in text
    return example_dir(tmp_path, pki, text.replace(SINGLE, entry))


def test_a_bank_may_list_several_addresses_and_a_balancing_policy(tmp_path: Path, pki: PkiPaths) -> None:
    entry = 'code = "102"\naddresses = ["127.0.0.1:7100", "127.0.0.1:7200"]\nbalancing = "pick_first"\n'
    bank = HubConfig.from_file(_with_bank_102(tmp_path, pki, entry), env={}).banks[0]
    assert bank.all_addresses() == ("127.0.0.1:7100", "127.0.0.1:7200") and bank.address == "127.0.0.1:7100"
    assert bank.balancing == "pick_first"


def test_the_single_address_form_is_unchanged(tmp_path: Path, pki: PkiPaths) -> None:
    bank = HubConfig.from_file(example_dir(tmp_path, pki), env={}).banks[0]
    assert (bank.address, bank.addresses, bank.all_addresses()) == ("127.0.0.1:7100", (), ("127.0.0.1:7100",))
    assert bank_target(bank) == "127.0.0.1:7100"
    assert not any(name == "grpc.service_config" for name, _ in channel_options(bank, POLICY))


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ('code = "102"\n', "banks[0].address"),
        ('code = "102"\naddresses = []\n', "banks[0].addresses"),
        ('code = "102"\naddresses = ["127.0.0.1:7100", "127.0.0.1:7100"]\n', "banks[0].addresses"),
        ('code = "102"\naddresses = ["127.0.0.1:7100", "nowhere"]\n', "banks[0].addresses[1]"),
        ('code = "102"\naddress = "127.0.0.1:7200"\naddresses = ["127.0.0.1:7100"]\n', "banks[0].address"),
        (
            'code = "102"\naddresses = ["127.0.0.1:7100", "127.0.0.1:7200"]\nbalancing = "random"\n',
            "banks[0].balancing",
        ),
    ],
)
def test_bad_bank_addresses_are_refused_naming_the_key(tmp_path: Path, pki: PkiPaths, entry: str, key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        HubConfig.from_file(_with_bank_102(tmp_path, pki, entry), env={})
    assert f"{key}:" in str(refused.value) or f"{key} " in str(refused.value), str(refused.value)


def test_several_addresses_read_back_from_to_toml(tmp_path: Path, pki: PkiPaths) -> None:
    config = HubConfig.dev(pki, {CODE: "127.0.0.1:7102"}, tmp_path / "data", listen="127.0.0.1:0")
    bank = dataclasses.replace(config.banks[0], addresses=("127.0.0.1:7102", "127.0.0.1:7202"), balancing="pick_first")
    config = dataclasses.replace(config, banks=(bank,))
    path = tmp_path / "hub.toml"
    path.write_text(config.to_toml(), encoding="utf-8")
    assert HubConfig.from_file(path, env={}) == config


def test_the_channel_lists_every_endpoint_with_the_banks_policy() -> None:
    bank = BankEndpoint(CODE, "x", "x", "127.0.0.1:7100", addresses=("127.0.0.1:7100", "localhost:7200"))
    target = bank_target(bank)
    assert target.startswith(("ipv4:127.0.0.1:7100,", "ipv6:")) and "7200" in target
    (config,) = [json.loads(str(v)) for name, v in channel_options(bank, POLICY) if name == "grpc.service_config"]
    assert config == {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": HEALTH_SERVICE},
    }
    pick_first = dataclasses.replace(bank, balancing="pick_first")
    (config,) = [json.loads(str(v)) for name, v in channel_options(pick_first, POLICY) if name == "grpc.service_config"]
    assert config == {"loadBalancingConfig": [{"pick_first": {}}]}


@pytest.mark.both_stores
async def test_a_bank_with_two_addresses_keeps_answering_when_one_stops_mid_burst(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> None:
    people = [
        p
        for p in population.eligible_people(clock.now().date())
        if population.expected_answer(CODE, p.id_number).listed
    ]
    burst = [new_query(p, [CODE]) for p in people[:40]]
    slow = {CODE: Faults(latency=0.05)}  # calls are in flight when a site stops
    async with (
        running_fleet(fleet_config(pki, population, clock, [CODE], slow)) as site_a,
        running_fleet(fleet_config(pki, population, clock, [CODE], slow)) as site_b,
    ):
        config = hub_config(pki, {CODE: site_a.address(CODE)}, tmp_path)
        two = dataclasses.replace(config.banks[0], addresses=(site_a.address(CODE), site_b.address(CODE)))
        async with running_engine(dataclasses.replace(config, banks=(two,)), clock) as engine:
            for query in burst[:20]:
                await engine.submit(query)
            # round_robin: both sites take calls...
            await wait_until(lambda: site_a.call_count(CODE) >= 2 and site_b.call_count(CODE) >= 2, within=120)
            await site_a.stop(grace=0)  # ...until site A stops, with calls in flight
            calls_at_a = site_a.call_count(CODE)
            for query in burst[20:]:
                await engine.submit(query)
            records = [await wait_for(engine, q.query_id, within=120) for q in burst]
            assert [r.banks[0].state for r in records] == [BankState.ANSWERED] * len(burst)
            assert site_a.call_count(CODE) == calls_at_a and site_b.call_count(CODE) >= len(burst) - calls_at_a
            for person, query in list(zip(people, burst, strict=False))[-3:]:
                assert_report_is_ground_truth(await engine.read_report(query.query_id), population, person, [CODE])


async def test_round_robin_stops_calling_an_endpoint_that_drains(pki: PkiPaths, tmp_path: Path) -> None:
    """Two starter-kit processes serve bank 102; one drains (SIGTERM:
    NOT_SERVING, still serving). The hub's health-checked channel stops
    sending it calls; the other answers them all. Each kit's consent audit
    log counts the calls it accepted."""
    logs = {site: tmp_path / f"audit-{site}.jsonl" for site in "ab"}

    def accepted(site: str) -> int:
        path = logs[site]
        return path.read_text(encoding="utf-8").count('"verdict": "accepted"') if path.exists() else 0

    records = ["--records", str(KIT_EXAMPLE)]
    async with (
        kit_server(pki, ROOT, records, "--audit-log", str(logs["a"]), "--drain-seconds", "600") as (site_a, kit_a),
        kit_server(pki, ROOT, records, "--audit-log", str(logs["b"])) as (site_b, _),
    ):
        endpoint = BankEndpoint(CODE, "x", "x", site_a, addresses=(site_a, site_b))
        channels = BankChannels(TlsFiles(pki.ca_cert, pki.cert("hub-client"), pki.key("hub-client")), POLICY)
        probe = Probe.for_target(dev_target(pki, site_a, CODE, ZHANG))
        try:
            stub: Any = channels.stub(endpoint)

            async def calls(n: int) -> None:
                for _ in range(n):
                    answer = [m async for m in stub.ListCards(probe.valid_request(), timeout=20)]
                    assert answer[-1].WhichOneof("item") == "summary"

            await calls(10)
            assert accepted("a") > 0 and accepted("b") > 0  # round_robin: both sites
            kit_a.send_signal(signal.SIGTERM)
            for _ in itertools.count():  # until the channel has seen A's NOT_SERVING
                before = accepted("a")
                await calls(10)
                if accepted("a") == before:
                    break
            before_a, before_b = accepted("a"), accepted("b")
            await calls(20)
            assert (accepted("a"), accepted("b")) == (before_a, before_b + 20)
            assert kit_a.returncode is None  # A still runs (drains): only its health told the hub
        finally:
            await channels.close()
