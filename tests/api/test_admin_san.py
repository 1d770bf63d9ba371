"""Issue 17 item 5: the admin service recognises an operator by a DNS SAN
only; a certificate naming the operator only as a URI or email SAN is
refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from bank_sim.fleet import BankFleet
from cardlookup.admin.v1 import admin_service_pb2 as admin_pb
from cardlookup.admin.v1 import admin_service_pb2_grpc as admin_grpc
from cardlookup.clock import ManualClock
from cardlookup.pki import HUB_SERVER_NAME, OPERATOR_NAME, PkiPaths
from cardlookup.population import Population
from cardlookup.rpc_errors import error_info_of
from cardlookup.tls import channel_credentials
from hub.core.config import HubConfig
from tests.api.conftest import FAST, served_harness
from tests.api.helpers import HubHarness
from tests.sealing.test_san_and_modes import SAN_KINDS, _client_cert


@pytest.fixture
async def admin_hub(
    pki: PkiPaths, population: Population, fleet: BankFleet, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[HubHarness]:
    config = HubConfig.dev(
        pki, fleet.addresses, tmp_path, listen="127.0.0.1:0", admin_listen="127.0.0.1:0", timings=FAST
    )
    async with served_harness(config, pki, population, fleet, clock) as served:
        yield served


@pytest.mark.parametrize("kind", ["uri", "email"])
async def test_the_admin_service_refuses_an_operator_named_by_another_san_type(
    admin_hub: HubHarness, pki: PkiPaths, kind: str
) -> None:
    who = _client_cert(pki, f"operator-as-{kind}", SAN_KINDS[kind](OPERATOR_NAME))
    creds = channel_credentials(pki.ca_cert, pki.cert(who), pki.key(who))
    target = f"127.0.0.1:{admin_hub.server.admin_port}"
    options = [("grpc.ssl_target_name_override", HUB_SERVER_NAME)]
    async with grpc.aio.secure_channel(target, creds, options=options) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await admin_grpc.AdminServiceStub(channel).GetBankHealth(admin_pb.GetBankHealthRequest())
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    info = error_info_of(refused.value)
    assert info is not None and info.reason == "CALLER_NOT_OPERATOR"
