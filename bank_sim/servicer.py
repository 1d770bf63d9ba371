"""The gRPC face of one simulated bank: CardDirectoryService.ListCards.

A thin layer: it admits only the hub, applies the bank's fault switches
(the simulator's own business), and turns `bank_sim.directory` answers and
errors into the ListCards stream and status codes of cardlookup.bank.v1.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import AsyncIterator
from typing import NoReturn

import grpc

from bank_sim.directory import CardDirectory, InvalidRequest, Lookup, validate
from bank_sim.faults import Faults, Misbehaviour
from bank_sim.misbehaviour import lax_lookup, misbehave
from bank_sim.state import BankState
from bank_sim.wire import answer_messages
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.bank.v1 import card_directory_pb2_grpc as bank_grpc
from cardlookup.clock import Clock
from cardlookup.consent import ConsentError
from cardlookup.pki import HUB_CLIENT_NAME
from cardlookup.rpc_errors import BANK_DOMAIN, abort
from cardlookup.tls import peer_common_names, peer_names

log = logging.getLogger(__name__)

# ErrorInfo reasons of refusals that are not about the request itself.
CALLER_NOT_HUB = "CALLER_NOT_HUB"
INVALID_REQUEST = "INVALID_REQUEST"
TOO_MANY_CONCURRENT_CALLS = "TOO_MANY_CONCURRENT_CALLS"
SIMULATED_OUTAGE = "SIMULATED_OUTAGE"
SIMULATED_ERROR = "SIMULATED_ERROR"
SIMULATED_STREAM_BREAK = "SIMULATED_STREAM_BREAK"


def lookup_of(request: bank_pb.ListCardsRequest) -> Lookup:
    has_consent = request.HasField("consent") and any(
        (request.consent.consent, request.consent.signature, request.consent.key_id)
    )
    return Lookup(
        query_id=request.query_id,
        full_name=request.subject.full_name,
        id_number=request.subject.id_number,
        consent=request.consent if has_consent else None,
    )


class CardDirectoryServicer(bank_grpc.CardDirectoryServiceServicer):
    def __init__(
        self,
        directory: CardDirectory,
        state: BankState,
        clock: Clock,
        rng: random.Random,
        allowed_callers: frozenset[str] = frozenset({HUB_CLIENT_NAME}),
    ) -> None:
        self._directory = directory
        self._state = state
        self._clock = clock
        self._rng = rng
        self._allowed_callers = allowed_callers

    async def ListCards(
        self, request: bank_pb.ListCardsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bank_pb.ListCardsResponse]:
        state = self._state
        # The hub's W3C trace context (docs/bank-integration.md): logged so a
        # bank's line can be matched to the hub's trace of this call.
        traceparent = _traceparent(context)
        if traceparent:
            log.info("bank %s call for query %s traceparent %s", state.code, request.query_id, traceparent)
        # Counted per query id for the whole call, refusals included: a
        # second call for a query still in flight here is an overlap.
        state.call_started(request.query_id)
        try:
            faults = state.faults
            # The caller is who the certificate's DNS SubjectAltName says (R17);
            # the common name is never trusted (only the misbehaviour does).
            callers = peer_names(context)
            if faults.misbehaviour and faults.misbehaviour.breaks(Misbehaviour.CALLER_BY_COMMON_NAME):
                callers |= peer_common_names(context)
            if not callers & self._allowed_callers:
                await self._refuse(context, grpc.StatusCode.PERMISSION_DENIED, CALLER_NOT_HUB, "only the hub may call")
            if faults.max_concurrent is not None and state.in_flight >= faults.max_concurrent:
                await self._refuse(
                    context, grpc.StatusCode.RESOURCE_EXHAUSTED, TOO_MANY_CONCURRENT_CALLS, "too many calls in flight"
                )
            state.in_flight += 1
            state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
            try:
                async for message in self._answer(request, context, faults):
                    yield message
            finally:
                state.in_flight -= 1
        finally:
            state.call_ended(request.query_id)

    async def _answer(
        self, request: bank_pb.ListCardsRequest, context: grpc.aio.ServicerContext, faults: Faults
    ) -> AsyncIterator[bank_pb.ListCardsResponse]:
        if faults.in_outage(self._clock.now()):
            await self._refuse(context, grpc.StatusCode.UNAVAILABLE, SIMULATED_OUTAGE, "the bank is down")
        delay = faults.delay(self._rng)
        if delay > 0:
            await asyncio.sleep(delay)
        if faults.error_rate and self._rng.random() < faults.error_rate:
            code = grpc.StatusCode[faults.error_code]
            await self._refuse(context, code, SIMULATED_ERROR, "simulated failure")
        lookup = lookup_of(request)
        try:
            if faults.misbehaviour and faults.misbehaviour.breaks(Misbehaviour.TRAILING_NEWLINE_ACCEPTED):
                validate(lax_lookup(lookup))
                answer = self._directory.answer_validated(lookup, self._clock.now())
            else:
                answer = self._directory.answer(lookup, self._clock.now())
        except InvalidRequest as error:
            await self._refuse(
                context, grpc.StatusCode.INVALID_ARGUMENT, INVALID_REQUEST, str(error), {"field": error.field}
            )
        except ConsentError as error:
            await self._refuse(context, grpc.StatusCode.PERMISSION_DENIED, error.reason, error.detail)
        messages = answer_messages(answer)
        if faults.misbehaviour is not None:
            first = answer.cards[0].card_ref if answer.cards else None
            full = self._directory.full_number(lookup.id_number, first) if first else None
            conditions = self._directory.unlisted_conditions(lookup.id_number)
            messages = misbehave(faults.misbehaviour, messages, full, conditions)
        sent = 0
        for message in messages:
            # A broken or stalled stream never completes: with fewer than k
            # cards it breaks (stalls) before the summary.
            is_card = message.HasField("card")
            if _reached(faults.break_after_cards, sent, is_card):
                await self._refuse(context, grpc.StatusCode.UNAVAILABLE, SIMULATED_STREAM_BREAK, "stream broken")
            if _reached(faults.stall_after_cards, sent, is_card):
                await _stall()
            yield message
            sent += is_card

    async def _refuse(
        self,
        context: grpc.aio.ServicerContext,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        metadata: dict[str, str] | None = None,
    ) -> NoReturn:
        # Reasons and field names only: never the subject's name or ID number.
        log.info("bank %s refused a call: %s %s", self._state.code, code.name, reason)
        await abort(context, code, reason, message, BANK_DOMAIN, metadata)


_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def _traceparent(context: grpc.aio.ServicerContext) -> str:
    """The call's `traceparent` metadata if it is well-formed, else ""."""
    for key, value in context.invocation_metadata() or ():
        if key == "traceparent" and isinstance(value, str) and _TRACEPARENT.fullmatch(value):
            return value
    return ""


def _reached(k: int | None, cards_sent: int, next_is_card: bool) -> bool:
    return k is not None and (not next_is_card or cards_sent >= k)


async def _stall() -> None:
    """Hangs until the call is cancelled (caller cancel, deadline, shutdown);
    the CancelledError propagates, as grpc.aio needs."""
    await asyncio.Event().wait()
