"""Durability of the user's journey across a hub restart: stop the
HubServer, start a new one on the same database file, and everything the
user did still counts — queries (a fan-out in flight completes), pending
verifications, request-id idempotency, the password lockout, the report's
access history — and the ready SMS goes out exactly once even when the
first hub could not send it."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest

import hub.api
from bank_sim.faults import Faults
from bank_sim.fleet import BankFleet
from cardlookup.clock import ManualClock
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from hub.core.config import HubConfig
from hub.core.notify import OutboxSmsSender, SmsMessage, read_outbox
from hub.process.server import HubContext, HubServer
from tests.api.conftest import FAST, client_options
from tests.api.helpers import HubHarness, refused

pytestmark = pytest.mark.both_stores


class GatewayRefusingReadyNotices:
    """An SMS gateway that takes verification codes but refuses the ready
    notice (it is down for that kind of message)."""

    def __init__(self, outbox: Path) -> None:
        self._outbox = OutboxSmsSender(outbox)

    async def send(self, message: SmsMessage) -> None:
        if message.kind == "REPORT_READY":
            raise ConnectionError("gateway down")
        await self._outbox.send(message)


def ready_notices(outbox: Path) -> int:
    return sum(1 for m in read_outbox(outbox) if m["kind"] == "REPORT_READY")


async def test_the_journey_survives_a_hub_restart(
    pki: PkiPaths, population: Population, fleet: BankFleet, clock: ManualClock, tmp_path: Path
) -> None:
    config = HubConfig.dev(pki, fleet.addresses, tmp_path, listen="127.0.0.1:0", timings=FAST)
    outbox = config.sms_outbox or tmp_path / "sms-outbox.jsonl"

    async def refusing_install(ctx: HubContext) -> None:
        await hub.api.install(ctx, sender=GatewayRefusingReadyNotices(outbox))

    face = DevFaceProvider.from_file(pki.face_provider_key)
    first = HubServer(config, clock=clock, installers=[refusing_install])
    await first.start()
    async with AsyncCardLookupClient(client_options(pki, first.port)) as client:
        h = HubHarness(client, first, fleet, clock, population, outbox, face)
        done, stalled, waiting = h.eligible(0), h.eligible(1), h.eligible(2)
        for person in (done, stalled, waiting):
            await h.enrol(person)
        # A finished query: its ready SMS fails, then five wrong passwords lock.
        request_id = uuid.uuid4().hex
        vid, code = await h.verify(done)
        version = (await client.list_banks(done.user_id)).consent_text_version
        create = dict(
            user_id=done.user_id,
            request_id=request_id,
            verification_id=vid,
            sms_code=code,
            face_attestation=face.attest(done.user_id, vid, clock.now()),
            consent_text_version=version,
            bank_codes=["102", "103"],
        )
        finished = await client.create_query(**create)  # type: ignore[arg-type]
        await h.until_ready(done, finished.query_id)
        wrong = "000000" if done.payment_password != "000000" else "111111"
        for _ in range(4):
            await refused("PAYMENT_PASSWORD_WRONG", client.get_report(done.user_id, finished.query_id, wrong))
        await refused("PASSWORD_LOCKED", client.get_report(done.user_id, finished.query_id, wrong))
        # A query in flight: one of its banks stalls.
        fleet.set_faults("104", Faults(stall_after_cards=0))
        in_flight = await h.create(stalled, ["102", "104"])
        # A verification started, not yet used.
        pending_vid, pending_code = await h.verify(waiting)
    await first.stop(grace=0)
    assert ready_notices(outbox) == 0

    fleet.set_faults("104", Faults())
    second = HubServer(config, clock=clock, installers=[hub.api.install])
    await second.start()
    try:
        async with AsyncCardLookupClient(client_options(pki, second.port)) as client:
            h = dataclasses.replace(h, client=client, server=second)
            # The in-flight query completes, with exactly the ground truth.
            ready = await h.until_ready(stalled, in_flight.query_id)
            assert [o.state for o in ready.bank_outcomes] == [pb.BANK_OUTCOME_STATE_ANSWERED] * 2
            # The lockout and the access history survived.
            await refused("PASSWORD_LOCKED", client.get_report(done.user_id, finished.query_id, done.payment_password))
            history = (await client.get_query(done.user_id, finished.query_id)).report_access_events
            assert [e.result for e in history] == [pb.REPORT_ACCESS_RESULT_WRONG_PASSWORD] * 5 + [
                pb.REPORT_ACCESS_RESULT_LOCKED
            ]
            # The request id still replays the same query, with no bank called again.
            calls_before = {c: fleet.call_count(c) for c in fleet.codes}
            again = await client.create_query(**create)  # type: ignore[arg-type]
            assert again.query_id == finished.query_id
            assert {c: fleet.call_count(c) for c in fleet.codes} == calls_before
            await refused(
                "REQUEST_ID_REUSED",
                client.create_query(**(create | {"bank_codes": ["102"]})),  # type: ignore[arg-type]
            )
            # The pending verification is still usable.
            accepted = await client.create_query(
                user_id=waiting.user_id,
                request_id=uuid.uuid4().hex,
                verification_id=pending_vid,
                sms_code=pending_code,
                face_attestation=face.attest(waiting.user_id, pending_vid, clock.now()),
                consent_text_version=version,
                bank_codes=["105"],
            )
            await h.until_ready(waiting, accepted.query_id)
            report = await client.get_report(stalled.user_id, in_flight.query_id, stalled.payment_password)
            for summary in report.bank_summaries:
                truth = population.expected_answer(summary.bank_code, stalled.id_number)
                assert (summary.debit_card_count, summary.credit_card_count) == (truth.debit_count, truth.credit_count)
    finally:
        await second.stop(grace=0)
    # The restarted hub sent the notice the first could not: once per query.
    sent = [m for m in read_outbox(outbox) if m["kind"] == "REPORT_READY"]
    assert sorted(m["phone"] for m in sent) == sorted(p.phone for p in (done, stalled, waiting))

    third = HubServer(config, clock=clock, installers=[hub.api.install])
    await third.start()
    await third.stop(grace=0)
    assert ready_notices(outbox) == 3
