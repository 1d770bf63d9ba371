"""Privacy across the whole hub, API and identity layer included (R8, R14):
drive the full journey for several people — enrolment (one refused),
verification with a wrong SMS code, queries including a bank that leaks a
full card number, wrong payment passwords, a lockout, report views — then
scan the database file, its WAL and every hub log line for the people's
names, ID numbers, phone numbers and full card numbers. The SMS outbox
stands in for the SMS gateway: it may carry phone numbers, never card data
(R9)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import logging
import uuid

import grpc
import pytest

from bank_sim.faults import Faults, Misbehaviour
from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from client.errors import CardLookupError
from hub.core.logging import configure_logging
from hub.core.notify import read_outbox, report_ready_text
from tests.api.helpers import HubHarness, refused

LEAKY_BANK = "102"


async def test_no_personal_data_at_rest_or_in_logs_after_the_api_journey(harness: HubHarness) -> None:
    hub = harness
    logs = io.StringIO()
    configure_logging("DEBUG", logs)
    errors: list[str] = []
    try:
        hub.fleet.set_faults(LEAKY_BANK, Faults(misbehaviour=Misbehaviour.FULL_CARD_NUMBER))
        people = [hub.eligible(i) for i in range(4)]
        wrong_check = people[0].id_number[:-1] + ("0" if people[0].id_number[-1] != "0" else "1")
        errors.append(
            str(await refused("INVALID_FIELD", hub.enrol(dataclasses.replace(people[0], id_number=wrong_check))))
        )
        for person in people:
            await hub.enrol(person)
        for person in people:
            # A wrong SMS code first, then the real journey.
            vid, code = await hub.verify(person)
            wrong_code = "000000" if code != "000000" else "111111"
            with pytest.raises(CardLookupError) as caught:
                await hub.client.create_query(
                    user_id=person.user_id,
                    request_id=uuid.uuid4().hex,
                    verification_id=vid,
                    sms_code=wrong_code,
                    face_attestation=hub.face.attest(person.user_id, vid, hub.clock.now()),
                    consent_text_version=(await hub.client.list_banks(person.user_id)).consent_text_version,
                    bank_codes=list(DEFAULT_BANK_CODES),
                )
            assert caught.value.reason == "SMS_CODE_WRONG"
            errors.append(str(caught.value))
            hub.clock.advance(dt.timedelta(minutes=1))  # the SMS resend interval
            query = await hub.create(person, DEFAULT_BANK_CODES)
            ready = await hub.until_ready(person, query.query_id)
            leaky = next(o for o in ready.bank_outcomes if o.bank_code == LEAKY_BANK)
            assert leaky.reason == "FULL_CARD_NUMBER"
            wrong = "000000" if person.payment_password != "000000" else "111111"
            for _ in range(2):
                errors.append(
                    str(
                        await refused(
                            "PAYMENT_PASSWORD_WRONG", hub.client.get_report(person.user_id, query.query_id, wrong)
                        )
                    )
                )
            report = await hub.client.get_report(person.user_id, query.query_id, person.payment_password)
            assert report.cards
        # One person locks themselves out.
        locked = people[0]
        query_id = (await hub.client.list_queries(locked.user_id)).queries[0].query_id
        wrong = "000000" if locked.payment_password != "000000" else "111111"
        for _ in range(4):
            try:
                await hub.client.get_report(locked.user_id, query_id, wrong)
            except CardLookupError as e:
                errors.append(str(e))
        errors.append(str(await refused("PASSWORD_LOCKED", hub.client.get_report(locked.user_id, query_id, wrong))))
        # Raw errors too: the details string the hub itself sends.
        with pytest.raises(grpc.aio.AioRpcError) as raw:
            await hub.client.stub.EnrollUser(
                svc.EnrollUserRequest(
                    user_id="x",
                    full_name=locked.full_name,
                    id_number=locked.id_number,
                    region_code=locked.region_code,
                    phone_number="1" + locked.phone,
                    payment_password="123456",
                )
            )
        errors.append(raw.value.details() or "")
        database = hub.server.config.database
        wal = database.with_name(database.name + "-wal").read_bytes()
        stored = database.read_bytes() + wal
    finally:
        logging.getLogger("hub").handlers.clear()
    text = logs.getvalue()
    # The capture did see the journey (refusals, the leaky bank, views).
    for marker in ("SMS_CODE_WRONG", "PAYMENT_PASSWORD_WRONG", "FULL_CARD_NUMBER", "query_ready"):
        assert marker in text, marker
    assert len(wal) > 10_000
    personal: list[str] = []
    cards: list[str] = []
    for person in people:
        personal += [person.full_name, person.id_number, person.phone]
        for code in DEFAULT_BANK_CODES:
            cards += [c.number for c in hub.population.cards_at(code, person.id_number)]
    assert len(cards) > 10
    for secret in personal + cards:
        assert secret.encode() not in stored, "personal data in the database file or its WAL"
        assert secret not in text, "personal data in the hub's logs"
        assert all(secret not in e for e in errors), "personal data in an error"
    for _ in range(200):  # the ready SMS goes out right after READY is stored
        outbox = read_outbox(hub.outbox)
        if sum(1 for m in outbox if m["kind"] == "REPORT_READY") >= len(people):
            break
        await asyncio.sleep(0.01)
    ready_texts = {m["text"] for m in outbox if m["kind"] == "REPORT_READY"}
    assert ready_texts == {report_ready_text()}
    assert sum(1 for m in outbox if m["kind"] == "REPORT_READY") == len(people)
    for message in outbox:
        assert all(card not in message["text"] for card in cards)
