"""A reload checks everything before it applies anything, and says exactly
what changed (issue 24 items 3 and 5); the "not my card" path follows
reloads (issue 19 item 4).

The hub runs from a file (`config_path`), so the admin Reload re-reads it as
an operator's would; HubServer.reload is also what SIGHUP runs
(tests/hub/test_main.py drives the signal itself).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

import hub.api
from bank_sim.fleet import BankFleet
from cardlookup.admin.v1 import admin_service_pb2 as admin_pb
from cardlookup.admin.v1 import admin_service_pb2_grpc as admin_grpc
from cardlookup.clock import ManualClock
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import PkiPaths, create_dev_pki
from cardlookup.population import Population
from cardlookup.rpc_errors import error_info_of
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from hub.core.config import HubConfig, TlsFiles
from hub.process.server import HubServer, StartupError
from tests.api.conftest import FAST, client_options
from tests.api.helpers import HubHarness, refused, started_from_file
from tests.api.test_admin import admin_channel
from tests.ports import dead_address


@pytest.fixture
async def filed_hub(
    pki: PkiPaths, population: Population, fleet: BankFleet, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[HubHarness]:
    config = HubConfig.dev(
        pki, fleet.addresses, tmp_path, listen="127.0.0.1:0", admin_listen="127.0.0.1:0", timings=FAST
    )
    server = await started_from_file(config, tmp_path / "hub.toml", clock)
    try:
        async with AsyncCardLookupClient(client_options(pki, server.port)) as client:
            yield HubHarness(
                client,
                server,
                fleet,
                clock,
                population,
                tmp_path / "sms-outbox.jsonl",
                DevFaceProvider.from_file(pki.face_provider_key),
            )
    finally:
        await server.stop(grace=0)


async def admin_reload(pki: PkiPaths, server: HubServer) -> admin_pb.ReloadResponse:
    async with admin_channel(pki, server.admin_port, "operator") as channel:
        answer: admin_pb.ReloadResponse = await admin_grpc.AdminServiceStub(channel).Reload(
            admin_pb.ReloadRequest(), timeout=30
        )
        return answer


def bad_server_tls(kind: str, pki: PkiPaths, tmp_path: Path) -> tuple[TlsFiles, str]:
    """An api_tls the reload must refuse, and what the refusal names."""
    other = create_dev_pki(tmp_path / "pki-other", [])
    if kind == "malformed":
        garbage = tmp_path / "malformed.pem"
        garbage.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        return TlsFiles(pki.ca_cert, garbage, pki.key("hub-server")), "api_tls.cert: .* is not a PEM certificate"
    if kind == "wrong-key":
        return TlsFiles(pki.ca_cert, other.cert("hub-server"), pki.key("hub-server")), "api_tls.key: .* is not the key"
    return (
        TlsFiles(pki.ca_cert, other.cert("hub-server"), other.key("hub-server")),
        "api_tls.cert: .* is not issued by a CA in api_tls.ca",
    )


@pytest.mark.parametrize("kind", ["malformed", "wrong-key", "unlisted-ca"])
async def test_a_bad_server_certificate_is_refused_and_nothing_is_applied(
    filed_hub: HubHarness, pki: PkiPaths, tmp_path: Path, kind: str
) -> None:
    hub = filed_hub
    before = hub.server.config
    tls, names = bad_server_tls(kind, pki, tmp_path)
    # The same file also removes a bank: that must not be applied either.
    bad = dataclasses.replace(before, api_tls=tls, banks=before.banks[1:])
    with pytest.raises(StartupError, match=names):
        await hub.server.reload(bad)
    assert hub.server.config is before

    assert hub.server.config_path is not None
    hub.server.config_path.write_text(bad.to_toml(), encoding="utf-8")
    with pytest.raises(grpc.aio.AioRpcError) as refusal:
        await admin_reload(pki, hub.server)
    info = error_info_of(refusal.value)
    assert refusal.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info is not None and info.reason == "CONFIG_INVALID"
    details = refusal.value.details() or ""
    assert details.startswith("api_tls.") and "nothing was changed" in details
    assert hub.server.config is before
    person = hub.eligible(0)
    await hub.enrol(person)
    listed = {b.bank_code for b in (await hub.client.list_banks(person.user_id)).banks}
    assert listed == {b.code for b in before.banks}


async def test_a_start_on_a_bad_certificate_names_the_certificate_not_the_port(
    pki: PkiPaths, fleet: BankFleet, clock: ManualClock, tmp_path: Path
) -> None:
    tls, names = bad_server_tls("wrong-key", pki, tmp_path)
    config = HubConfig.dev(pki, fleet.addresses, tmp_path, listen="127.0.0.1:0", api_tls=tls)
    server = HubServer(config, clock=clock, installers=[hub.api.install])
    with pytest.raises(StartupError, match=names) as refused_start:
        await server.start()
    assert "listen" not in str(refused_start.value)


async def test_a_reload_answers_exactly_what_changed(filed_hub: HubHarness, pki: PkiPaths) -> None:
    hub = filed_hub
    path = hub.server.config_path
    assert path is not None
    assert list((await admin_reload(pki, hub.server)).changes) == []  # the same file: nothing changed
    config = hub.server.config
    changed = dataclasses.replace(
        config,
        consent_text="新的授权文本。",
        banks=config.banks[1:],
        timings=dataclasses.replace(config.timings, sms_max_attempts=3),
    )
    path.write_text(changed.to_toml(), encoding="utf-8")
    answer = list((await admin_reload(pki, hub.server)).changes)
    assert answer == [
        f"banks: removed {config.banks[0].code} (queries in flight finish)",
        "consent_text: changed",
        "timings.sms_max_attempts: changed; takes effect after a restart",
    ]
    person = hub.eligible(1)
    await hub.enrol(person)
    assert (await hub.client.list_banks(person.user_id)).consent_text == "新的授权文本。"


async def test_not_my_card_follows_a_reload(filed_hub: HubHarness) -> None:
    """Issue 19 item 4: the case path kept its first bank addresses and
    credentials after a reload. A bank re-addressed to a dead port: the
    case call goes there (and fails, nothing recorded); back to its real
    address: the case opens."""
    hub = filed_hub
    today = hub.clock.now().date()
    person, code = next(
        (p, c)
        for p in hub.population.eligible_people(today)
        for c in ("102", "103", "104")
        if hub.population.expected_answer(c, p.id_number).listed
    )
    await hub.enrol(person)
    qid = (await hub.ready_query(person, [code])).query_id
    password = person.payment_password
    config = hub.server.config
    with dead_address() as nowhere:
        dead = tuple(dataclasses.replace(b, address=nowhere) if b.code == code else b for b in config.banks)
        await hub.server.reload(dataclasses.replace(config, banks=dead))
        error = await refused("CARD_CASE_NOT_OPENED", hub.client.flag_card(person.user_id, qid, password, "1"))
    assert error.metadata["bank_code"] == code
    await hub.server.reload(config)
    case = await hub.client.flag_card(person.user_id, qid, password, "1")
    assert case.status == pb.CARD_CASE_STATUS_CARD_SUSPENDED
