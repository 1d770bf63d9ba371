""" "Not my card" (issue 12): from a card of the report to a case at the bank.

The announcement tells users to close unfamiliar cards at the issuing bank
(R16's notice). Here the report's owner flags a card instead: with the
payment password (the bank's `card_ref` of the card exists only inside the
report sealed to the user, so the report is opened exactly as GetReport
opens it, checks, lockout and access event included), the hub signs a
consent for that one card (scope OPEN_CARD_CASE) and calls the bank's
optional CardCaseService. The case's reference, status and next step go into
the query's history. A bank without the service (UNIMPLEMENTED) gets the
announcement's advice: visit the bank with the masked number.

The history keeps no card digits and no card_ref; the masked number is
returned to the user in the FlagCard answer only.

A report sealed to the user's device (issue 17) cannot be opened here: the
device sends the card as it opened it (`DeviceCard`). The password, READY
and expiry checks are the same; the hub checks the bank is one the query
asked, and the bank checks the card_ref is a card of the person the consent
names (a forged reference reaches, at most, the user's own cards).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.clock import Clock
from hub.core.config import HubConfig
from hub.core.domain import ReportCard
from hub.core.logging import get_logger
from hub.fanout.cases import CaseCaller, Failed, NotOffered, Opened
from hub.identity.errors import RuleViolation, invalid
from hub.identity.journey import Journey
from hub.identity.users import UserDirectory
from hub.keys.crypto import ConsentSigner
from hub.store.card_cases import CardCase, CardCaseStore

log = get_logger("hub.card_cases")

KINDS = {
    "NOT_RECOGNISED": bank_pb.CARD_CASE_KIND_NOT_RECOGNISED,
    "CLOSE_REQUESTED": bank_pb.CARD_CASE_KIND_CLOSE_REQUESTED,
}
_BANK_STATUS = {
    bank_pb.CARD_CASE_STATUS_RECEIVED: "RECEIVED",
    bank_pb.CARD_CASE_STATUS_CARD_SUSPENDED: "CARD_SUSPENDED",
}
_CARD_ID = re.compile(r"[1-9][0-9]{0,3}")
_CARD_REF = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FOUR_DIGITS = re.compile(r"[0-9]{4}")


@dataclass(frozen=True)
class DeviceCard:
    """A card of a device-sealed report as the device opened it
    (FlagCardRequest.device_card). Never logged: repr hides the reference."""

    bank_code: str
    card_ref: str = field(repr=False)
    first_four: str
    last_four: str


def masked(card: ReportCard | DeviceCard) -> str:
    """R8: first 4 and last 4 digits only."""
    return f"{card.first_four} **** {card.last_four}"


def visit_bank_advice(bank_name: str, masked_card: str = "") -> tuple[str, str]:
    """The announcement's advice for a bank that takes no cases online:
    close unfamiliar or unused cards at the bank. With the masked number
    for the user's screen; without it for the stored history."""
    zh_card = f"（卡号{masked_card}）" if masked_card else ""
    en_card = f" (card {masked_card})" if masked_card else ""
    return (
        f"{bank_name}暂不支持在线受理。对于非本人掌握或不再使用的银行卡{zh_card}，"
        f"请携带本人有效身份证件及时到{bank_name}网点办理销户手续。",
        f"{bank_name} does not take cases online yet. For a card you do not recognise or no longer use{en_card},"
        f" take your identity document to a {bank_name} branch and have it closed.",
    )


@dataclass(frozen=True)
class FlaggedCard:
    """The case, and what only the user's screen gets: the masked number
    (and, for VISIT_BANK, the advice naming it)."""

    case: CardCase
    masked_card: str
    next_step: str
    next_step_english: str


class CardCaseDesk:
    def __init__(
        self,
        *,
        config: HubConfig,
        clock: Clock,
        journey: Journey,
        users: UserDirectory,
        store: CardCaseStore,
        caller: CaseCaller,
        signer: ConsentSigner,
    ) -> None:
        self._config = config
        self._clock = clock
        self._journey = journey
        self._users = users
        self._store = store
        self._caller = caller
        self._signer = signer

    def reconfigure(self, config: HubConfig) -> None:
        """A reloaded configuration (issue 19 item 4): the bank registry and
        timings of the cases opened from now on."""
        self._config = config

    async def flag(
        self,
        user_id: str,
        query_id: str,
        password: str,
        card_id: str,
        kind: str,
        device_card: DeviceCard | None = None,
    ) -> FlaggedCard:
        if kind not in KINDS:
            raise invalid("kind", "kind must be NOT_RECOGNISED or CLOSE_REQUESTED")
        if not _CARD_ID.fullmatch(card_id):
            raise invalid("card_id", "card_id must be a ReportCard.card_id of the report")
        # Ownership, READY, expiry (R11), password and lockout (R10), the
        # access event, and the report opened with the user's key.
        report = await self._journey.get_report(user_id, query_id, password)
        # The query's record: the banks it asked (a device's card) and the
        # consent text (a bank call); read only when one of them is needed.
        view = await self._journey.get_query(user_id, query_id) if report.sealed else None
        card: ReportCard | DeviceCard
        if view is not None:
            card = _checked_device_card(device_card, view.record.bank_codes)
        else:
            index = int(card_id) - 1
            if index >= len(report.cards):
                raise RuleViolation("CARD_NOT_FOUND", "the report has no such card", {"card_id": card_id})
            card = report.cards[index]
        existing = await self._store.get(query_id, card_id)
        endpoint = self._config.bank(card.bank_code)
        bank_name = endpoint.display_name if endpoint else card.bank_code
        if existing is not None:
            return _flagged(existing, card, bank_name)
        now = self._clock.now()
        result: Opened | NotOffered | Failed = NotOffered()
        if endpoint is not None and card.card_ref:
            view = view or await self._journey.get_query(user_id, query_id)
            subject = self._users.identity(await self._users.row(user_id)).subject
            request = self._signer.open_card_case_request(
                query_id=query_id,
                bank_code=card.bank_code,
                full_name=subject.full_name,
                id_number=subject.id_number,
                card_ref=card.card_ref,
                kind=KINDS[kind],
                issue_time=now,
                expire_time=now + self._config.timings.report_window,
                consent_text_version=view.record.consent_text_version,
            )
            result = await self._caller.open_case(endpoint, request)
        if isinstance(result, Failed) and result.reason == "CARD_NOT_FOUND":
            # The bank holds no such card for this person (a device-sealed
            # report's card_ref the device got wrong): not worth a retry.
            log.info("card_case_card_unknown", query_id=query_id, bank=card.bank_code)
            raise RuleViolation("CARD_NOT_FOUND", "the bank has no such card of yours", {"card_id": card_id})
        if isinstance(result, Failed):
            log.info("card_case_failed", query_id=query_id, bank=card.bank_code, reason=result.reason)
            raise RuleViolation(
                "CARD_CASE_NOT_OPENED",
                "the bank could not open the case now; try again later",
                {"bank_code": card.bank_code},
            )
        if isinstance(result, Opened):
            status, reference = _BANK_STATUS[result.status], result.case_reference
            zh, en = result.next_step, result.next_step_english
        else:
            status, reference = "VISIT_BANK", ""
            zh, en = visit_bank_advice(bank_name)
        case = await self._store.add(
            CardCase(query_id, card_id, user_id, card.bank_code, kind, status, reference, zh, en, now)
        )
        log.info("card_case_opened", query_id=query_id, bank=card.bank_code, status=case.status)
        return _flagged(case, card, bank_name)


def _checked_device_card(card: DeviceCard | None, bank_codes: tuple[str, ...]) -> DeviceCard:
    """The device's copy of the card: present, of a bank the query asked,
    well-formed (its truth is the bank's to check)."""
    if card is None:
        raise invalid("device_card", "the report is sealed to the device: send the card as the device opened it")
    if card.bank_code not in bank_codes:
        raise invalid("device_card.bank_code", "device_card.bank_code must be a bank this query asked")
    if not _CARD_REF.fullmatch(card.card_ref):
        raise invalid("device_card.card_ref", "device_card.card_ref must be 1 to 64 characters from [A-Za-z0-9_-]")
    for name in ("first_four", "last_four"):
        if not _FOUR_DIGITS.fullmatch(getattr(card, name)):
            raise invalid(f"device_card.{name}", f"device_card.{name} must be 4 digits")
    return card


def _flagged(case: CardCase, card: ReportCard | DeviceCard, bank_name: str) -> FlaggedCard:
    if case.status == "VISIT_BANK":
        zh, en = visit_bank_advice(bank_name, masked(card))
        return FlaggedCard(case, masked(card), zh, en)
    return FlaggedCard(case, masked(card), case.next_step, case.next_step_english)
