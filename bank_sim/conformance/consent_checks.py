"""Checks of consent verification (R4): a bank serves a correct consent and
refuses every kind of wrong one with the documented ErrorInfo reason."""

from __future__ import annotations

import dataclasses
import datetime as dt

import grpc

from bank_sim.conformance.probe import Probe, new_query_id
from bank_sim.conformance.refusals import expect_refusals
from bank_sim.conformance.results import Check, CheckFailed
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.consent import CLOCK_SKEW

DENIED = grpc.StatusCode.PERMISSION_DENIED
DOC = "docs/bank-integration.md, 'Verifying the consent'"


async def valid_accepted(probe: Probe) -> None:
    answer, _ = await probe.baseline()
    if answer.ok:
        return
    key_id = probe.target.consent_key.key_id
    raise CheckFailed(
        f"a correct request (consent signed with key {key_id!r} for bank {probe.target.bank_code}, this query and "
        f"the known subject, valid for 24 hours) got {answer.describe()}; expected OK with the subject's cards. "
        f"Fix: follow {DOC} step by step; check the subject digest formula and that key {key_id!r} is trusted."
    )


async def unknown_key_refused(probe: Probe) -> None:
    qid = new_query_id()
    payload = probe.consent_fields(qid).payload()
    request = probe.request(qid, probe.sign(payload, probe.untrusted_key, probe.untrusted_key_id))
    await expect_refusals(
        probe,
        "consent.unknown_key_refused",
        [(f"a consent signed by key id {probe.untrusted_key_id!r} the bank was not given", request)],
        DENIED,
        "CONSENT_UNKNOWN_KEY",
        "look the verifying key up by SignedConsent.key_id among the hub keys you were given, and refuse any "
        "other key id before anything else.",
    )


async def signature_invalid_refused(probe: Probe) -> None:
    qid = new_query_id()
    fields = probe.consent_fields(qid)
    good = probe.sign(fields.payload())
    flipped = bytearray(good.signature)
    flipped[0] ^= 0x01
    bad_signature = bank_pb.SignedConsent(consent=good.consent, signature=bytes(flipped), key_id=good.key_id)
    wrong_key = probe.sign(fields.payload(), probe.untrusted_key, probe.target.consent_key.key_id)
    later = fields.expire_time + dt.timedelta(days=365) if fields.expire_time else None
    tampered = bank_pb.SignedConsent(
        consent=dataclasses.replace(fields, expire_time=later).payload(), signature=good.signature, key_id=good.key_id
    )
    await expect_refusals(
        probe,
        "consent.signature_invalid_refused",
        [
            ("a consent whose signature has one bit flipped", probe.request(qid, bad_signature)),
            ("a consent signed by another key under the trusted key id", probe.request(qid, wrong_key)),
            ("a consent whose bytes were changed after signing", probe.request(qid, tampered)),
        ],
        DENIED,
        "CONSENT_SIGNATURE_INVALID",
        "verify the 64-byte Ed25519 signature (RFC 8032, pure Ed25519, no pre-hash) over SignedConsent.consent "
        "exactly as received, before parsing it.",
    )


async def malformed_refused(probe: Probe) -> None:
    qid = new_query_id()
    # A length-delimited field whose length varint never ends: no protobuf
    # library can parse it.
    garbage = probe.sign(b"\x0a\xff\xff")
    no_expiry = probe.sign(dataclasses.replace(probe.consent_fields(qid), expire_time=None).payload())
    await expect_refusals(
        probe,
        "consent.malformed_refused",
        [
            ("signed bytes that are not a Consent message", probe.request(qid, garbage)),
            ("a signed Consent without expire_time", probe.request(qid, no_expiry)),
        ],
        DENIED,
        "CONSENT_MALFORMED",
        "after the signature verifies, parse the bytes as cardlookup.bank.v1.Consent; refuse bytes that do not "
        "parse and a consent lacking issue_time or expire_time.",
    )


async def scope_invalid_refused(probe: Probe) -> None:
    qid = new_query_id()
    fields = dataclasses.replace(probe.consent_fields(qid), scope=bank_pb.CONSENT_SCOPE_UNSPECIFIED)
    await expect_refusals(
        probe,
        "consent.scope_invalid_refused",
        [("a consent with scope CONSENT_SCOPE_UNSPECIFIED", probe.request(qid, probe.sign(fields.payload())))],
        DENIED,
        "CONSENT_SCOPE_INVALID",
        "accept only scope CONSENT_SCOPE_LIST_MASKED_CARDS.",
    )


async def wrong_bank_refused(probe: Probe) -> None:
    qid = new_query_id()
    other = "999" if probe.target.bank_code != "999" else "998"
    fields = dataclasses.replace(probe.consent_fields(qid), bank_code=other)
    await expect_refusals(
        probe,
        "consent.wrong_bank_refused",
        [(f"a consent issued for bank {other}", probe.request(qid, probe.sign(fields.payload())))],
        DENIED,
        "CONSENT_WRONG_BANK",
        "compare Consent.bank_code with your own bank code and refuse any other.",
    )


async def wrong_query_refused(probe: Probe) -> None:
    qid = new_query_id()
    fields = dataclasses.replace(probe.consent_fields(qid), query_id=new_query_id())
    await expect_refusals(
        probe,
        "consent.wrong_query_refused",
        [("a consent issued for another query id", probe.request(qid, probe.sign(fields.payload())))],
        DENIED,
        "CONSENT_WRONG_QUERY",
        "compare Consent.query_id with ListCardsRequest.query_id and refuse a mismatch.",
    )


async def subject_mismatch_refused(probe: Probe) -> None:
    qid = new_query_id()
    subject = probe.target.subject
    other_person = probe.consent_fields(qid, id_number=probe.target.unknown_id_number)
    other_name = probe.consent_fields(qid, full_name=subject.full_name + "甲")
    await expect_refusals(
        probe,
        "consent.subject_mismatch_refused",
        [
            ("a consent issued for another ID number", probe.request(qid, probe.sign(other_person.payload()))),
            ("a consent issued for another name", probe.request(qid, probe.sign(other_name.payload()))),
        ],
        DENIED,
        "CONSENT_SUBJECT_MISMATCH",
        "recompute SHA-256 of UTF-8 'cardlookup.bank.v1/subject\\n' + query_id + '\\n' + id_number + '\\n' + "
        "full_name from the request and compare it with Consent.subject_digest.",
    )


async def not_yet_valid_refused(probe: Probe) -> None:
    qid = new_query_id()
    now = probe.target.clock.now()
    fields = dataclasses.replace(
        probe.consent_fields(qid), issue_time=now + dt.timedelta(hours=1), expire_time=now + dt.timedelta(hours=25)
    )
    minutes = int(CLOCK_SKEW.total_seconds() // 60)
    await expect_refusals(
        probe,
        "consent.not_yet_valid_refused",
        [("a consent issued one hour in the future", probe.request(qid, probe.sign(fields.payload())))],
        DENIED,
        "CONSENT_NOT_YET_VALID",
        f"refuse a consent whose issue_time is more than {minutes} minutes after your clock (keep it NTP-synced).",
    )


async def expired_refused(probe: Probe) -> None:
    qid = new_query_id()
    now = probe.target.clock.now()
    fields = dataclasses.replace(
        probe.consent_fields(qid), issue_time=now - dt.timedelta(hours=25), expire_time=now - dt.timedelta(hours=1)
    )
    await expect_refusals(
        probe,
        "consent.expired_refused",
        [("a consent that expired one hour ago", probe.request(qid, probe.sign(fields.payload())))],
        DENIED,
        "CONSENT_EXPIRED",
        "refuse a consent once your clock reaches its expire_time.",
    )


CONSENT_CHECKS = (
    Check(
        "consent.valid_accepted",
        "A correctly signed consent for this bank, query and subject is accepted (status OK).",
        valid_accepted,
        since="1.0",
    ),
    Check(
        "consent.unknown_key_refused",
        "A consent signed under a key id the bank does not trust is refused: CONSENT_UNKNOWN_KEY.",
        unknown_key_refused,
        since="1.0",
    ),
    Check(
        "consent.signature_invalid_refused",
        "A consent whose Ed25519 signature does not verify is refused: CONSENT_SIGNATURE_INVALID.",
        signature_invalid_refused,
        since="1.0",
    ),
    Check(
        "consent.malformed_refused",
        "Signed bytes that are no complete Consent are refused: CONSENT_MALFORMED.",
        malformed_refused,
        since="1.0",
    ),
    Check(
        "consent.scope_invalid_refused",
        "A consent without the list-masked-cards scope is refused: CONSENT_SCOPE_INVALID.",
        scope_invalid_refused,
        since="1.0",
    ),
    Check(
        "consent.wrong_bank_refused",
        "A consent issued for another bank is refused: CONSENT_WRONG_BANK.",
        wrong_bank_refused,
        since="1.0",
    ),
    Check(
        "consent.wrong_query_refused",
        "A consent issued for another query is refused: CONSENT_WRONG_QUERY.",
        wrong_query_refused,
        since="1.0",
    ),
    Check(
        "consent.subject_mismatch_refused",
        "A consent issued for another person is refused: CONSENT_SUBJECT_MISMATCH.",
        subject_mismatch_refused,
        since="1.0",
    ),
    Check(
        "consent.not_yet_valid_refused",
        "A consent issued in the future (beyond the allowed clock skew) is refused: CONSENT_NOT_YET_VALID.",
        not_yet_valid_refused,
        since="1.0",
    ),
    Check(
        "consent.expired_refused",
        "A consent past its expire_time is refused: CONSENT_EXPIRED.",
        expired_refused,
        since="1.0",
    ),
)
