"""Rotation without restart (issue 11 item 3), each through HubServer.reload
(what SIGHUP and the admin Reload call run) on a real hub, the real bank
fleet and the real client:

- the server certificate and trusted CAs: a client connected before keeps
  its connection (and its open watch stream), a new client must trust the
  new certificate;
- the bank-facing client certificate: bank channels re-dial with it;
- the bank registry: a bank added and one removed while a query runs;
- the key-encryption key: reports sealed before and after both open;
- the consent-signing key (new key id) and the face-provider keys.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bank_sim.faults import Faults
from bank_sim.fleet import BankFleet, FleetConfig
from cardlookup.clock import ManualClock
from cardlookup.consent import verify_consent
from cardlookup.hub.v1 import resources_pb2 as hub_pb
from cardlookup.pki import (
    CONSENT_KEY_ID,
    HUB_CLIENT_NAME,
    HUB_SERVER_NAME,
    PkiPaths,
    create_dev_pki,
    issue_client_certificate,
    load_ed25519_public,
)
from cardlookup.population import Population
from cardlookup.tls import channel_credentials
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from client.options import ClientOptions
from hub.core.config import HubConfig, TlsFiles
from hub.keys.crypto import Envelope
from hub.process.server import StartupError
from tests.api.conftest import FAST, client_options, start_hub
from tests.api.helpers import HubHarness, refused

NEW_CONSENT_KEY_ID = "hub-consent-2"


def write_private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


@pytest.fixture
def new_consent_key(tmp_path: Path) -> tuple[Path, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return write_private(tmp_path / "consent-2.key", pem), key


@pytest.fixture
async def two_key_fleet(
    pki: PkiPaths, population: Population, clock: ManualClock, new_consent_key: tuple[Path, Ed25519PrivateKey]
) -> AsyncIterator[BankFleet]:
    """Banks that trust the hub's current and next consent keys (the overlap)."""
    trusted = {
        CONSENT_KEY_ID: load_ed25519_public(pki.consent_public_key),
        NEW_CONSENT_KEY_ID: new_consent_key[1].public_key(),
    }
    fleet = BankFleet(
        FleetConfig.default(pki, population, count=16, clock=clock, admin_port=None, trusted_consent_keys=trusted)
    )
    await fleet.start()
    yield fleet
    await fleet.stop(grace=0)


async def rotating_hub(
    pki: PkiPaths, population: Population, fleet: BankFleet, clock: ManualClock, tmp_path: Path, banks: list[str]
) -> HubHarness:
    addresses = {code: fleet.addresses[code] for code in banks}
    config = HubConfig.dev(pki, addresses, tmp_path, listen="127.0.0.1:0", timings=FAST)
    server = await start_hub(config, clock)
    client = AsyncCardLookupClient(client_options(pki, server.port))
    client.connect()
    return HubHarness(
        client=client,
        server=server,
        fleet=fleet,
        clock=clock,
        population=population,
        outbox=config.sms_outbox or tmp_path / "sms-outbox.jsonl",
        face=DevFaceProvider.from_file(pki.face_provider_key),
    )


@pytest.fixture
async def hub4(
    pki: PkiPaths, population: Population, two_key_fleet: BankFleet, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[HubHarness]:
    hub = await rotating_hub(pki, population, two_key_fleet, clock, tmp_path, ["102", "103", "104", "301"])
    try:
        yield hub
    finally:
        await hub.client.close()
        await hub.server.stop(grace=0)


async def health_check(target: str, ca: Path, pki: PkiPaths) -> int:
    creds = channel_credentials(ca, pki.cert("app-backend"), pki.key("app-backend"))
    options = [("grpc.ssl_target_name_override", HUB_SERVER_NAME)]
    async with grpc.aio.secure_channel(target, creds, options=options) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        return int(response.status)


async def test_server_certificate_rotation_keeps_connected_clients_and_serves_the_new_one(
    hub4: HubHarness, pki: PkiPaths, tmp_path: Path
) -> None:
    hub = hub4
    other = create_dev_pki(tmp_path / "pki-2", [])  # a new CA and a hub-server certificate from it
    bundle = tmp_path / "trusted-clients.pem"
    bundle.write_bytes(pki.ca_cert.read_bytes() + other.ca_cert.read_bytes())
    person = hub.eligible(0)
    await hub.enrol(person)
    target = f"127.0.0.1:{hub.server.port}"
    hub.fleet.set_faults("104", Faults(latency=1.0))
    query = await hub.create(person, ["102", "104"])
    watch = hub.client.watch_query(person.user_id, query.query_id)
    first = await anext(watch)  # a stream open across the rotation
    assert first.query.state != hub_pb.QUERY_STATE_READY

    new_api = TlsFiles(ca=bundle, cert=other.cert("hub-server"), key=other.key("hub-server"))
    changes = await hub.server.reload(dataclasses.replace(hub.server.config, api_tls=new_api))
    assert any(c.startswith("api_tls:") for c in changes)

    # The connected client keeps its connection: calls and the open stream go on.
    assert (await hub.client.list_banks(person.user_id)).banks
    states = [first.query.state] + [message.query.state async for message in watch]
    assert states[-1] == hub_pb.QUERY_STATE_READY
    # New connections get the new certificate: trusting only the new CA works,
    # trusting only the old one fails the handshake.
    assert await health_check(target, other.ca_cert, pki) == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as old_trust:
        await health_check(target, pki.ca_cert, pki)
    assert old_trust.value.code() == grpc.StatusCode.UNAVAILABLE
    # A new app-backend client that trusts the new CA uses the API as before.
    options = ClientOptions(
        target=target, ca=other.ca_cert, cert=pki.cert("app-backend"), key=pki.key("app-backend"), wait_for_ready=False
    )
    async with AsyncCardLookupClient(options) as fresh:
        assert (await fresh.list_banks(person.user_id)).banks


async def test_bank_channels_redial_with_a_rotated_client_certificate(
    hub4: HubHarness, pki: PkiPaths, tmp_path: Path
) -> None:
    hub = hub4
    people = [hub.eligible(i) for i in range(3)]
    for person in people:
        await hub.enrol(person)
    await hub.ready_query(people[0], ["102"])
    channels = hub.server.fanout.channels
    dials = channels.dials

    # A client certificate from a CA the banks do not trust: after the reload
    # the hub re-dials with it, and the bank refuses the handshake.
    untrusted = create_dev_pki(tmp_path / "pki-untrusted", [])
    config = hub.server.config
    await hub.server.reload(
        dataclasses.replace(
            config, bank_tls=TlsFiles(pki.ca_cert, untrusted.cert("hub-client"), untrusted.key("hub-client"))
        )
    )
    stuck = await hub.create(people[1], ["102"])
    for _ in range(500):
        row = hub.server.metrics.health.row("102", "closed")
        if row.last_error_reason:
            break
        await asyncio.sleep(0.02)
    assert row.last_error_reason == "UNAVAILABLE"
    assert channels.dials == dials + 1

    # A new certificate from the banks' CA: the next attempt re-dials and answers.
    cert, key = issue_client_certificate(pki, "hub-client-rotated", HUB_CLIENT_NAME)
    changes = await hub.server.reload(dataclasses.replace(config, bank_tls=TlsFiles(pki.ca_cert, cert, key)))
    assert any("re-dial" in c for c in changes)
    hub.server.engine.wake()
    ready = await hub.until_ready(people[1], stuck.query_id)
    assert [o.state for o in ready.bank_outcomes] == [hub_pb.BANK_OUTCOME_STATE_ANSWERED]
    assert channels.dials == dials + 2
    await hub.ready_query(people[2], ["102"])
    assert channels.dials == dials + 2  # the new channel is reused


async def test_a_bank_added_and_one_removed_while_a_query_runs(hub4: HubHarness, pki: PkiPaths) -> None:
    hub = hub4
    people = [hub.eligible(i) for i in range(3)]
    for person in people:
        await hub.enrol(person)
    hub.fleet.set_faults("104", Faults(latency=1.0))
    running = await hub.create(people[0], ["102", "103", "104"])

    old = hub.server.config
    added = HubConfig.dev(pki, {"105": hub.fleet.addresses["105"]}, Path("/unused")).banks
    new = dataclasses.replace(old, banks=(*[b for b in old.banks if b.code != "104"], *added))
    changes = await hub.server.reload(new)
    assert "banks: added 105" in changes and any(c.startswith("banks: removed 104") for c in changes)

    # The query in flight is unaffected: the removed bank still answers it.
    ready = await hub.until_ready(people[0], running.query_id)
    assert {o.bank_code: o.state for o in ready.bank_outcomes} == {
        "102": hub_pb.BANK_OUTCOME_STATE_ANSWERED,
        "103": hub_pb.BANK_OUTCOME_STATE_ANSWERED,
        "104": hub_pb.BANK_OUTCOME_STATE_ANSWERED,
    }
    # New queries see the new registry (R3).
    listed = {b.bank_code for b in (await hub.client.list_banks(people[1].user_id)).banks}
    assert listed == {"102", "103", "105", "301"}
    await refused("BANK_NOT_AVAILABLE", hub.create(people[1], ["102", "104"]))
    hub.clock.advance(dt.timedelta(minutes=1))  # the SMS resend interval
    ready = await hub.ready_query(people[2], ["105"])
    assert [(o.bank_code, o.state) for o in ready.bank_outcomes] == [("105", hub_pb.BANK_OUTCOME_STATE_ANSWERED)]


async def test_reports_sealed_before_and_after_a_kek_rotation_both_open(
    hub4: HubHarness, pki: PkiPaths, tmp_path: Path
) -> None:
    hub = hub4
    before, after = hub.eligible(0), hub.eligible(1)
    await hub.enrol(before)
    q1 = await hub.ready_query(before, ["102", "103"])
    kek2 = write_private(tmp_path / "kek-2.hex", secrets.token_hex(32).encode())
    config = hub.server.config
    await hub.server.reload(
        dataclasses.replace(
            config,
            key_encryption_key=kek2,
            key_encryption_key_id="kek-2",
            previous_key_encryption_keys={config.key_encryption_key_id: config.key_encryption_key},
        )
    )
    await hub.enrol(after)
    q2 = await hub.ready_query(after, ["102", "103"])
    # READY reports are sealed to the user's password key (issue 12); what the
    # KEK seals is each user's identity record and, until READY, the
    # subject and the banks' answers. The record says which key wrapped it.
    # (Issue 22: each identity record is encrypted under its user's data
    # key, which the KEK seals.)
    rows = {
        row["user_id"]: Envelope.key_id_of(row["wrapped_key"])
        for row in await hub.server.db.fetch_all("SELECT user_id, wrapped_key FROM user_data_keys")
    }
    assert rows == {before.user_id: "kek-dev-1", after.user_id: "kek-2"}
    for person, query in ((before, q1), (after, q2)):
        report = await hub.client.get_report(person.user_id, query.query_id, person.payment_password)
        assert report.cards


async def test_consent_and_face_keys_rotate(
    hub4: HubHarness, pki: PkiPaths, tmp_path: Path, new_consent_key: tuple[Path, Ed25519PrivateKey]
) -> None:
    hub = hub4
    people = [hub.eligible(i) for i in range(2)]
    for person in people:
        await hub.enrol(person)
    face2 = Ed25519PrivateKey.generate()
    face2_pub = tmp_path / "face-2.pub"
    face2_pub.write_bytes(
        face2.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    await hub.server.reload(
        dataclasses.replace(
            hub.server.config,
            consent_signing_key=new_consent_key[0],
            consent_key_id=NEW_CONSENT_KEY_ID,
            face_provider_keys={"face-2": face2_pub},
        )
    )
    # The old face-provider key is no longer trusted; the new one is.
    await refused("FACE_ATTESTATION_INVALID", hub.create(people[0], ["102"]))
    hub.face = DevFaceProvider(face2, "face-2")
    hub.clock.advance(dt.timedelta(minutes=1))
    ready = await hub.ready_query(people[1], ["102", "103", "104", "301"])
    # Banks that trust both keys during the overlap answer consents signed with the new one.
    assert {o.state for o in ready.bank_outcomes} == {hub_pb.BANK_OUTCOME_STATE_ANSWERED}
    # And the hub signs with the new key id only.
    signer = hub.server.engine._keys.consent_signer
    request = signer.list_cards_request(
        query_id="q-x",
        bank_code="102",
        full_name=people[1].full_name,
        id_number=people[1].id_number,
        issue_time=hub.clock.now(),
        expire_time=hub.clock.now() + dt.timedelta(hours=1),
        consent_text_version="v",
    )
    assert request.consent.key_id == NEW_CONSENT_KEY_ID
    verify_consent(
        request.consent,
        {NEW_CONSENT_KEY_ID: new_consent_key[1].public_key()},
        bank_code="102",
        query_id="q-x",
        id_number=people[1].id_number,
        full_name=people[1].full_name,
        now=hub.clock.now(),
    )


async def test_a_reload_with_an_unreadable_file_changes_nothing(
    hub4: HubHarness, pki: PkiPaths, tmp_path: Path
) -> None:
    hub = hub4
    before = hub.server.config
    broken = dataclasses.replace(
        before,
        banks=before.banks[:1],
        bank_tls=TlsFiles(pki.ca_cert, tmp_path / "missing.pem", pki.key("hub-client")),
    )
    with pytest.raises(StartupError, match=r"^bank_tls\.cert: .*missing\.pem cannot be read"):
        await hub.server.reload(broken)
    assert hub.server.config is before
    person = hub.eligible(0)
    await hub.enrol(person)
    listed = {b.bank_code for b in (await hub.client.list_banks(person.user_id)).banks}
    assert listed == {b.code for b in before.banks}
    assert 'cardlookup_hub_reloads_total{result="failed"} 1.0' in hub.server.metrics.exposition()
