"""The optional group: "not my card" cases (CardCaseService.OpenCardCase,
issue 12). A bank that does not offer the service answers UNIMPLEMENTED and
every check of the group that needs it is skipped; a bank that offers it
must verify the case consent (scope OPEN_CARD_CASE, bound to the card), open
one case per (query, card) and answer with a reference and a next step."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import grpc

from bank_sim.conformance.credentials import ClientIdentity
from bank_sim.conformance.probe import Answer, Probe, new_query_id
from bank_sim.conformance.refusals import refusal_problem
from bank_sim.conformance.results import Check, CheckFailed, CheckSkipped
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.rpc_errors import ErrorInfo, error_info_of

OPEN_CARD_CASE = "/cardlookup.bank.v1.CardCaseService/OpenCardCase"
DOC = "docs/bank-integration.md, 'Card cases (optional)'"
_REFERENCE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DIGIT_RUN = re.compile(r"[0-9][0-9 -]{10,}[0-9]")


def looks_like_card_number(text: str) -> bool:
    """A run of 13 or more digits (spaces or dashes between): no text a bank
    sends may hold one (the hub's validator rejects the same)."""
    return any(sum(c.isdigit() for c in m.group()) >= 13 for m in _DIGIT_RUN.finditer(text))


_STATUSES = (bank_pb.CARD_CASE_STATUS_RECEIVED, bank_pb.CARD_CASE_STATUS_CARD_SUSPENDED)


@dataclass(frozen=True)
class CaseAnswer:
    code: grpc.StatusCode
    details: str
    error_info: ErrorInfo | None
    response: bank_pb.OpenCardCaseResponse | None

    def describe(self) -> str:
        status = self.code.name
        if self.error_info is not None:
            status += f" with ErrorInfo reason {self.error_info.reason!r}"
        return f"status {status}"


async def open_case(probe: Probe, request: bank_pb.OpenCardCaseRequest) -> CaseAnswer:
    target = probe.target
    identity: ClientIdentity = target.hub_client
    credentials = grpc.ssl_channel_credentials(
        root_certificates=target.ca_cert.read_bytes(),
        private_key=identity.key.read_bytes(),
        certificate_chain=identity.cert.read_bytes(),
    )
    options = [("grpc.ssl_target_name_override", target.expected_server_name), ("grpc.enable_retries", 0)]
    async with grpc.aio.secure_channel(target.address, credentials, options=options) as channel:
        method = channel.unary_unary(
            OPEN_CARD_CASE,
            request_serializer=bank_pb.OpenCardCaseRequest.SerializeToString,
            response_deserializer=bank_pb.OpenCardCaseResponse.FromString,
        )
        try:
            response = await method(request, timeout=target.timeout)
        except grpc.aio.AioRpcError as error:
            return CaseAnswer(error.code(), error.details() or "", error_info_of(error), None)
        return CaseAnswer(grpc.StatusCode.OK, "", None, response)


def case_request(
    probe: Probe,
    query_id: str,
    card_ref: str,
    *,
    consent_card_ref: str | None = None,
    scope: int = bank_pb.CONSENT_SCOPE_OPEN_CARD_CASE,
    kind: int = bank_pb.CARD_CASE_KIND_NOT_RECOGNISED,
) -> bank_pb.OpenCardCaseRequest:
    fields = dataclasses.replace(
        probe.consent_fields(query_id),
        scope=scope,
        card_ref=card_ref if consent_card_ref is None else consent_card_ref,
    )
    subject = probe.target.subject
    return bank_pb.OpenCardCaseRequest(
        query_id=query_id,
        subject=bank_pb.Subject(full_name=subject.full_name, id_number=subject.id_number),
        card_ref=card_ref,
        kind=kind,  # type: ignore[arg-type]
        consent=probe.sign(fields.payload()),
    )


async def _known_card(probe: Probe) -> tuple[str, str]:
    """(query id, card_ref) of a card the bank listed for the known subject."""
    answer, request = await probe.baseline()
    if not answer.ok or not answer.cards:
        raise CheckSkipped("the bank listed no card for the known subject (see consent.valid_accepted)")
    return request.query_id, answer.cards[0].card_ref


async def _offered(probe: Probe, request: bank_pb.OpenCardCaseRequest) -> CaseAnswer:
    answer = await open_case(probe, request)
    if answer.code == grpc.StatusCode.UNIMPLEMENTED:
        raise CheckSkipped("the bank does not offer the optional CardCaseService (UNIMPLEMENTED)")
    return answer


async def case_opened(probe: Probe) -> None:
    query_id, card_ref = await _known_card(probe)
    answer = await _offered(probe, case_request(probe, query_id, card_ref))
    r = answer.response
    if r is None:
        raise CheckFailed(
            f"a correct OpenCardCase for a card the bank listed (card_ref {card_ref!r}) got {answer.describe()};"
            f" expected OK with a case. Fix: follow {DOC}."
        )
    problems = []
    if not _REFERENCE.fullmatch(r.case_reference):
        problems.append("case_reference must be 1 to 64 characters from [A-Za-z0-9_-]")
    if r.status not in _STATUSES:
        problems.append("status must be CARD_CASE_STATUS_RECEIVED or CARD_CASE_STATUS_CARD_SUSPENDED")
    for name, text in (("next_step", r.next_step), ("next_step_english", r.next_step_english)):
        if not text.strip() or len(text) > 500:
            problems.append(f"{name} must be 1 to 500 characters")
        elif looks_like_card_number(text):
            problems.append(f"{name} must never hold a card number")
    if problems:
        raise CheckFailed("; ".join(problems) + f". Fix: see {DOC}.")


async def case_idempotent(probe: Probe) -> None:
    query_id, card_ref = await _known_card(probe)
    first = await _offered(probe, case_request(probe, query_id, card_ref))
    again = await open_case(probe, case_request(probe, query_id, card_ref))
    if first.response is None:
        raise CheckSkipped("no case was opened (see cases.opened)")
    if again.response is None or again.response.case_reference != first.response.case_reference:
        got = again.describe() if again.response is None else repr(again.response.case_reference)
        raise CheckFailed(
            f"the same case (query id and card_ref) sent again got {got}, not the case reference"
            f" {first.response.case_reference!r}. Fix: key cases on (query_id, card_ref) and answer a retry with"
            " the case already opened."
        )


async def _expect_case_refusal(
    probe: Probe, situation: str, request: bank_pb.OpenCardCaseRequest, code: grpc.StatusCode, reason: str, fix: str
) -> None:
    answer = await _offered(probe, request)
    if answer.response is not None:
        raise CheckFailed(f"{situation}: the bank opened a case; expected {code.name} with {reason}. Fix: {fix}")
    # Reuse the ListCards judgement: the code, then the ErrorInfo reason.
    as_list = Answer(answer.code, answer.details, answer.error_info, (), ())
    problem = refusal_problem(as_list, code, reason)
    if problem is not None:
        raise CheckFailed(f"{situation}: {problem}. Fix: {fix}")


async def case_scope_refused(probe: Probe) -> None:
    _, card_ref = await _known_card(probe)
    await _expect_case_refusal(
        probe,
        "an OpenCardCase whose consent has the list-masked-cards scope",
        case_request(probe, new_query_id(), card_ref, scope=bank_pb.CONSENT_SCOPE_LIST_MASKED_CARDS),
        grpc.StatusCode.PERMISSION_DENIED,
        "CONSENT_SCOPE_INVALID",
        "OpenCardCase accepts only a consent with scope CONSENT_SCOPE_OPEN_CARD_CASE.",
    )


async def case_card_mismatch_refused(probe: Probe) -> None:
    query_id, card_ref = await _known_card(probe)
    await _expect_case_refusal(
        probe,
        "an OpenCardCase whose consent names another card",
        case_request(probe, query_id, card_ref, consent_card_ref="another-card-ref"),
        grpc.StatusCode.PERMISSION_DENIED,
        "CONSENT_CARD_MISMATCH",
        "refuse a case consent whose Consent.card_ref differs from the request's card_ref.",
    )


async def unknown_card_refused(probe: Probe) -> None:
    query_id, _ = await _known_card(probe)
    await _expect_case_refusal(
        probe,
        "an OpenCardCase for a card_ref the subject does not hold",
        case_request(probe, query_id, "conformance-no-such-card"),
        grpc.StatusCode.NOT_FOUND,
        "CARD_NOT_FOUND",
        "answer NOT_FOUND with reason CARD_NOT_FOUND when the subject holds no card with this card_ref.",
    )


async def list_refuses_case_scope(probe: Probe) -> None:
    qid = new_query_id()
    fields = dataclasses.replace(probe.consent_fields(qid), scope=bank_pb.CONSENT_SCOPE_OPEN_CARD_CASE)
    answer = await probe.call(probe.request(qid, probe.sign(fields.payload())))
    problem = refusal_problem(answer, grpc.StatusCode.PERMISSION_DENIED, "CONSENT_SCOPE_INVALID")
    if problem is not None:
        raise CheckFailed(
            f"ListCards with a consent of scope CONSENT_SCOPE_OPEN_CARD_CASE: {problem}. Fix: ListCards accepts"
            " only CONSENT_SCOPE_LIST_MASKED_CARDS."
        )


CASE_CHECKS: tuple[Check, ...] = (
    Check(
        "cases.list_refuses_case_scope",
        "ListCards refuses a consent for a card case (scope OPEN_CARD_CASE): CONSENT_SCOPE_INVALID.",
        list_refuses_case_scope,
        since="1.2",
    ),
    Check(
        "cases.opened",
        "Optional: OpenCardCase for a listed card opens a case with a reference, a status and a next step.",
        case_opened,
        since="1.2",
    ),
    Check(
        "cases.idempotent",
        "Optional: the same (query id, card_ref) gets the same case reference.",
        case_idempotent,
        since="1.2",
    ),
    Check(
        "cases.consent_scope_refused",
        "Optional: OpenCardCase refuses a list-cards consent: CONSENT_SCOPE_INVALID.",
        case_scope_refused,
        since="1.2",
    ),
    Check(
        "cases.consent_card_mismatch_refused",
        "Optional: OpenCardCase refuses a consent for another card: CONSENT_CARD_MISMATCH.",
        case_card_mismatch_refused,
        since="1.2",
    ),
    Check(
        "cases.unknown_card_refused",
        "Optional: OpenCardCase for a card the subject does not hold: NOT_FOUND, CARD_NOT_FOUND.",
        unknown_card_refused,
        since="1.2",
    ),
)
