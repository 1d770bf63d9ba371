"""BankFleet life cycle: ports, shutdown with calls in flight, key config."""

from __future__ import annotations

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bank_sim.faults import Faults
from bank_sim.fleet import BankFleet, BankSimConfig, FleetConfig
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.clock import ManualClock
from cardlookup.devpg import free_port
from cardlookup.pki import CONSENT_KEY_ID, PkiPaths, load_ed25519_public
from cardlookup.population import Person, Population
from cardlookup.rpc_errors import error_info_of
from tests.bank.caller import bank_caller


async def test_fixed_ports_and_a_second_fleet_on_them_fails_cleanly(
    pki: PkiPaths, population: Population, customer: tuple[Person, str], clock: ManualClock
) -> None:
    person, code = customer
    port = free_port()  # a number ahead: fixed ports are what this test is about
    banks = (BankSimConfig(code, port=port), BankSimConfig("403"))
    async with BankFleet(FleetConfig(pki=pki, banks=banks, population=population, clock=clock)) as fleet:
        assert fleet.address(code) == f"127.0.0.1:{port}"
        assert list(fleet.addresses) == [code, "403"]
        rival = BankFleet(
            FleetConfig(
                pki=pki,
                banks=(BankSimConfig("104"), BankSimConfig(code, port=port)),
                population=population,
                admin_port=None,
            )
        )
        with pytest.raises(OSError, match=f"bank {code}"):
            await rival.start()
        assert rival.addresses == {}  # what it had started was stopped again
        async with bank_caller(pki, fleet.addresses) as caller:
            got = await caller.list_cards(
                code, caller.request(code, person.full_name, person.id_number, now=clock.now())
            )
        assert got.summary is not None


async def test_stop_ends_stalled_calls_after_the_grace_period(
    pki: PkiPaths, population: Population, customer: tuple[Person, str], clock: ManualClock
) -> None:
    person, code = customer
    fleet = BankFleet(FleetConfig.default(pki, population, clock=clock))
    await fleet.start()
    fleet.set_faults(code, Faults(stall_after_cards=1))
    async with bank_caller(pki, fleet.addresses) as caller:
        request = caller.request(code, person.full_name, person.id_number, now=clock.now())
        call = caller.stubs[code].ListCards(request, timeout=30)
        first = await call.read()
        assert isinstance(first, bank_pb.ListCardsResponse) and first.HasField("card")  # now stalled
        await fleet.stop(grace=0.2)  # returns although the stream is stalled mid-answer
        with pytest.raises(grpc.aio.AioRpcError):
            await call.read()


def test_fleet_rejects_duplicate_codes_and_unknown_banks(pki: PkiPaths, population: Population) -> None:
    with pytest.raises(ValueError, match="unique"):
        BankFleet(FleetConfig(pki=pki, banks=(BankSimConfig("102"), BankSimConfig("102")), population=population))
    fleet = BankFleet(FleetConfig.default(pki, population, count=2))
    with pytest.raises(KeyError):
        fleet.set_faults("999", Faults())
    with pytest.raises(TypeError):
        fleet.set_faults("102", {"down": True})  # type: ignore[arg-type]
    assert fleet.faults("103") == Faults() and fleet.call_count("103") == 0


@pytest.mark.parametrize(
    ("trusted", "reason"),
    [("rotated", "CONSENT_UNKNOWN_KEY"), ("other_key_same_id", "CONSENT_SIGNATURE_INVALID"), ("both", None)],
)
async def test_trusted_consent_keys_are_configurable(
    pki: PkiPaths,
    population: Population,
    customer: tuple[Person, str],
    clock: ManualClock,
    trusted: str,
    reason: str | None,
) -> None:
    person, code = customer
    other = Ed25519PrivateKey.generate().public_key()
    keys = {
        "rotated": {"hub-consent-2": other},
        "other_key_same_id": {CONSENT_KEY_ID: other},
        "both": {"hub-consent-2": other, CONSENT_KEY_ID: load_ed25519_public(pki.consent_public_key)},
    }[trusted]
    config = FleetConfig.default(pki, population, count=16, clock=clock, trusted_consent_keys=keys, admin_port=None)
    async with BankFleet(config) as fleet, bank_caller(pki, fleet.addresses) as caller:
        assert fleet.admin_address is None
        request = caller.request(code, person.full_name, person.id_number, now=clock.now())
        if reason is None:
            assert (await caller.list_cards(code, request)).summary is not None
            return
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await caller.list_cards(code, request)
    info = error_info_of(caught.value)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED and info is not None and info.reason == reason
