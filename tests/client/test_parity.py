"""The async client (client.aio) and the sync client (client.sync) are one
client in two call styles: the same public methods with the same
parameters, the same answers and the same exceptions against a real hub;
and neither leaks a channel when `wait_ready()` comes before `with`."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message

from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import PkiPaths
from cardlookup.population import Person
from client.aio import AsyncCardLookupClient
from client.errors import CardLookupError, UserNotFound
from client.sync import CardLookupClient
from tests.api.conftest import client_options
from tests.api.helpers import HubHarness

ASYNC_ONLY_SYNC_METHODS = {"connect"}  # opening a channel does no I/O in either style


def public(cls: type) -> dict[str, Any]:
    return {name: member for name, member in inspect.getmembers(cls) if not name.startswith("_")}


def test_both_clients_have_the_same_methods_and_signatures() -> None:
    a, s = public(AsyncCardLookupClient), public(CardLookupClient)
    assert set(a) == set(s)
    assert {"enroll_user", "create_query", "watch_query", "iter_queries", "get_report", "wait_ready"} <= set(a)
    for name in a:
        if isinstance(a[name], property):
            assert isinstance(s[name], property), name
            continue
        sig_a, sig_s = inspect.signature(a[name]), inspect.signature(s[name])
        assert list(sig_a.parameters.values()) == list(sig_s.parameters.values()), name
        returns = str(sig_a.return_annotation).replace("AsyncIterator[", "Iterator[")
        assert returns == str(sig_s.return_annotation), name
        is_async = inspect.iscoroutinefunction(a[name]) or inspect.isasyncgenfunction(a[name])
        assert is_async == (name not in ASYNC_ONLY_SYNC_METHODS), name
        assert not (inspect.iscoroutinefunction(s[name]) or inspect.isasyncgenfunction(s[name])), name
        assert inspect.isasyncgenfunction(a[name]) == inspect.isgeneratorfunction(s[name]), name
    assert hasattr(AsyncCardLookupClient, "__aenter__") and hasattr(CardLookupClient, "__enter__")


Step = tuple[str, tuple[Any, ...], dict[str, Any]]


def journey(h: HubHarness, person: Person) -> Generator[Step, Any, None]:
    """Every public call, successes and refusals, as steps a driver runs on
    one client; each step receives the previous step's outcome."""
    u = person.user_id
    yield "get_user", ("nobody-here",), {}
    enrol = {
        "user_id": u,
        "full_name": person.full_name,
        "id_number": person.id_number,
        "id_expiry_date": person.id_expiry,
        "region_code": person.region_code,
        "phone_number": person.phone,
        "payment_password": person.payment_password,
    }
    yield "enroll_user", (), {**enrol, "phone_number": "12345"}
    yield "enroll_user", (), enrol
    yield "get_user", (u,), {}
    banks = yield "list_banks", (u,), {}
    started = yield "start_verification", (u,), {}
    yield "start_verification", (u,), {}  # SMS_RATE_LIMITED
    code = h.last_code(person.phone)
    create = {
        "user_id": u,
        "request_id": uuid.uuid4().hex,
        "verification_id": started.verification_id,
        "sms_code": code,
        "face_attestation": h.face.attest(u, started.verification_id, h.clock.now()),
        "consent_text_version": banks.consent_text_version,
        "bank_codes": ["102", "308"],
    }
    yield "create_query", (), {**create, "sms_code": "000000" if code != "000000" else "111111"}
    query = yield "create_query", (), create
    yield "watch_query", (u, query.query_id), {}
    yield "get_query", (u, query.query_id), {}
    yield "list_queries", (u,), {"page_size": 1}
    yield "iter_queries", (u,), {}
    yield "get_report", (u, query.query_id, "000000" if person.payment_password != "000000" else "111111"), {}
    yield "get_report", (u, query.query_id, person.payment_password), {}
    yield "get_report", (u, "00000000-0000-4000-8000-000000000000", person.payment_password), {}


def describe(value: Any) -> str:
    """An outcome without what differs between two people and two runs
    (ids, times, names): the type, the states, the reasons."""
    if isinstance(value, CardLookupError):
        return f"{type(value).__name__}({value.reason}, {value.code.name}, {sorted(value.metadata)})"
    if isinstance(value, list):  # a stream or an iterator, as the messages it gave
        last = value[-1]
        query = last.query if isinstance(last, svc.WatchQueryResponse) else last
        return f"{len(value) > 0} x {type(last).__name__}, last {pb.QueryState.Name(query.state)}"
    assert isinstance(value, Message), value
    if isinstance(value, pb.User):
        return f"User(eligible={value.eligible})"
    if isinstance(value, pb.Query):
        return f"Query({len(value.bank_outcomes)} banks, id set {bool(value.query_id)})"
    if isinstance(value, pb.Report):
        return f"Report({[s.bank_code for s in value.bank_summaries]})"
    if isinstance(value, svc.ListQueriesResponse):
        states = [pb.QueryState.Name(q.state) for q in value.queries]
        return f"ListQueries({states}, more={bool(value.next_page_token)})"
    if isinstance(value, svc.ListBanksResponse):
        return f"ListBanks({len(value.banks)} banks, {value.consent_text_version})"
    return type(value).__name__


async def drive_async(client: AsyncCardLookupClient, steps: Generator[Step, Any, None]) -> list[str]:
    record, outcome = [], None
    try:
        name, args, kwargs = next(steps)
        while True:
            try:
                called = getattr(client, name)(*args, **kwargs)
                outcome = [m async for m in called] if inspect.isasyncgen(called) else await called
            except CardLookupError as error:
                outcome = error
            record.append(f"{name}: {describe(outcome)}")
            name, args, kwargs = steps.send(outcome)
    except StopIteration:
        return record


def drive_sync(client: CardLookupClient, steps: Generator[Step, Any, None]) -> list[str]:
    record, outcome = [], None
    try:
        name, args, kwargs = next(steps)
        while True:
            try:
                called = getattr(client, name)(*args, **kwargs)
                outcome = list(called) if inspect.isgenerator(called) else called
            except CardLookupError as error:
                outcome = error
            record.append(f"{name}: {describe(outcome)}")
            name, args, kwargs = steps.send(outcome)
    except StopIteration:
        return record


async def test_both_clients_answer_and_refuse_alike_on_a_real_hub(harness: HubHarness, pki: PkiPaths) -> None:
    options = client_options(pki, harness.server.port)
    async with AsyncCardLookupClient(options) as aio:
        by_async = await drive_async(aio, journey(harness, harness.eligible(0)))

    def sync_run() -> list[str]:
        with CardLookupClient(options) as sync:
            return drive_sync(sync, journey(harness, harness.eligible(1)))

    by_sync = await asyncio.to_thread(sync_run)
    assert by_async == by_sync
    # The journey did meet every kind of outcome (it is not a list of equal failures).
    assert by_async[0].startswith("get_user: UserNotFound(USER_NOT_FOUND, NOT_FOUND")
    assert "InvalidField(INVALID_FIELD, INVALID_ARGUMENT, ['field'])" in by_async[1]
    assert "SmsRateLimited(SMS_RATE_LIMITED, RESOURCE_EXHAUSTED, ['limit', 'retry_time'])" in by_async[6]
    assert "SmsCodeWrong(SMS_CODE_WRONG, INVALID_ARGUMENT, ['attempts_left'])" in by_async[7]
    assert by_async[9] == "watch_query: True x WatchQueryResponse, last QUERY_STATE_READY"
    assert "PaymentPasswordWrong" in by_async[13] and by_async[14] == "get_report: Report(['102', '308'])"
    assert by_async[15].startswith("get_report: QueryNotFound(QUERY_NOT_FOUND")


def established_to(port: int) -> int:
    """Open TCP connections (ESTABLISHED, state 01) to 127.0.0.1:`port`,
    from Linux's socket tables (gRPC uses IPv6 sockets with v4-mapped
    addresses, hence tcp6 too): a channel that is connected holds one."""
    remote = f"0100007F:{port:04X}"  # the tail of 127.0.0.1 and of ::ffff:127.0.0.1
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as lines:
            rows = [line.split() for line in lines.readlines()[1:]]
        count += sum(1 for row in rows if row[2].endswith(remote) and row[3] == "01")
    return count


async def settled(port: int, expected: int) -> int:
    """The connection count once closing sockets have left ESTABLISHED
    (bounded wait), or the count at the deadline."""
    for _ in range(100):  # 5 s
        if established_to(port) == expected:
            break
        await asyncio.sleep(0.05)
    return established_to(port)


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's socket table")
async def test_wait_ready_before_entering_leaks_no_channel(harness: HubHarness, pki: PkiPaths) -> None:
    """The channel `wait_ready()` opens must be the one the block uses and
    closes. The test keeps a reference to it, as a pending task or a stub
    taken from the client would: a second channel opened by `with` would
    leave the first connected until the garbage collector found it."""
    port = harness.server.port
    options = client_options(pki, port)
    base = established_to(port)  # the harness's own client, if it has called yet

    aio = AsyncCardLookupClient(options)
    await aio.wait_ready(10)
    opened = aio._channel
    async with aio:
        with pytest.raises(UserNotFound):
            await aio.get_user("nobody-here")
        assert established_to(port) == base + 1  # one channel, the one wait_ready opened
    assert await settled(port, base) == base
    del opened

    def sync_run() -> tuple[int, object]:
        sync = CardLookupClient(options)
        sync.wait_ready(10)
        opened = sync._channel
        with sync:
            with pytest.raises(UserNotFound):
                sync.get_user("nobody-here")
            return established_to(port), opened

    inside, _still_referenced = await asyncio.to_thread(sync_run)
    assert inside == base + 1
    assert await settled(port, base) == base
