"""Checks of request validation: malformed requests are refused as such."""

from __future__ import annotations

import grpc

from bank_sim.conformance.probe import Probe, new_query_id
from bank_sim.conformance.refusals import expect_refusals
from bank_sim.conformance.results import Check
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.checksums import id_check_char


def _wrong_check_char(id_number: str) -> str:
    right = id_check_char(id_number[:17])
    return id_number[:17] + ("1" if right != "1" else "2")


def _signed_for(probe: Probe, query_id: str, id_number: str, full_name: str) -> bank_pb.ListCardsRequest:
    """A request whose consent is valid for exactly these (bad) values, so
    the only fault left is the malformed field itself."""
    consent = probe.sign(probe.consent_fields(query_id, id_number=id_number, full_name=full_name).payload())
    request = probe.request(query_id, consent, id_number=id_number, full_name=full_name)
    if not id_number and not full_name:
        request.ClearField("subject")
    return request


async def malformed_refused(probe: Probe) -> None:
    subject = probe.target.subject
    qid = new_query_id()
    no_consent = probe.request(qid, None)
    upper = qid.upper()
    cases = [
        ("a request without consent", no_consent),
        ("a request without subject", _signed_for(probe, new_query_id(), "", "")),
        ("a query_id in upper case", _signed_for(probe, upper, subject.id_number, subject.full_name)),
        ("a query_id that is not a UUID", _signed_for(probe, "query-1", subject.id_number, subject.full_name)),
        (
            "an ID number with a wrong check character",
            _signed_for(probe, new_query_id(), _wrong_check_char(subject.id_number), subject.full_name),
        ),
        (
            "a 15-digit ID number",
            _signed_for(probe, new_query_id(), subject.id_number[:6] + subject.id_number[8:17], subject.full_name),
        ),
        ("an empty full_name", _signed_for(probe, new_query_id(), subject.id_number, "")),
    ]
    await expect_refusals(
        probe,
        "request.malformed_refused",
        cases,
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_REQUEST",
        "validate the request before anything else: query_id a lowercase RFC 4122 UUID (36 characters), subject "
        "present with a non-empty full_name and an 18-character ID number whose GB 11643 check character is "
        "right, consent present; refuse otherwise with INVALID_ARGUMENT and reason INVALID_REQUEST.",
    )


async def trailing_newline_refused(probe: Probe) -> None:
    subject = probe.target.subject
    cases = [
        (
            "a full_name with a trailing newline",
            _signed_for(probe, new_query_id(), subject.id_number, subject.full_name + "\n"),
        ),
        (
            "an ID number with a trailing newline",
            _signed_for(probe, new_query_id(), subject.id_number + "\n", subject.full_name),
        ),
    ]
    await expect_refusals(
        probe,
        "request.trailing_newline_refused",
        cases,
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_REQUEST",
        "match each field's whole value (Python re.fullmatch, Java matches(), Go ^...$ with regexp, JS /^...$/ "
        "without the m flag); a pattern ending in `$` used with Python re.match/search, or a value stripped "
        "before it is checked, lets a trailing newline through. Refuse such values, never strip them.",
    )


REQUEST_CHECKS = (
    Check(
        "request.malformed_refused",
        "A malformed request is refused: INVALID_ARGUMENT, INVALID_REQUEST.",
        malformed_refused,
        since="1.0",
    ),
    Check(
        "request.trailing_newline_refused",
        "A full_name or ID number with a trailing newline is refused, not stripped: INVALID_ARGUMENT, INVALID_REQUEST.",
        trailing_newline_refused,
        since="1.1",
    ),
)
