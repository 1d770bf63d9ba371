"""Checks of the answer itself: stream shape, masking (R8), card types,
summary arithmetic, message size, idempotency, unknown subjects."""

from __future__ import annotations

import re

from bank_sim.conformance.probe import Answer, Probe, new_query_id
from bank_sim.conformance.results import Check, CheckFailed, CheckSkipped
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.checksums import is_luhn_valid

MAX_MESSAGE_BYTES = 1024
"""The hub discards an answer with any bigger message: a masked card or a
summary takes under 200 bytes (and the hub's transport refuses 64 KiB)."""
MAX_UNLISTED_PER_REASON = 1000
"""The hub treats a larger unlisted count as absurd."""
MAX_CARDS = 200
"""The hub discards an answer listing more cards (hub.fanout.validation.MAX_CARDS)."""
_FOUR_DIGITS = re.compile(r"[0-9]{4}")
_CARD_REF = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SEPARATORS = re.compile(rb"[-_ ]")
# Digits, possibly split by separators ("6222-0200-0000-0007", "6222_0200..."):
# a card number written in groups is still a card number.
_DIGIT_RUN = re.compile(rb"[0-9](?:[-_ ]?[0-9]){12,}")
_KNOWN_TYPES = (bank_pb.CARD_TYPE_DEBIT, bank_pb.CARD_TYPE_CREDIT)
_KNOWN_REASONS = (
    bank_pb.UNLISTED_REASON_NO_PHONE_ON_FILE,
    bank_pb.UNLISTED_REASON_ID_DOCUMENT_EXPIRED,
    bank_pb.UNLISTED_REASON_CARD_NOT_PRESENT_DISABLED,
)


async def _baseline_ok(probe: Probe) -> Answer:
    answer, _ = await probe.baseline()
    if not answer.ok and not answer.raw:
        raise CheckSkipped("the correct request got no answer to examine (see consent.valid_accepted)")
    return answer


def _card_key(card: bank_pb.MaskedCard) -> tuple[int, str, str, int, str]:
    return (card.card_type, card.first_four, card.last_four, card.number_length, card.card_ref)


def _fail(problems: list[str], fix: str) -> None:
    if problems:
        shown = problems[:5] + ([f"... and {len(problems) - 5} more"] if len(problems) > 5 else [])
        raise CheckFailed("; ".join(shown) + f". Fix: {fix}")


async def stream_shape(probe: Probe) -> None:
    answer = await _baseline_ok(probe)
    problems = []
    for i, message in enumerate(answer.messages):
        if message is None:
            problems.append(f"message {i} is not a valid ListCardsResponse")
        elif message.WhichOneof("item") is None:
            problems.append(f"message {i} sets neither card nor summary")
    kinds = [m.WhichOneof("item") if m is not None else None for m in answer.messages]
    summaries = kinds.count("summary")
    if summaries != 1:
        problems.append(f"the stream has {summaries} summary messages, not exactly one")
    elif kinds[-1] != "summary":
        problems.append(f"the summary is message {kinds.index('summary')} of {len(kinds)}, not the last")
    if not answer.ok:
        problems.append(f"the stream ended with {answer.code.name} ({answer.details!r}), not OK")
    _fail(
        problems,
        "stream every card as ListCardsResponse{card}, then one ListCardsResponse{summary}, then end the call "
        "with status OK.",
    )


def _masking_problems(index: int, card: bank_pb.MaskedCard, raw: bytes) -> list[str]:
    problems = []
    for field in ("first_four", "last_four"):
        value = getattr(card, field)
        if not _FOUR_DIGITS.fullmatch(value):
            problems.append(f"card {index} {field} is {len(value)} character(s), not exactly 4 ASCII digits")
    if not 13 <= card.number_length <= 19:
        problems.append(f"card {index} number_length is {card.number_length}, not 13 to 19")
    if not _CARD_REF.fullmatch(card.card_ref):
        problems.append(f"card {index} card_ref is not 1 to 64 characters from [A-Za-z0-9_-]")
    # A full number shows as a digit run (separators removed) that starts with
    # the card's first four and ends with its last four, or passes the Luhn
    # check: in any field, known or not, so the raw bytes are searched.
    for run in _DIGIT_RUN.findall(raw):
        digits = _SEPARATORS.sub(b"", run).decode()
        if _looks_like_number(digits, card):
            split = " (split by separators)" if len(digits) != len(run) else ""
            problems.append(f"card {index} carries a {len(digits)}-digit run{split} that looks like a card number")
            break
    return problems


def _looks_like_number(digits: str, card: bank_pb.MaskedCard) -> bool:
    if 13 <= len(digits) <= 19 and (
        is_luhn_valid(digits) or (digits.startswith(card.first_four) and digits.endswith(card.last_four))
    ):
        return True
    # A longer run may embed the number: look for the card's own digits.
    return any(
        is_luhn_valid(window) and window.startswith(card.first_four) and window.endswith(card.last_four)
        for length in range(13, 20)
        for window in (digits[i : i + length] for i in range(len(digits) - length + 1))
    )


async def masked_only(probe: Probe) -> None:
    answer = await _baseline_ok(probe)
    problems = []
    for index, (message, raw) in enumerate(zip(answer.messages, answer.raw, strict=True)):
        if message is not None and message.WhichOneof("item") == "card":
            problems += _masking_problems(index, message.card, raw)
    _fail(
        problems,
        "send only the first 4 and last 4 digits and the digit count; make card_ref a random id or keyed MAC "
        "from [A-Za-z0-9_-], never the number or a plain hash of it; never put a card number in any field.",
    )


async def card_type_known(probe: Probe) -> None:
    answer = await _baseline_ok(probe)
    problems = [
        f"card {i} has card_type {card.card_type} ({bank_pb.CardType.Name(card.card_type)})"
        if card.card_type in bank_pb.CardType.values()
        else f"card {i} has card_type {card.card_type}, not a value of CardType"
        for i, card in enumerate(answer.cards)
        if card.card_type not in _KNOWN_TYPES
    ]
    _fail(problems, "set card_type to CARD_TYPE_DEBIT or CARD_TYPE_CREDIT on every card.")


async def summary_matches_stream(probe: Probe) -> None:
    answer = await _baseline_ok(probe)
    if len(answer.summaries) != 1:
        raise CheckFailed(
            f"the answer has {len(answer.summaries)} summaries. Fix: end every answer with exactly one summary "
            "(see list.stream_shape)."
        )
    summary, cards = answer.summaries[0], answer.cards
    debit = sum(1 for c in cards if c.card_type == bank_pb.CARD_TYPE_DEBIT)
    credit = sum(1 for c in cards if c.card_type == bank_pb.CARD_TYPE_CREDIT)
    problems = []
    for field, streamed in (
        ("listed_card_count", len(cards)),
        ("debit_card_count", debit),
        ("credit_card_count", credit),
    ):
        claimed = getattr(summary, field)
        if claimed != streamed:
            problems.append(f"summary {field} is {claimed} but the stream has {streamed}")
    reasons = [u.reason for u in summary.unlisted]
    for entry in summary.unlisted:
        if entry.reason not in _KNOWN_REASONS:
            problems.append(f"an unlisted entry has reason {entry.reason}, not a known UnlistedReason")
        if not 1 <= entry.card_count <= MAX_UNLISTED_PER_REASON:
            problems.append(
                f"the unlisted entry for reason {entry.reason} counts {entry.card_count}, "
                f"not 1 to {MAX_UNLISTED_PER_REASON}"
            )
    if len(set(reasons)) != len(reasons):
        problems.append("the unlisted entries repeat a reason")
    _fail(
        problems,
        "count the cards you streamed (all, debit, credit) into the summary; list unlisted cards once per reason "
        "with a count of at least 1, omitting reasons with none.",
    )


async def message_size(probe: Probe) -> None:
    answer, _ = await probe.baseline()
    problems = [f"message {i} is {len(raw)} bytes" for i, raw in enumerate(answer.raw) if len(raw) > MAX_MESSAGE_BYTES]
    if not answer.ok and "larger than max" in answer.details:
        problems.append(f"a message exceeded even the suite's receive limit: {answer.details!r}")
    if not problems and not answer.ok and not answer.raw:
        raise CheckSkipped("the correct request got no answer to examine (see consent.valid_accepted)")
    _fail(
        problems,
        f"keep every ListCardsResponse at most {MAX_MESSAGE_BYTES} bytes: one masked card or the summary per "
        "message, nothing else in it.",
    )


async def idempotent(probe: Probe) -> None:
    first, request = await probe.baseline()
    if not first.ok:
        raise CheckSkipped("the correct request was not answered OK (see consent.valid_accepted)")
    again = await probe.call(request)
    if not again.ok:
        raise CheckFailed(
            f"a retry with the same query_id and consent got {again.describe()}. Fix: treat query_id as an "
            "idempotency key: a retry is answered exactly like the first call, never refused as a duplicate."
        )
    if list(again.messages) != list(first.messages):
        raise CheckFailed(
            f"a retry with the same query_id got a different answer ({len(again.cards)} card(s) vs "
            f"{len(first.cards)}, or other order or content). Fix: answer a retry exactly as the first call: "
            "same cards, same order, same card_ref values, same summary."
        )


async def card_ref_stable(probe: Probe) -> None:
    first, _ = await probe.baseline()
    if not first.ok:
        raise CheckSkipped("the correct request was not answered OK (see consent.valid_accepted)")
    refs = [c.card_ref for c in first.cards]
    if len(set(refs)) != len(refs):
        raise CheckFailed("two cards in one answer share a card_ref. Fix: make card_ref unique per card.")
    other = await probe.call(probe.valid_request(new_query_id()))
    if not other.ok:
        raise CheckFailed(
            f"a second query for the same subject got {other.describe()}. Fix: answer every correct query with "
            "status OK."
        )
    if sorted(map(_card_key, other.cards)) != sorted(map(_card_key, first.cards)):
        raise CheckFailed(
            "a new query for the same subject listed different cards or card_refs. Fix: derive card_ref from "
            "the card (random id stored with it, or a keyed MAC), never from the query."
        )


async def card_cap(probe: Probe) -> None:
    answer = await _baseline_ok(probe)
    if len(answer.cards) > MAX_CARDS:
        raise CheckFailed(
            f"the answer lists {len(answer.cards)} cards; the hub discards any answer with more than {MAX_CARDS} "
            "(TOO_MANY_CARDS) and the user gets nothing from your bank. Fix: list only the subject's own cards; "
            "no person holds that many at one bank."
        )


async def known_subject_listed(probe: Probe) -> None:
    answer, _ = await probe.baseline()
    if not answer.ok:
        raise CheckSkipped("the correct request was not answered OK (see consent.valid_accepted)")
    expected = probe.target.subject.expected_listed
    if expected is not None and len(answer.cards) != expected:
        raise CheckFailed(
            f"the known test subject got {len(answer.cards)} card(s); the bank's test data lists {expected}. "
            "Fix: look the subject up by id_number in the records the test subject was created in."
        )
    if not answer.cards:
        raise CheckFailed(
            "the known test subject got no cards, so masking and card checks had nothing to examine. Fix: "
            "point the suite at a test customer with at least one listed card."
        )


async def unknown_subject_empty(probe: Probe) -> None:
    await _baseline_ok(probe)
    qid = new_query_id()
    id_number = probe.target.unknown_id_number
    name = probe.target.subject.full_name
    consent = probe.sign(probe.consent_fields(qid, id_number=id_number).payload())
    answer = await probe.call(probe.request(qid, consent, id_number=id_number, full_name=name))
    fix = (
        "answer an unknown subject exactly like a customer with no cards: no card messages, one summary of "
        "zeros, status OK; never NOT_FOUND (the answer must not reveal who is a customer)."
    )
    if not answer.ok:
        raise CheckFailed(f"a subject the bank does not know got {answer.describe()}. Fix: {fix}")
    summaries = answer.summaries
    empty = bank_pb.ListCardsSummary()
    if answer.cards or len(summaries) != 1 or summaries[0] != empty:
        raise CheckFailed(
            f"a subject the bank does not know got {len(answer.cards)} card(s) and {len(summaries)} summary "
            f"message(s), expected none and one all-zero summary. Fix: {fix}"
        )


async def unlisted_reason_precedence(probe: Probe) -> None:
    await _baseline_ok(probe)
    subject = probe.target.precedence_subject
    qid = new_query_id()
    consent = probe.sign(probe.consent_fields(qid, id_number=subject.id_number, full_name=subject.full_name).payload())
    answer = await probe.call(probe.request(qid, consent, id_number=subject.id_number, full_name=subject.full_name))
    fix = (
        "count each unlisted card once, under the first of its R13 conditions in the order ID document expired, "
        "no phone on file, card-not-present disabled; and create the R13 test customer "
        f"({subject.full_name}, {subject.id_number}) with its two cards in your test environment "
        "(docs/bank-integration.md, 'Which cards are listed (R13)')."
    )
    if not answer.ok or len(answer.summaries) != 1:
        raise CheckFailed(f"the R13 test customer got {answer.describe()}. Fix: {fix}")
    got = {bank_pb.UnlistedReason.Name(u.reason): u.card_count for u in answer.summaries[0].unlisted}
    if answer.cards or got != _PRECEDENCE_EXPECTED:
        raise CheckFailed(
            f"the R13 test customer got {len(answer.cards)} listed card(s) and unlisted counts {got or 'none'}; "
            f"expected no listed card and {_PRECEDENCE_EXPECTED}. Fix: {fix}"
        )


_PRECEDENCE_EXPECTED = {"UNLISTED_REASON_ID_DOCUMENT_EXPIRED": 1, "UNLISTED_REASON_NO_PHONE_ON_FILE": 1}
"""The R13 test customer's two cards: all three conditions (ID document
expired wins), and no phone + card-not-present disabled (no phone wins)."""


LIST_CHECKS = (
    Check(
        "list.stream_shape",
        "An answer is zero or more cards, then exactly one summary, then status OK.",
        stream_shape,
        since="1.0",
    ),
    Check(
        "list.masked_only",
        "Cards carry 4+4 ASCII digits, a length of 13-19, a card_ref of [A-Za-z0-9_-]{1,64}, no card number.",
        masked_only,
        since="1.0",
    ),
    Check("list.card_type_known", "Every card is CARD_TYPE_DEBIT or CARD_TYPE_CREDIT.", card_type_known, since="1.0"),
    Check(
        "list.summary_matches_stream",
        "The summary's counts equal the cards streamed; unlisted counts are per known reason and at least 1.",
        summary_matches_stream,
        since="1.0",
    ),
    Check(
        "list.message_size", f"Every response message is at most {MAX_MESSAGE_BYTES} bytes.", message_size, since="1.0"
    ),
    Check("list.card_cap", f"An answer lists at most {MAX_CARDS} cards (the hub's cap).", card_cap, since="1.1"),
    Check(
        "list.idempotent",
        "A retry with the same query_id and consent gets the identical answer.",
        idempotent,
        since="1.0",
    ),
    Check(
        "list.card_ref_stable",
        "card_ref values are unique per card and the same in every query for the subject.",
        card_ref_stable,
        since="1.0",
    ),
    Check(
        "list.known_subject_listed",
        "The known test subject's listed cards are streamed (as many as expected, when given).",
        known_subject_listed,
        since="1.0",
    ),
    Check(
        "list.unknown_subject_empty",
        "An unknown subject gets no cards and an all-zero summary with status OK, never NOT_FOUND.",
        unknown_subject_empty,
        since="1.0",
    ),
    Check(
        "list.unlisted_reason_precedence",
        "A card with several R13 reasons counts once, by precedence: ID document expired, no phone, "
        "card-not-present disabled.",
        unlisted_reason_precedence,
        since="1.1",
    ),
)
