"""Races across replicas (issue 8): concurrent requests sent to three
replicas at once meet exactly the limits one replica enforces, because the
counts and locks live in the shared database, not in a replica's memory.

- wrong SMS codes: 5 wrong -> the verification is locked; never more
  attempts counted, even with 9 wrong codes in flight on 3 replicas;
- wrong payment passwords: 5 wrong -> locked (R10);
- duplicate CreateQuery: the same request_id on every replica is one query;
  different request_ids of one person accept exactly one (R12).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter
from collections.abc import Awaitable, Sequence

import asyncpg

from cardlookup.hub.v1 import resources_pb2 as pb
from client.errors import CardLookupError
from tests.api.helpers import HubHarness

BANKS = ["102", "103", "104"]
SENT = 9
"""Requests sent at once, three per replica: more than the limit of 5."""


async def outcomes(calls: Sequence[Awaitable[object]]) -> list[object]:
    """Each call's result or CardLookupError (other errors fail the test)."""

    async def one(call: Awaitable[object]) -> object:
        try:
            return await call
        except CardLookupError as e:
            return e

    return await asyncio.gather(*(one(c) for c in calls))


def reasons(results: Sequence[object]) -> Counter[str]:
    return Counter(r.reason if isinstance(r, CardLookupError) else "OK" for r in results)


def attempts_left(results: Sequence[object]) -> list[str]:
    return sorted(
        r.metadata["attempts_left"] for r in results if isinstance(r, CardLookupError) and "attempts_left" in r.metadata
    )


async def test_wrong_sms_codes_at_once_on_three_replicas_lock_after_exactly_five(
    replicas: list[HubHarness], replica_db: str
) -> None:
    a = replicas[0]
    person = a.eligible(0)
    await a.enrol(person)
    vid, code = await a.verify(person)
    face = a.face.attest(person.user_id, vid, a.clock.now())
    version = (await a.client.list_banks(person.user_id)).consent_text_version
    wrong = "000000" if code != "000000" else "111111"

    def create(hub: HubHarness, sms_code: str) -> Awaitable[pb.Query]:
        return hub.client.create_query(
            user_id=person.user_id,
            request_id=uuid.uuid4().hex,
            verification_id=vid,
            sms_code=sms_code,
            face_attestation=face,
            consent_text_version=version,
            bank_codes=BANKS,
        )

    results = await outcomes([create(replicas[i % 3], wrong) for i in range(SENT)])
    # Each of 4 wrong codes was told how many tries remain (4, 3, 2, 1); the
    # fifth locked the verification, and every later one found it locked.
    assert reasons(results) == Counter({"SMS_CODE_WRONG": 4, "VERIFICATION_LOCKED": SENT - 4})
    assert attempts_left(results) == ["1", "2", "3", "4"]
    assert await failed_attempts(replica_db, vid) == 5
    # Locked on every replica, even for the right code; no bank was asked.
    for hub in replicas:
        error = (await outcomes([create(hub, code)]))[0]
        assert isinstance(error, CardLookupError) and error.reason == "VERIFICATION_LOCKED"
    assert sum(a.fleet.call_count(c) for c in BANKS) == 0


async def failed_attempts(url: str, verification_id: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        value = await conn.fetchval(
            "SELECT failed_attempts FROM verifications WHERE verification_id = $1", verification_id
        )
    finally:
        await conn.close()
    return int(value)


async def test_wrong_payment_passwords_at_once_on_three_replicas_lock_after_exactly_five(
    replicas: list[HubHarness],
) -> None:
    a, b = replicas[0], replicas[1]
    person = a.eligible(1)
    await a.enrol(person)
    query = await a.create(person, ["102"])
    await b.until_ready(person, query.query_id)
    wrong = "000000" if person.payment_password != "000000" else "111111"

    results = await outcomes(
        [replicas[i % 3].client.get_report(person.user_id, query.query_id, wrong) for i in range(SENT)]
    )
    assert reasons(results) == Counter({"PAYMENT_PASSWORD_WRONG": 4, "PASSWORD_LOCKED": SENT - 4})
    assert attempts_left(results) == ["1", "2", "3", "4"]
    # Locked on every replica, even for the right password (R10).
    for hub in replicas:
        error = (await outcomes([hub.client.get_report(person.user_id, query.query_id, person.payment_password)]))[0]
        assert isinstance(error, CardLookupError) and error.reason == "PASSWORD_LOCKED"
    history = (await replicas[2].client.get_query(person.user_id, query.query_id)).report_access_events
    assert Counter(e.result for e in history) == Counter(
        {pb.REPORT_ACCESS_RESULT_WRONG_PASSWORD: 5, pb.REPORT_ACCESS_RESULT_LOCKED: SENT - 5 + len(replicas)}
    )
    # After the lockout, the right password opens the report on any replica.
    a.clock.advance(dt.timedelta(hours=24))
    report = await replicas[2].client.get_report(person.user_id, query.query_id, person.payment_password)
    assert report.name.endswith(f"{query.query_id}/report")


async def test_the_same_create_request_on_three_replicas_is_one_query(replicas: list[HubHarness]) -> None:
    a = replicas[0]
    person = a.eligible(2)
    await a.enrol(person)
    vid, code = await a.verify(person)
    face = a.face.attest(person.user_id, vid, a.clock.now())
    version = (await a.client.list_banks(person.user_id)).consent_text_version
    request_id = uuid.uuid4().hex

    def create(hub: HubHarness) -> Awaitable[pb.Query]:
        return hub.client.create_query(
            user_id=person.user_id,
            request_id=request_id,
            verification_id=vid,
            sms_code=code,
            face_attestation=face,
            consent_text_version=version,
            bank_codes=BANKS,
        )

    queries = await asyncio.gather(*(create(replicas[i % 3]) for i in range(SENT)))
    assert len({q.query_id for q in queries}) == 1
    await replicas[2].until_ready(person, queries[0].query_id)
    assert [a.fleet.call_count(c) for c in BANKS] == [1, 1, 1]
    assert len((await replicas[1].client.list_queries(person.user_id)).queries) == 1


async def test_different_requests_of_one_person_on_three_replicas_accept_exactly_one(
    replicas: list[HubHarness],
) -> None:
    a = replicas[0]
    person = a.eligible(3)
    await a.enrol(person)
    version = (await a.client.list_banks(person.user_id)).consent_text_version
    verified: list[tuple[str, str, object]] = []
    for _ in replicas:  # one verification per replica, one resend interval apart
        vid, code = await a.verify(person)
        verified.append((vid, code, a.face.attest(person.user_id, vid, a.clock.now())))
        a.clock.advance(dt.timedelta(minutes=1))

    def create(hub: HubHarness, vid: str, code: str, face: object) -> Awaitable[pb.Query]:
        return hub.client.create_query(
            user_id=person.user_id,
            request_id=uuid.uuid4().hex,
            verification_id=vid,
            sms_code=code,
            face_attestation=face,  # type: ignore[arg-type]
            consent_text_version=version,
            bank_codes=BANKS,
        )

    results = await outcomes([create(hub, *v) for hub, v in zip(replicas, verified, strict=True)])
    accepted = [r for r in results if isinstance(r, pb.Query)]
    assert len(accepted) == 1
    # The losers see the winner still running or (if its banks all answered
    # first on a loaded machine) already in its cooldown.
    assert set(reasons(results)) <= {"OK", "QUERY_IN_PROGRESS", "COOLDOWN_ACTIVE"}
    await replicas[1].until_ready(person, accepted[0].query_id)
    assert [a.fleet.call_count(c) for c in BANKS] == [1, 1, 1]
    assert len((await replicas[2].client.list_queries(person.user_id)).queries) == 1
