"""The operator admin service (issue 11 item 5) on its own mTLS port: only a
certificate whose DNS SAN names an operator may call it; bank health after
a real journey; `cardlookup-admin` prints it as a table; drain and log level."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bank_sim.faults import Faults
from bank_sim.fleet import BankFleet
from cardlookup.admin.v1 import admin_service_pb2 as pb
from cardlookup.admin.v1 import admin_service_pb2_grpc as admin_grpc
from cardlookup.clock import ManualClock
from cardlookup.pki import HUB_SERVER_NAME, OPERATOR_NAME, PkiPaths, _issue, _load_or_create_ca, _write
from cardlookup.population import Population
from cardlookup.rpc_errors import error_info_of
from cardlookup.tls import channel_credentials
from hub.admin import cli
from hub.core.config import HubConfig
from hub.core.domain import QueryState
from tests.api.conftest import FAST, served_harness
from tests.api.helpers import HubHarness

DOWN_BANK = "105"


@pytest.fixture
async def admin_hub(
    pki: PkiPaths, population: Population, fleet: BankFleet, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[HubHarness]:
    config = HubConfig.dev(
        pki, fleet.addresses, tmp_path, listen="127.0.0.1:0", admin_listen="127.0.0.1:0", timings=FAST
    )
    async with served_harness(config, pki, population, fleet, clock) as served:
        yield served


def admin_channel(pki: PkiPaths, port: int, who: str) -> grpc.aio.Channel:
    creds = channel_credentials(pki.ca_cert, pki.cert(who), pki.key(who))
    return grpc.aio.secure_channel(
        f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", HUB_SERVER_NAME)]
    )


def cn_only_operator(pki: PkiPaths) -> str:
    """A CA-issued client certificate whose CN says operator but whose DNS
    SAN does not: the admin service decides by the SAN."""
    name = "cn-only-operator"
    if not pki.cert(name).exists():
        now = dt.datetime.now(dt.UTC)
        ca_key, ca_name = _load_or_create_ca(pki, now)
        cert, key = _issue(
            ca_key,
            ca_name,
            OPERATOR_NAME,
            ["someone.cardlookup.internal"],
            [],
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            now,
            1,
        )
        _write(pki.key(name), key, private=True)
        _write(pki.cert(name), cert)
    return name


@pytest.mark.parametrize("who", ["app-backend", "hub-client", "cn-only-operator"])
async def test_admin_service_refuses_a_non_operator_certificate(admin_hub: HubHarness, pki: PkiPaths, who: str) -> None:
    if who == "cn-only-operator":
        cn_only_operator(pki)
    calls = [
        lambda stub: stub.GetBankHealth(pb.GetBankHealthRequest()),
        lambda stub: stub.Reload(pb.ReloadRequest()),
        lambda stub: stub.Drain(pb.DrainRequest()),
        lambda stub: stub.SetLogLevel(pb.SetLogLevelRequest(logger="hub", level="DEBUG")),
    ]
    async with admin_channel(pki, admin_hub.server.admin_port, who) as channel:
        stub = admin_grpc.AdminServiceStub(channel)
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(stub)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            info = error_info_of(refused.value)
            assert info is not None and info.reason == "CALLER_NOT_OPERATOR"
            assert info.domain == "cardlookup.admin.v1"
    assert not admin_hub.server.draining  # the refused Drain changed nothing


async def test_bank_health_after_a_journey_and_the_admin_command(
    admin_hub: HubHarness, pki: PkiPaths, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")  # rich's width for the captured table
    hub = admin_hub
    hub.fleet.set_faults(DOWN_BANK, Faults(down=True))
    person = hub.eligible(0)
    await hub.enrol(person)
    query = await hub.create(person, ["102", "103", DOWN_BANK])
    async with admin_channel(pki, hub.server.admin_port, "operator") as channel:
        stub = admin_grpc.AdminServiceStub(channel)
        for _ in range(500):
            rows = {b.bank_code: b for b in (await stub.GetBankHealth(pb.GetBankHealthRequest())).banks}
            healthy_answered = all(rows[c].success_rate > 0 and rows[c].recent_calls for c in ("102", "103"))
            if healthy_answered and rows[DOWN_BANK].recent_calls >= 5:
                break
            await asyncio.sleep(0.02)
        assert [b.code for b in hub.server.config.banks] == list(rows)
        ok, down = rows["102"], rows[DOWN_BANK]
        # A healthy bank answered (on a loaded machine a first attempt may still fail and be retried).
        assert ok.success_rate > 0 and ok.latency_p99_seconds >= ok.latency_p50_seconds > 0
        assert down.success_rate == 0.0 and down.last_error_reason == "UNAVAILABLE"
        assert down.breaker_state in (pb.BREAKER_STATE_OPEN, pb.BREAKER_STATE_HALF_OPEN)
        assert rows["316"].recent_calls == 0 and rows["316"].success_rate == 1.0

        # The command shows the same as a table (sync gRPC: off the hub's loop).
        await asyncio.to_thread(
            cli.main, ["--target", f"127.0.0.1:{hub.server.admin_port}", "--pki", str(pki.root), "health"]
        )
        table = capsys.readouterr().out
        assert "bank health" in table and "UNAVAILABLE" in table and "100.0%" in table and "open" in table
        assert "中国工商银行" in table

        # Log level at run time.
        before = logging.getLogger("hub.fanout").getEffectiveLevel()
        try:
            done = await stub.SetLogLevel(pb.SetLogLevelRequest(logger="hub.fanout", level="debug"))
            assert done.level == "DEBUG" and logging.getLogger("hub.fanout").level == logging.DEBUG
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await stub.SetLogLevel(pb.SetLogLevelRequest(logger="grpc", level="DEBUG"))
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        finally:
            logging.getLogger("hub.fanout").setLevel(before)

        # Drain: health says NOT_SERVING; the running query still finishes.
        drained = await stub.Drain(pb.DrainRequest())
        assert drained.bank_calls_in_flight >= 0
    async with admin_channel(pki, hub.server.port, "app-backend") as api:
        health = await health_pb2_grpc.HealthStub(api).Check(health_pb2.HealthCheckRequest(service=""))
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
    hub.fleet.set_faults(DOWN_BANK, Faults())
    hub.server.engine.wake()
    # A drained hub gets no calls from health-checking clients (they go to
    # other replicas), so the engine itself is asked: the query finishes.
    async with asyncio.timeout(60):
        # The state lives in the store, with no event to await.
        while (record := await hub.server.engine.get(query.query_id)) is None or record.state != QueryState.READY:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert {b.bank_code for b in record.banks} == {"102", "103", DOWN_BANK}


async def test_the_admin_command_reports_a_refusal_in_one_line(
    admin_hub: HubHarness, pki: PkiPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--target",
        f"127.0.0.1:{admin_hub.server.admin_port}",
        "--ca",
        str(pki.ca_cert),
        "--cert",
        str(pki.cert("app-backend")),
        "--key",
        str(pki.key("app-backend")),
        "reload",
    ]
    with pytest.raises(SystemExit) as exited:
        await asyncio.to_thread(cli.main, argv)
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cardlookup-admin: PERMISSION_DENIED CALLER_NOT_OPERATOR:") and "\n" not in err
