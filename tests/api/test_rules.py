"""One test per product rule that concerns the user, each through the real
gRPC API over mTLS, with the hub and the banks on one ManualClock."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re
import uuid
from pathlib import Path

import grpc
import pytest

from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.clock import ManualClock
from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.hub.v1 import card_lookup_service_pb2_grpc as svc_grpc
from cardlookup.hub.v1 import face_attestation_pb2 as face_pb
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import PkiPaths, issue_client_certificate
from client.aio import AsyncCardLookupClient
from client.errors import CallerNotAllowed, HubUnavailable
from hub.core.config import HubConfig
from hub.core.domain import QueryState, ReportUnavailable
from hub.core.notify import read_outbox
from hub.identity.errors import ceil_second
from tests.api.conftest import FAST, client_options, start_hub
from tests.api.helpers import HubHarness, refused

pytestmark = pytest.mark.both_stores


def when(ts: object) -> dt.datetime:
    return ts.ToDatetime(tzinfo=dt.UTC)  # type: ignore[attr-defined,no-any-return]


async def test_r1_real_name_only(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible()
    # An ID number with a wrong check character is refused at enrolment.
    bad = dataclasses.replace(person, id_number=person.id_number[:-1] + ("0" if person.id_number[-1] != "0" else "1"))
    error = await refused("INVALID_FIELD", hub.enrol(bad))
    assert error.metadata["field"] == "id_number"
    assert person.id_number not in str(error)
    # Nobody who is not enrolled gets a code.
    await refused("USER_NOT_FOUND", hub.client.start_verification(person.user_id))
    # An identity document that expires tomorrow works today, not in two days.
    tomorrow = (hub.clock.now() + dt.timedelta(hours=8) + dt.timedelta(days=1)).date()
    user = await hub.enrol(dataclasses.replace(person, id_expiry=tomorrow))
    assert user.eligible and user.masked_phone == f"{person.phone[:3]}****{person.phone[-4:]}"
    hub.clock.advance(dt.timedelta(days=2))
    user = await hub.client.get_user(person.user_id)
    assert not user.eligible and user.ineligible_reason == "ID_DOCUMENT_EXPIRED"
    error = await refused("ID_DOCUMENT_EXPIRED", hub.client.start_verification(person.user_id))
    assert error.metadata["id_expiry_date"] == tomorrow.isoformat()
    await refused("ID_DOCUMENT_EXPIRED", hub.client.list_banks(person.user_id))


async def test_r2_regions_are_configuration(
    harness: HubHarness, pki: PkiPaths, clock: ManualClock, tmp_path: Path
) -> None:
    hub = harness
    outsider = next(p for p in hub.population.people if p.region_code == "440000" and p.id_expiry is None)
    await hub.enrol(outsider)
    user = await hub.client.get_user(outsider.user_id)
    assert not user.eligible and user.ineligible_reason == "REGION_NOT_OPEN"
    error = await refused("REGION_NOT_OPEN", hub.client.start_verification(outsider.user_id))
    assert error.metadata["region_code"] == "440000"
    assert "440000" in error.sentence()
    # Opening Guangdong is a configuration change, not a code change.
    config = HubConfig.dev(
        pki,
        hub.fleet.addresses,
        tmp_path / "gd",
        listen="127.0.0.1:0",
        timings=FAST,
        open_regions=frozenset({"440000"}),
    )
    server = await start_hub(config, clock)
    try:
        async with AsyncCardLookupClient(client_options(pki, server.port)) as client:
            other = dataclasses.replace(hub, client=client, outbox=config.sms_outbox or tmp_path)
            await other.enrol(outsider)
            assert (await client.get_user(outsider.user_id)).eligible
            assert len((await client.list_banks(outsider.user_id)).banks) == 16
    finally:
        await server.stop(grace=0)


async def test_r3_bank_scope_is_any_nonempty_subset(harness: HubHarness) -> None:
    hub, person = harness, harness.population.demo_person(harness.clock.now().date())
    await hub.enrol(person)
    listed = await hub.client.list_banks(person.user_id)
    assert [b.bank_code for b in listed.banks] == list(DEFAULT_BANK_CODES)
    for banks, reason in (
        (["102", "999"], "BANK_NOT_AVAILABLE"),
        ([], "INVALID_FIELD"),
        (["102", "102"], "INVALID_FIELD"),
    ):
        await refused(reason, hub.create(person, banks))
        hub.clock.advance(dt.timedelta(minutes=1))  # the SMS resend interval
    chosen = ["308", "102"]
    query = await hub.ready_query(person, chosen)
    assert list(query.bank_codes) == chosen
    assert [o.bank_code for o in query.bank_outcomes] == chosen
    assert {c: hub.fleet.call_count(c) > 0 for c in DEFAULT_BANK_CODES} == {c: c in chosen for c in DEFAULT_BANK_CODES}
    report = await hub.client.get_report(person.user_id, query.query_id, person.payment_password)
    assert [s.bank_code for s in report.bank_summaries] == chosen
    for summary in report.bank_summaries:
        truth = hub.population.expected_answer(summary.bank_code, person.id_number)
        assert (summary.debit_card_count, summary.credit_card_count) == (truth.debit_count, truth.credit_count)
        assert summary.unlisted_card_count == sum(truth.unlisted.values())
    cards = sorted((c.bank_code, c.first_four, c.last_four) for c in report.cards)
    truth_cards = sorted(
        (c.bank_code, c.first_four, c.last_four)
        for code in chosen
        for c in hub.population.expected_answer(code, person.id_number).listed
    )
    assert cards == truth_cards


async def test_r4_verification_and_authorization_before_any_bank(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible()
    await hub.enrol(person)
    version = (await hub.client.list_banks(person.user_id)).consent_text_version
    vid, code = await hub.verify(person)
    # Resending is rate-limited per user.
    error = await refused("SMS_RATE_LIMITED", hub.client.start_verification(person.user_id))
    assert when_text(error.metadata["retry_time"]) >= hub.clock.now().replace(microsecond=0)
    now = hub.clock.now()
    good_face = hub.face.attest(person.user_id, vid, now)

    async def attempt(**over: object) -> object:
        args: dict[str, object] = dict(
            user_id=person.user_id,
            request_id=uuid.uuid4().hex,
            verification_id=vid,
            sms_code=code,
            face_attestation=good_face,
            consent_text_version=version,
            bank_codes=["102", "103"],
        )
        args.update(over)
        return await hub.client.create_query(**args)  # type: ignore[arg-type]

    wrong = "000000" if code != "000000" else "111111"
    error = await refused("SMS_CODE_WRONG", attempt(sms_code=wrong))
    assert error.metadata["attempts_left"] == "4"
    await refused("FACE_ATTESTATION_INVALID", attempt(face_attestation=None))
    await refused("FACE_ATTESTATION_INVALID", attempt(face_attestation=hub.face.attest(person.user_id, "other", now)))
    await refused(
        "FACE_ATTESTATION_INVALID", attempt(face_attestation=hub.face.attest(person.user_id, vid, now, False))
    )
    stale = hub.face.attest(person.user_id, vid, now - dt.timedelta(minutes=11))
    await refused("FACE_ATTESTATION_INVALID", attempt(face_attestation=stale))
    forged = face_pb.FaceAttestation(claims=good_face.claims, signature=bytes(64), key_id=good_face.key_id)
    await refused("FACE_ATTESTATION_INVALID", attempt(face_attestation=forged))
    error = await refused("CONSENT_VERSION_MISMATCH", attempt(consent_text_version="1999-01-01"))
    assert error.metadata["current_version"] == version
    # Nothing reached any bank, and no query exists.
    assert sum(hub.fleet.call_count(c) for c in DEFAULT_BANK_CODES) == 0
    assert not (await hub.client.list_queries(person.user_id)).queries
    # The code expires.
    hub.clock.advance(dt.timedelta(minutes=6))
    await refused(
        "VERIFICATION_EXPIRED", attempt(face_attestation=hub.face.attest(person.user_id, vid, hub.clock.now()))
    )
    # A fresh verification passes, once.
    query = await hub.create(person, ["102", "103"])
    assert query.consent_text_version == version
    await hub.until_ready(person, query.query_id)
    used_vid = [m for m in read_outbox(hub.outbox) if m["kind"] == "VERIFICATION_CODE"]
    assert len(used_vid) == 2


def when_text(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


async def test_r6_acceptance_promises_the_report_within_24_hours(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible()
    await hub.enrol(person)
    query = await hub.create(person, ["102"])
    assert query.state in (pb.QUERY_STATE_ACCEPTED, pb.QUERY_STATE_RUNNING, pb.QUERY_STATE_READY)
    assert when(query.report_due_time) - when(query.create_time) == dt.timedelta(hours=24)
    assert "24小时" in query.acceptance_notice and "24 hours" in query.acceptance_notice
    assert re.match(r"^[0-9a-f-]{36}$", query.query_id)


async def test_r9_ready_sms_carries_no_card_data(harness: HubHarness) -> None:
    hub, person = harness, harness.population.demo_person(harness.clock.now().date())
    await hub.enrol(person)
    query = await hub.ready_query(person)
    report = await hub.client.get_report(person.user_id, query.query_id, person.payment_password)
    assert report.cards
    for _ in range(100):  # the listener runs right after READY is stored
        notices = [m for m in read_outbox(hub.outbox) if m["kind"] == "REPORT_READY"]
        if notices:
            break
        await asyncio.sleep(0.02)
    assert len(notices) == 1 and notices[0]["phone"] == person.phone
    text = notices[0]["text"]
    assert not re.search(r"\d{4}", text)
    assert all(s.display_name not in text for s in report.bank_summaries)


async def test_r10_payment_password_with_lockout(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible()
    await hub.enrol(person)
    query = await hub.ready_query(person, ["102"])
    wrong = "000000" if person.payment_password != "000000" else "111111"
    for left in (4, 3, 2, 1):
        error = await refused("PAYMENT_PASSWORD_WRONG", hub.client.get_report(person.user_id, query.query_id, wrong))
        assert error.metadata["attempts_left"] == str(left)
    error = await refused("PASSWORD_LOCKED", hub.client.get_report(person.user_id, query.query_id, wrong))
    unlock = when_text(error.metadata["unlock_time"])
    assert unlock == ceil_second(hub.clock.now() + dt.timedelta(hours=24))
    # Locked: even the right password is refused until the unlock time.
    hub.clock.advance(dt.timedelta(hours=23, minutes=59))
    await refused("PASSWORD_LOCKED", hub.client.get_report(person.user_id, query.query_id, person.payment_password))
    hub.clock.advance(dt.timedelta(minutes=1))
    report = await hub.client.get_report(person.user_id, query.query_id, person.payment_password)
    assert report.name.endswith(f"{query.query_id}/report")
    history = (await hub.client.get_query(person.user_id, query.query_id)).report_access_events
    assert [e.result for e in history] == [pb.REPORT_ACCESS_RESULT_WRONG_PASSWORD] * 5 + [
        pb.REPORT_ACCESS_RESULT_LOCKED,
        pb.REPORT_ACCESS_RESULT_VIEWED,
    ]


async def test_r11_report_deleted_after_seven_days(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible()
    await hub.enrol(person)
    query = await hub.ready_query(person, ["102", "103"])
    assert when(query.report_expire_time) - when(query.ready_time) == dt.timedelta(days=7)
    hub.clock.advance(dt.timedelta(days=6, hours=23))
    await hub.client.get_report(person.user_id, query.query_id, person.payment_password)
    hub.clock.advance(dt.timedelta(hours=1))
    error = await refused(
        "REPORT_EXPIRED", hub.client.get_report(person.user_id, query.query_id, person.payment_password)
    )
    assert "expire_time" in error.metadata
    history = (await hub.client.list_queries(person.user_id)).queries
    assert [q.state for q in history] == [pb.QUERY_STATE_EXPIRED]
    # The sweeper (every 50 ms here) deletes the report itself.
    engine = hub.server.engine
    for _ in range(200):
        record = await engine.get(query.query_id)
        if record is not None and record.state is QueryState.EXPIRED:
            break
        await asyncio.sleep(0.025)
    assert record is not None and record.state is QueryState.EXPIRED
    with pytest.raises(ReportUnavailable):
        await engine.read_report(query.query_id)


async def test_r12_cooldown_seven_days_after_latest_report(harness: HubHarness) -> None:
    hub, person = harness, harness.eligible()
    await hub.enrol(person)
    first = await hub.ready_query(person, ["102"])
    ready = when(first.ready_time)
    hub.clock.set(ready + dt.timedelta(days=6, hours=23))
    error = await refused("COOLDOWN_ACTIVE", hub.create(person, ["102"]))
    assert when_text(error.metadata["retry_time"]) == ceil_second(ready + dt.timedelta(days=7))
    assert "from " in error.sentence()
    hub.clock.set(ready + dt.timedelta(days=7))
    second = await hub.create(person, ["102"])
    assert second.query_id != first.query_id


async def test_query_in_progress_refuses_a_second_one(harness: HubHarness) -> None:
    from bank_sim.faults import Faults

    hub, person = harness, harness.eligible()
    await hub.enrol(person)
    hub.fleet.set_faults("103", Faults(down=True))
    first = await hub.create(person, ["102", "103"])
    hub.clock.advance(dt.timedelta(minutes=1))
    error = await refused("QUERY_IN_PROGRESS", hub.create(person, ["102"]))
    assert error.metadata["query_id"] == first.query_id


async def test_r17_only_the_app_backend_may_call(harness: HubHarness, pki: PkiPaths, tmp_path: Path) -> None:
    port = harness.server.port
    partner_cert, partner_key = issue_client_certificate(pki, "partner", "partner.example.com")
    callers = [
        client_options(pki, port, "hub-client"),  # the hub's own bank-facing identity
        dataclasses.replace(client_options(pki, port), cert=partner_cert, key=partner_key),
    ]
    for options in callers:
        async with AsyncCardLookupClient(options) as intruder:
            with pytest.raises(CallerNotAllowed) as info:
                await intruder.get_user("u1")
            assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
            assert "only the app backend" in info.value.sentence()
            with pytest.raises(CallerNotAllowed):
                async for _ in intruder.watch_query("u1", "00000000-0000-0000-0000-000000000000"):
                    pass
    # A bank's certificate is a server certificate: the handshake refuses it
    # as a client certificate, and so it refuses a caller with none.
    # (get_user waits for a usable connection within its deadline: keep it short.)
    async with AsyncCardLookupClient(dataclasses.replace(client_options(pki, port, "bank-102"), timeout_s=1.0)) as bank:
        with pytest.raises(HubUnavailable):
            await bank.get_user("u1")
    creds = grpc.ssl_channel_credentials(root_certificates=pki.ca_cert.read_bytes())
    async with grpc.aio.secure_channel(
        f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "hub.cardlookup.internal")]
    ) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raw:
            await svc_grpc.CardLookupServiceStub(channel).GetUser(svc.GetUserRequest(user_id="u1"), timeout=5)
        assert raw.value.code() == grpc.StatusCode.UNAVAILABLE
    # The app backend itself gets through.
    await refused("USER_NOT_FOUND", harness.client.get_user("u1"))
