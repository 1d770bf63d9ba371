"""What a careful bank does with a "not my card" case (issue 12): the
optional cardlookup.bank.v1.CardCaseService, reference logic and its gRPC
face.

OpenCardCase, step by step (docs/bank-integration.md, "Card cases"):

1. Validate the request's shape (INVALID_ARGUMENT, reason INVALID_REQUEST).
2. Verify the consent as for ListCards, but with scope
   CONSENT_SCOPE_OPEN_CARD_CASE and the consent's `card_ref` equal to the
   request's (PERMISSION_DENIED with the consent reason).
3. Find the card among the subject's own cards by `card_ref` (NOT_FOUND,
   CARD_NOT_FOUND, when the subject holds no such card or the name does not
   match the records).
4. Open the case once per (query id, card_ref): a retry gets the same
   reference. A card the user does not recognise is suspended at once; a
   card the user wants closed waits for the user's visit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bank_sim.directory import InvalidRequest, Lookup, validate
from bank_sim.issued import IssuedCards
from bank_sim.state import BankState
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.bank.v1 import card_directory_pb2_grpc as bank_grpc
from cardlookup.clock import Clock
from cardlookup.consent import ConsentError, verify_consent
from cardlookup.pki import HUB_CLIENT_NAME
from cardlookup.population import Population
from cardlookup.rpc_errors import BANK_DOMAIN, abort
from cardlookup.tls import peer_names

log = logging.getLogger(__name__)

CARD_REF_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")
CARD_NOT_FOUND = "CARD_NOT_FOUND"

NEXT_STEPS: dict[int, tuple[bank_pb.CardCaseStatus, str, str]] = {
    bank_pb.CARD_CASE_KIND_NOT_RECOGNISED: (
        bank_pb.CARD_CASE_STATUS_CARD_SUSPENDED,
        "我行已受理您的案件并暂停该卡使用。请于30日内携带本人有效身份证件到我行任一网点核实；如非本人办理，我行将协助销户并报案。",
        "We have opened your case and suspended the card. Within 30 days, bring your identity document to any of"
        " our branches to verify it; if you did not open the card, we will close it and report it.",
    ),
    bank_pb.CARD_CASE_KIND_CLOSE_REQUESTED: (
        bank_pb.CARD_CASE_STATUS_RECEIVED,
        "我行已受理您的销户申请。请携带本人有效身份证件到我行任一网点办理销户手续。",
        "We have received your request to close the card. Bring your identity document to any of our branches to"
        " complete the closure.",
    ),
}


class CardNotFound(Exception):
    """The subject holds no card with this card_ref at this bank."""


@dataclass(frozen=True)
class OpenedCase:
    case_reference: str
    status: bank_pb.CardCaseStatus
    next_step: str
    next_step_english: str


class CardCases:
    """The card cases of one bank over its records (a Population)."""

    def __init__(
        self,
        bank_code: str,
        records: Population,
        trusted_keys: Mapping[str, Ed25519PublicKey],
        issued: IssuedCards | None = None,
    ) -> None:
        self.bank_code = bank_code
        self._records = records
        self._issued = issued or IssuedCards()
        self._trusted_keys = trusted_keys
        self._opened: dict[tuple[str, str], OpenedCase] = {}

    def open(self, request: bank_pb.OpenCardCaseRequest, now: dt.datetime) -> OpenedCase:
        """The case, or InvalidRequest / ConsentError / CardNotFound."""
        has_consent = request.HasField("consent") and any(
            (request.consent.consent, request.consent.signature, request.consent.key_id)
        )
        lookup = Lookup(
            query_id=request.query_id,
            full_name=request.subject.full_name,
            id_number=request.subject.id_number,
            consent=request.consent if has_consent else None,
        )
        validate(lookup)
        if not CARD_REF_SHAPE.fullmatch(request.card_ref):
            raise InvalidRequest("card_ref", "must be 1 to 64 characters from [A-Za-z0-9_-]")
        if request.kind not in NEXT_STEPS:
            raise InvalidRequest("kind", "must be NOT_RECOGNISED or CLOSE_REQUESTED")
        assert lookup.consent is not None
        verify_consent(
            lookup.consent,
            self._trusted_keys,
            bank_code=self.bank_code,
            query_id=lookup.query_id,
            id_number=lookup.id_number,
            full_name=lookup.full_name,
            now=now,
            scope=bank_pb.CONSENT_SCOPE_OPEN_CARD_CASE,
            card_ref=request.card_ref,
        )
        person = self._records.find_by_id_number(lookup.id_number)
        held = self._records.cards_at(self.bank_code, lookup.id_number) + self._issued.of(lookup.id_number)
        if person is None or person.full_name != lookup.full_name or all(c.card_ref != request.card_ref for c in held):
            raise CardNotFound()
        key = (lookup.query_id, request.card_ref)
        opened = self._opened.get(key)
        if opened is None:
            status, zh, en = NEXT_STEPS[request.kind]
            digest = hashlib.sha256(f"{self.bank_code}\n{lookup.query_id}\n{request.card_ref}".encode()).hexdigest()
            opened = OpenedCase(f"C{self.bank_code}-{digest[:12].upper()}", status, zh, en)
            self._opened[key] = opened
        return opened


class CardCaseServicer(bank_grpc.CardCaseServiceServicer):
    def __init__(
        self,
        cases: CardCases,
        state: BankState,
        clock: Clock,
        allowed_callers: frozenset[str] = frozenset({HUB_CLIENT_NAME}),
    ) -> None:
        self._cases = cases
        self._state = state
        self._clock = clock
        self._allowed_callers = allowed_callers

    async def OpenCardCase(
        self, request: bank_pb.OpenCardCaseRequest, context: grpc.aio.ServicerContext
    ) -> bank_pb.OpenCardCaseResponse:
        if not peer_names(context) & self._allowed_callers:
            await self._refuse(context, grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_HUB", "only the hub may call")
        if self._state.faults.down:
            await self._refuse(context, grpc.StatusCode.UNAVAILABLE, "SIMULATED_OUTAGE", "the bank is down")
        try:
            opened = self._cases.open(request, self._clock.now())
        except InvalidRequest as error:
            await self._refuse(
                context, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST", str(error), {"field": error.field}
            )
        except ConsentError as error:
            await self._refuse(context, grpc.StatusCode.PERMISSION_DENIED, error.reason, error.detail)
        except CardNotFound:
            await self._refuse(context, grpc.StatusCode.NOT_FOUND, CARD_NOT_FOUND, "no such card for this subject")
        self._state.case_count += 1
        return bank_pb.OpenCardCaseResponse(
            case_reference=opened.case_reference,
            status=opened.status,
            next_step=opened.next_step,
            next_step_english=opened.next_step_english,
        )

    async def _refuse(
        self,
        context: grpc.aio.ServicerContext,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        metadata: dict[str, str] | None = None,
    ) -> NoReturn:
        log.info("bank %s refused a card case: %s %s", self._state.code, code.name, reason)
        await abort(context, code, reason, message, BANK_DOMAIN, metadata)
