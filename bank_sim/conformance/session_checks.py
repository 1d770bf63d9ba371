"""The optional group: the session stream (CardSessionService.ListCardsSession,
card_session.proto, issue 16). A bank that does not offer it answers
UNIMPLEMENTED and every check of the group is skipped; a bank that offers it
must answer each exchange exactly as ListCards, echo the exchange's id and
query id, send nothing after an exchange's end, run exchanges concurrently,
verify each exchange's consent, accept cancels, and serve only the hub.

New in this version of the guide (SESSION_GUIDE_VERSION): banks certified
before it never see these checks fail (they are skipped on UNIMPLEMENTED)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from bank_sim.conformance.credentials import ClientIdentity
from bank_sim.conformance.probe import Probe, new_query_id
from bank_sim.conformance.results import Check, CheckFailed, CheckSkipped
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.bank.v1 import card_session_pb2 as session_pb
from cardlookup.rpc_errors import ErrorInfo, error_info_of

SESSION_GUIDE_VERSION = "1.3"
"""The bank guide version that introduced the session stream."""
LIST_CARDS_SESSION = "/cardlookup.bank.v1.CardSessionService/ListCardsSession"
DOC = "docs/bank-integration.md, 'The session stream (optional)'"
_PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED.value[0]


@dataclass
class SessionRun:
    """Everything observable about one session stream."""

    by_exchange: dict[int, list[session_pb.ListCardsSessionResponse]] = field(default_factory=dict)
    stray: list[str] = field(default_factory=list)
    """What came for no open exchange, or did not parse, described."""
    code: grpc.StatusCode | None = None
    """The stream's status once it ended (None: still open when the run stopped)."""
    error_info: ErrorInfo | None = None

    def ended(self, exchange_id: int) -> bool:
        messages = self.by_exchange.get(exchange_id, [])
        return bool(messages) and messages[-1].WhichOneof("item") in ("summary", "error")


class SessionClient:
    """One ListCardsSession stream as the hub opens it; responses read raw
    by a background task so a wait can time out without ending the stream."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self.run = SessionRun()
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            while (raw := await self._call.read()) is not grpc.aio.EOF:  # type: ignore[attr-defined]
                self._take(raw)
            self.run.code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as error:
            self.run.code, self.run.error_info = error.code(), error_info_of(error)
        finally:
            self._changed.set()

    def _take(self, raw: bytes) -> None:
        try:
            message = session_pb.ListCardsSessionResponse.FromString(raw)
        except DecodeError:
            self.run.stray.append("a message that is not a valid ListCardsSessionResponse")
            return
        exchange_id = message.exchange_id
        if exchange_id not in self.run.by_exchange:
            self.run.stray.append(f"a message for exchange_id {exchange_id}, which the suite never started")
        elif self.run.ended(exchange_id):
            self.run.stray.append(f"a {message.WhichOneof('item')} for exchange {exchange_id} after it had ended")
        else:
            self.run.by_exchange[exchange_id].append(message)
        self._changed.set()

    async def start(self, exchange_id: int, request: bank_pb.ListCardsRequest) -> None:
        self.run.by_exchange[exchange_id] = []
        message = session_pb.ListCardsSessionRequest(exchange_id=exchange_id, list_cards=request)
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            await self._call.write(message)

    async def cancel(self, exchange_id: int) -> None:
        message = session_pb.ListCardsSessionRequest(exchange_id=exchange_id, cancel=session_pb.CancelExchange())
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            await self._call.write(message)

    async def wait(self, condition: Any, within: float) -> bool:
        """Waits until `condition(run)` holds or the stream ended; whether it holds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while not condition(self.run) and self.run.code is None:
                    self._changed.clear()
                    await self._changed.wait()
        return bool(condition(self.run))

    async def finish(self, within: float) -> SessionRun:
        """Half-closes, then reads until the bank ends the stream (or timeout)."""
        with contextlib.suppress(Exception):  # its status shows in the reader
            await self._call.done_writing()
        await self.wait(lambda run: run.code is not None, within)
        return self.run


@contextlib.asynccontextmanager
async def session(probe: Probe, identity: ClientIdentity | None = None) -> AsyncIterator[SessionClient]:
    """A stream to the bank, presenting `identity` (default: the hub's)."""
    target = probe.target
    identity = identity or target.hub_client
    credentials = grpc.ssl_channel_credentials(
        root_certificates=target.ca_cert.read_bytes(),
        private_key=identity.key.read_bytes(),
        certificate_chain=identity.cert.read_bytes(),
    )
    options = [("grpc.ssl_target_name_override", target.expected_server_name), ("grpc.enable_retries", 0)]
    async with grpc.aio.secure_channel(target.address, credentials, options=options) as channel:
        method = channel.stream_stream(
            LIST_CARDS_SESSION,
            request_serializer=session_pb.ListCardsSessionRequest.SerializeToString,
            response_deserializer=lambda raw: raw,
        )
        call: Any = method  # typed as sync in grpc-stubs; on grpc.aio it takes no iterator
        await _require_session(call(timeout=target.timeout))
        client = SessionClient(call(timeout=target.timeout * 4))
        try:
            yield client
        finally:
            client._call.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await client._reader


async def _require_session(call: Any) -> None:
    """Skips the check if the bank has no session: a stream half-closed at
    once ends UNIMPLEMENTED. (Writing a request first races the bank's
    UNIMPLEMENTED, which grpc then reports as INTERNAL.) Any other end is
    judged by the check itself."""
    try:
        with contextlib.suppress(Exception):
            await call.done_writing()
        while await call.read() is not grpc.aio.EOF:  # type: ignore[attr-defined]
            pass
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise CheckSkipped("the bank does not offer the optional session stream (UNIMPLEMENTED)") from None
    finally:
        call.cancel()


def _unimplemented(run: SessionRun) -> None:
    if run.code == grpc.StatusCode.UNIMPLEMENTED:
        raise CheckSkipped("the bank does not offer the optional session stream (UNIMPLEMENTED)")


def _cards(messages: list[session_pb.ListCardsSessionResponse]) -> list[bytes]:
    return [m.card.SerializeToString(deterministic=True) for m in messages if m.WhichOneof("item") == "card"]


def _summary(messages: list[session_pb.ListCardsSessionResponse]) -> bytes | None:
    ends = [m for m in messages if m.WhichOneof("item") == "summary"]
    return ends[-1].summary.SerializeToString(deterministic=True) if ends else None


def _ending(run: SessionRun, exchange_id: int) -> str:
    messages = run.by_exchange.get(exchange_id, [])
    if not messages:
        return "no message"
    last = messages[-1]
    if last.WhichOneof("item") == "error":
        return f"error code {last.error.code} reason {last.error.reason!r}"
    return f"{len(messages)} message(s) ending with {last.WhichOneof('item')}"


async def answers_like_list_cards(probe: Probe) -> None:
    baseline, request = await probe.baseline()
    if not baseline.ok:
        raise CheckSkipped("the correct ListCards request got no answer to compare (see consent.valid_accepted)")
    requests = {1: request, 2: probe.valid_request(), 3: probe.valid_request()}
    async with session(probe) as client:
        for exchange_id, r in requests.items():
            await client.start(exchange_id, r)
        await client.wait(lambda run: all(run.ended(i) for i in requests), probe.target.timeout)
        run = client.run
        _unimplemented(run)
    problems = []
    want_cards = [c.SerializeToString(deterministic=True) for c in baseline.cards]
    want_summary = baseline.summaries[-1].SerializeToString(deterministic=True) if baseline.summaries else None
    for exchange_id, r in requests.items():
        messages = run.by_exchange[exchange_id]
        if not run.ended(exchange_id) or messages[-1].WhichOneof("item") != "summary":
            problems.append(f"exchange {exchange_id} got {_ending(run, exchange_id)}, not a summary")
            continue
        wrong_ids = {m.query_id for m in messages if m.query_id != r.query_id}
        if wrong_ids:
            problems.append(f"exchange {exchange_id} echoed query_id {sorted(wrong_ids)[0]!r}, not {r.query_id!r}")
        if _cards(messages) != want_cards or _summary(messages) != want_summary:
            problems.append(f"exchange {exchange_id}'s cards or summary differ from ListCards' answer")
    if problems and run.code is not None:
        problems.append(f"the stream ended {run.code.name}")
    if problems:
        raise CheckFailed(
            "; ".join(problems) + ". Fix: answer each exchange by your ListCards code, and tag every message with "
            f"the exchange's exchange_id and its request's query_id ({DOC})."
        )


async def nothing_after_the_end(probe: Probe) -> None:
    async with session(probe) as client:
        await client.start(1, probe.valid_request())
        await client.wait(lambda run: run.ended(1), probe.target.timeout)
        await client.start(2, probe.valid_request())
        await client.wait(lambda run: run.ended(2), probe.target.timeout)
        run = await client.finish(probe.target.timeout)
        _unimplemented(run)
    problems = list(run.stray)
    if run.code != grpc.StatusCode.OK:
        problems.append(f"after the suite half-closed the stream it ended {run.code.name if run.code else 'never'}")
    if problems:
        raise CheckFailed(
            "; ".join(problems[:5]) + ". Fix: send nothing for an exchange after its summary or error, only use "
            "exchange ids the hub sent, and end the stream OK once the hub half-closed it and its exchanges are done "
            f"({DOC})."
        )


async def slow_exchange_blocks_none(probe: Probe) -> None:
    timeout = probe.target.timeout
    async with session(probe) as client:
        await client.start(1, probe.valid_request())
        await client.start(2, probe.valid_request())
        second = await client.wait(lambda run: run.ended(2), timeout)
        first = await client.wait(lambda run: run.ended(1), timeout)
        run = client.run
        _unimplemented(run)
        if not first:
            await client.cancel(1)
    if not second:
        raise CheckFailed(
            f"exchange 2 got {_ending(run, 2)} within {timeout:g} s while exchange 1 had {_ending(run, 1)}: one "
            "exchange holds back the next. Fix: run each exchange as a task of its own and write its messages as "
            f"they are ready; never answer exchanges one after another ({DOC})."
        )
    if not first:
        raise CheckFailed(
            f"exchange 1 got {_ending(run, 1)} within {timeout:g} s though exchange 2 was answered. Fix: answer "
            f"every exchange, each on its own ({DOC})."
        )


async def consent_per_exchange(probe: Probe) -> None:
    expired_id = new_query_id()
    now = probe.target.clock.now()
    consent = dataclasses.replace(
        probe.consent_fields(expired_id),
        issue_time=now - dt.timedelta(hours=25),
        expire_time=now - dt.timedelta(hours=1),
    )
    expired = probe.request(expired_id, probe.sign(consent.payload()))
    async with session(probe) as client:
        await client.start(1, expired)
        await client.start(2, probe.valid_request())
        await client.wait(lambda run: run.ended(1) and run.ended(2), probe.target.timeout)
        run = client.run
        _unimplemented(run)
    problems = []
    first = run.by_exchange[1]
    if not run.ended(1) or first[-1].WhichOneof("item") != "error":
        problems.append(f"the exchange with an expired consent got {_ending(run, 1)}")
    elif (first[-1].error.code, first[-1].error.reason) != (_PERMISSION_DENIED, "CONSENT_EXPIRED"):
        problems.append(f"the exchange with an expired consent ended with {_ending(run, 1)}")
    elif len(first) > 1:
        problems.append("the exchange with an expired consent listed cards before its error")
    if not run.ended(2) or run.by_exchange[2][-1].WhichOneof("item") != "summary":
        problems.append(f"the next exchange, with a valid consent, got {_ending(run, 2)}")
    if problems:
        raise CheckFailed(
            "; ".join(problems) + ". Fix: verify each exchange's consent as ListCards does, end a refused one with "
            "an error (code 7, reason CONSENT_EXPIRED, domain cardlookup.bank.v1) and keep the stream going "
            f"({DOC})."
        )


async def cancel_accepted(probe: Probe) -> None:
    async with session(probe) as client:
        await client.start(1, probe.valid_request())
        await client.wait(lambda run: run.ended(1), probe.target.timeout)
        await client.cancel(1)  # late: it already ended
        await client.cancel(99)  # never started
        await client.start(2, probe.valid_request())
        await client.wait(lambda run: run.ended(2), probe.target.timeout)
        run = client.run
        _unimplemented(run)
    if not run.ended(2) or run.by_exchange[2][-1].WhichOneof("item") != "summary":
        ended = f", the stream ended {run.code.name}" if run.code else ""
        raise CheckFailed(
            f"after cancels for an ended and an unknown exchange the next exchange got {_ending(run, 2)}{ended}. "
            f"Fix: a cancel for an exchange that is not open is no error: ignore it ({DOC})."
        )


async def caller_must_be_hub(probe: Probe) -> None:
    other = probe.target.other_client
    if other is None:
        raise CheckSkipped("no second client certificate from the CA was given (--other-client-cert)")
    # First a stream half-closed at once: a bank that checks the caller when
    # the stream opens refuses it. (Writing to a stream the bank is refusing
    # races its status, and grpc.aio may then report INTERNAL.)
    async with session(probe, other) as client:
        opened = await client.finish(probe.target.timeout)
        _unimplemented(opened)
    if _refused_as_not_hub(opened):
        return
    # Else the check may sit in each exchange: one exchange must be refused.
    async with session(probe, other) as client:
        await client.start(1, probe.valid_request())
        await client.wait(lambda run: run.ended(1), probe.target.timeout)
        run = client.run
        _unimplemented(run)
    stream_refused = _refused_as_not_hub(run)
    last = run.by_exchange[1][-1] if run.by_exchange.get(1) else None
    exchange_refused = (
        last is not None
        and last.WhichOneof("item") == "error"
        and (last.error.code, last.error.reason) == (_PERMISSION_DENIED, "CALLER_NOT_HUB")
    )
    if not (stream_refused or exchange_refused):
        status = f", then status {run.code.name}" if run.code else ""
        raise CheckFailed(
            f"a stream from a client certificate that is not the hub's got {_ending(run, 1)}{status}. Fix: check "
            "the caller's DNS SubjectAltName when the stream opens, as for ListCards, and refuse it: "
            f"PERMISSION_DENIED, reason CALLER_NOT_HUB ({DOC})."
        )


def _refused_as_not_hub(run: SessionRun) -> bool:
    return run.code == grpc.StatusCode.PERMISSION_DENIED and (
        run.error_info is not None and run.error_info.reason == "CALLER_NOT_HUB"
    )


_NEW = f"Optional, new in guide {SESSION_GUIDE_VERSION}: "
SESSION_CHECKS: tuple[Check, ...] = (
    Check(
        "session.answers_like_list_cards",
        _NEW + "each exchange of the session stream answers as ListCards, echoing its exchange_id and query_id.",
        answers_like_list_cards,
        since=SESSION_GUIDE_VERSION,
    ),
    Check(
        "session.nothing_after_the_end",
        _NEW + "nothing follows an exchange's summary or error; a half-closed stream ends OK.",
        nothing_after_the_end,
        since=SESSION_GUIDE_VERSION,
    ),
    Check(
        "session.slow_exchange_blocks_none",
        _NEW + "exchanges run concurrently: a slow or stalled one holds back no other.",
        slow_exchange_blocks_none,
        since=SESSION_GUIDE_VERSION,
    ),
    Check(
        "session.consent_per_exchange",
        _NEW + "each exchange's consent is verified; a refusal ends that exchange (code 7), not the stream.",
        consent_per_exchange,
        since=SESSION_GUIDE_VERSION,
    ),
    Check(
        "session.cancel_accepted",
        _NEW + "a cancel for an exchange that is not open is ignored; the stream goes on.",
        cancel_accepted,
        since=SESSION_GUIDE_VERSION,
    ),
    Check(
        "session.caller_must_be_hub",
        _NEW + "the stream is refused to a client certificate that is not the hub's: PERMISSION_DENIED.",
        caller_must_be_hub,
        since=SESSION_GUIDE_VERSION,
    ),
)

__all__ = ["SESSION_CHECKS", "SESSION_GUIDE_VERSION"]
