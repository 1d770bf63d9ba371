"""The fleet's admin API changes fault switches at run time, over mTLS."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import pytest

from bank_sim.admin import faults_from_proto, faults_to_proto
from bank_sim.admin_client import AdminClient
from bank_sim.faults import Faults, Misbehaviour
from bank_sim.fleet import BankFleet
from cardlookup.banksim.v1 import bank_sim_admin_pb2 as admin_pb
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths, issue_client_certificate
from cardlookup.population import Person
from cardlookup.rpc_errors import error_info_of
from tests.bank.caller import BankCaller

EVERYTHING = Faults(
    latency=0.25,
    latency_jitter=0.5,
    error_rate=0.125,
    error_code="RESOURCE_EXHAUSTED",
    down=True,
    outages=(
        (dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC), dt.datetime(2026, 1, 5, 11, tzinfo=dt.UTC)),
        (dt.datetime(2026, 1, 6, 0, tzinfo=dt.UTC), dt.datetime(2026, 1, 6, 0, 30, tzinfo=dt.UTC)),
    ),
    break_after_cards=0,
    stall_after_cards=3,
    max_concurrent=4,
    misbehaviour=Misbehaviour.OVERSIZED_MESSAGE,
)


@pytest.mark.parametrize("faults", [Faults(), EVERYTHING, *(Faults(misbehaviour=m) for m in Misbehaviour)])
def test_faults_survive_the_round_trip_through_protobuf(faults: Faults) -> None:
    assert faults_from_proto(faults_to_proto(faults)) == faults


async def test_set_faults_over_the_admin_api_takes_effect_on_the_next_call(
    pki: PkiPaths, fleet: BankFleet, caller: BankCaller, customer: tuple[Person, str], clock: ManualClock
) -> None:
    person, code = customer
    request = caller.request(code, person.full_name, person.id_number, now=clock.now())
    assert fleet.admin_address is not None
    async with AdminClient.connect(pki, fleet.admin_address, fleet.admin_server_name) as admin:
        assert await admin.set_faults(code, Faults(down=True)) == Faults(down=True)
        assert fleet.faults(code) == Faults(down=True)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await caller.list_cards(code, request)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        await admin.set_faults(code, EVERYTHING)
        assert await admin.get_faults(code) == EVERYTHING
        await admin.set_faults(code, Faults())
        assert (await caller.list_cards(code, request)).summary is not None
        listing = await admin.list_banks()
    assert [b.code for b in listing] == list(fleet.addresses)
    by_code = {b.code: b for b in listing}
    assert by_code[code].address == fleet.address(code)
    assert by_code[code].call_count == 2 and by_code["403"].call_count == 0


async def test_the_app_backend_certificate_may_use_the_admin_api(pki: PkiPaths, fleet: BankFleet) -> None:
    assert fleet.admin_address is not None
    async with AdminClient.connect(pki, fleet.admin_address, fleet.admin_server_name, identity="app-backend") as a:
        assert len(await a.list_banks()) == 16


async def test_admin_api_refuses_bad_requests_with_reasons(pki: PkiPaths, fleet: BankFleet) -> None:
    assert fleet.admin_address is not None
    async with AdminClient.connect(pki, fleet.admin_address, fleet.admin_server_name) as admin:
        stub = admin._stub
        cases = [
            (admin_pb.SetFaultsRequest(bank_code="999", faults=admin_pb.Faults()), "NOT_FOUND", "UNKNOWN_BANK"),
            (admin_pb.SetFaultsRequest(bank_code="102"), "INVALID_ARGUMENT", "INVALID_FAULTS"),
            (
                admin_pb.SetFaultsRequest(bank_code="102", faults=admin_pb.Faults(error_rate=1.5)),
                "INVALID_ARGUMENT",
                "INVALID_FAULTS",
            ),
            (
                admin_pb.SetFaultsRequest(bank_code="102", faults=admin_pb.Faults(error_code="OK")),
                "INVALID_ARGUMENT",
                "INVALID_FAULTS",
            ),
            (
                admin_pb.SetFaultsRequest(bank_code="102", faults=admin_pb.Faults(max_concurrent=0)),
                "INVALID_ARGUMENT",
                "INVALID_FAULTS",
            ),
            (
                admin_pb.SetFaultsRequest(bank_code="102", faults=admin_pb.Faults(outages=[admin_pb.OutageWindow()])),
                "INVALID_ARGUMENT",
                "INVALID_FAULTS",
            ),
            (admin_pb.SetFaultsRequest(faults=admin_pb.Faults()), "INVALID_ARGUMENT", "INVALID_REQUEST"),
        ]
        for request, code, reason in cases:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.SetFaults(request, timeout=5)
            info = error_info_of(caught.value)
            assert (caught.value.code().name, info and info.reason) == (code, reason), request
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetFaults(admin_pb.GetFaultsRequest(bank_code="999"), timeout=5)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert fleet.faults("102") == Faults()  # nothing was changed by the refused calls


async def test_another_client_of_the_same_ca_cannot_use_the_admin_api(
    pki: PkiPaths, fleet: BankFleet, tmp_path: Path
) -> None:
    issue_client_certificate(pki, "stranger", "stranger.cardlookup.internal")
    assert fleet.admin_address is not None
    async with AdminClient.connect(pki, fleet.admin_address, fleet.admin_server_name, identity="stranger") as a:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await a.set_faults("102", Faults(down=True))
    info = error_info_of(caught.value)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert info is not None and info.reason == "CALLER_NOT_ALLOWED"
    assert fleet.faults("102") == Faults()
