"""The conformance suite against the bank simulator: a correct bank passes
every check; a bank switched to each misbehaviour fails the named check."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bank_sim.conformance import CHECKS, ConformanceTarget, Outcome, run_conformance
from bank_sim.conformance.target import dev_target, population_subject
from bank_sim.faults import Faults, Misbehaviour
from bank_sim.fleet import BankFleet, BankSimConfig, FleetConfig
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.clock import SystemClock
from cardlookup.consent import ConsentError, subject_digest, verify_consent
from cardlookup.pki import PkiPaths
from cardlookup.population import Population

CODE = "102"


@pytest.fixture
async def sim_bank(pki: PkiPaths, population: Population) -> AsyncIterator[BankFleet]:
    """One simulated bank on the real clock (the suite signs consents with
    the real time), no admin server."""
    config = FleetConfig(
        pki=pki, banks=(BankSimConfig(CODE),), population=population, clock=SystemClock(), admin_port=None
    )
    async with BankFleet(config) as fleet:
        yield fleet


@pytest.fixture
def target(pki: PkiPaths, population: Population, sim_bank: BankFleet) -> ConformanceTarget:
    return dev_target(pki, sim_bank.address(CODE), CODE, population_subject(population, CODE), timeout=5.0)


def _failed(results: list) -> dict[str, str]:
    return {r.name: r.explanation for r in results if r.outcome is Outcome.FAIL}


async def test_a_correct_bank_passes_every_check(target: ConformanceTarget) -> None:
    results = await run_conformance(target)
    assert [r.name for r in results] == [c.name for c in CHECKS]
    assert _failed(results) == {}
    assert all(r.outcome is Outcome.PASS for r in results), [(r.name, r.explanation) for r in results]


@pytest.mark.parametrize(
    ("misbehaviour", "check"),
    [
        (Misbehaviour.FULL_CARD_NUMBER, "list.masked_only"),
        (Misbehaviour.WRONG_DIGITS, "list.masked_only"),
        (Misbehaviour.UNKNOWN_CARD_TYPE, "list.card_type_known"),
        (Misbehaviour.SUMMARY_MISMATCH, "list.summary_matches_stream"),
        (Misbehaviour.OVERSIZED_MESSAGE, "list.message_size"),
    ],
)
async def test_a_misbehaving_bank_fails_the_named_check(
    target: ConformanceTarget, sim_bank: BankFleet, misbehaviour: Misbehaviour, check: str
) -> None:
    sim_bank.set_faults(CODE, Faults(misbehaviour=misbehaviour))
    results = await run_conformance(target, only=("tls", "consent", "list"))
    failed = _failed(results)
    assert check in failed, failed
    assert failed[check].count("Fix:") == 1
    # The bank's transport and consent handling are still right: only the
    # answer's data is blamed.
    assert all(name.startswith("list.") for name in failed), failed


# A card-level misbehaviour corrupts every answer (a card-less one gets a
# decoy card), so the checks that look at other subjects' answers fail too.
_OTHER_SUBJECTS = {"list.unknown_subject_empty", "list.unlisted_reason_precedence"}


@pytest.mark.parametrize(
    ("misbehaviour", "check", "also"),
    [
        # The case checks open a case with a listed card's card_ref: this bank
        # lists refs its case service does not know.
        (Misbehaviour.CARD_REF_FROM_NUMBER, "list.masked_only", _OTHER_SUBJECTS | {"cases.opened", "cases.idempotent"}),
        (Misbehaviour.TOO_MANY_CARDS, "list.card_cap", _OTHER_SUBJECTS),
        (Misbehaviour.WRONG_REASON_PRECEDENCE, "list.unlisted_reason_precedence", set()),
        (Misbehaviour.TRAILING_NEWLINE_ACCEPTED, "request.trailing_newline_refused", set()),
        (Misbehaviour.CALLER_BY_COMMON_NAME, "tls.caller_identity_from_san", set()),
    ],
)
async def test_each_new_rule_fails_its_check(
    pki: PkiPaths,
    population: Population,
    sim_bank: BankFleet,
    misbehaviour: Misbehaviour,
    check: str,
    also: set[str],
) -> None:
    """Issue 9 (SAN-only identity, trailing newlines, split card numbers, the
    card cap) and R13's precedence: a bank breaking one rule fails its check,
    the whole suite run. No --expected-cards is given, so the card cap is
    caught on its own."""
    subject = dataclasses.replace(population_subject(population, CODE), expected_listed=None)
    target = dev_target(pki, sim_bank.address(CODE), CODE, subject, timeout=5.0)
    sim_bank.set_faults(CODE, Faults(misbehaviour=misbehaviour))
    failed = _failed(await run_conformance(target))
    assert check in failed, failed
    assert set(failed) <= {check, *also}, failed
    assert failed[check].count("Fix:") == 1


def test_a_card_number_split_by_underscores_is_found() -> None:
    from bank_sim.conformance.list_checks import _masking_problems

    number = "6222020000000007"
    card = bank_pb.MaskedCard(
        card_type=bank_pb.CARD_TYPE_DEBIT, first_four="6222", last_four="0007", number_length=16, card_ref="x"
    )
    for ref in ("_".join(number[i : i + 4] for i in range(0, 16, 4)), "ref-" + "-".join(number), "c0ffee12"):
        card.card_ref = ref
        problems = _masking_problems(0, card, bank_pb.ListCardsResponse(card=card).SerializeToString())
        assert bool(problems) is (ref != "c0ffee12"), (ref, problems)


def test_the_suite_is_as_strict_as_the_hub() -> None:
    """A bank that passes the suite must not have its answers discarded by the
    hub's validator for size or counts."""
    from bank_sim import misbehaviour
    from bank_sim.conformance import list_checks
    from hub.fanout import validation

    assert list_checks.MAX_MESSAGE_BYTES == validation.MAX_MESSAGE_BYTES
    assert list_checks.MAX_UNLISTED_PER_REASON == validation.MAX_UNLISTED
    assert list_checks.MAX_CARDS == validation.MAX_CARDS == misbehaviour.HUB_CARD_CAP


def test_the_worked_example_in_the_guide_verifies(repo_root: Path) -> None:
    """docs/bank-integration.md gives banks a consent to test against; it must
    verify exactly as the guide says, and fail where the guide says."""
    guide = (repo_root / "docs" / "bank-integration.md").read_text()
    pem = re.search(r"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", guide, re.S)
    digest = re.search(r"subject digest \(hex\): `([0-9a-f]+)`", guide)
    payload = re.search(r"`SignedConsent\.consent` \(hex\):\s+`([0-9a-f]+)`", guide)
    signature = re.search(r"`SignedConsent\.signature` \(hex\):\s+`([0-9a-f]+)`", guide)
    assert pem and digest and payload and signature
    key = serialization.load_pem_public_key(pem.group().encode())
    assert isinstance(key, Ed25519PublicKey)
    query_id, id_number, name = "5b0f3c9e-2f4a-4c1d-9e8b-7a6d5c4b3a21", "310101199003071230", "张三"
    assert subject_digest(query_id, id_number, name).hex() == digest.group(1)
    signed = bank_pb.SignedConsent(
        consent=bytes.fromhex(payload.group(1)),
        signature=bytes.fromhex(signature.group(1)),
        key_id="hub-consent-example-1",
    )
    keys = {"hub-consent-example-1": key}
    at = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
    verified = verify_consent(
        signed, keys, bank_code="102", query_id=query_id, id_number=id_number, full_name=name, now=at
    )
    assert verified.expire_time == dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
    with pytest.raises(ConsentError) as wrong_bank:
        verify_consent(signed, keys, bank_code="103", query_id=query_id, id_number=id_number, full_name=name, now=at)
    assert wrong_bank.value.reason == "CONSENT_WRONG_BANK"


def test_the_guide_and_the_suite_cover_every_status_code_and_reason(repo_root: Path) -> None:
    """Every status code the contract's comments list, and every consent
    refusal reason a bank must use, is documented in the guide and exercised
    by a conformance check."""
    guide = (repo_root / "docs" / "bank-integration.md").read_text()
    proto = (repo_root / "protos" / "cardlookup" / "bank" / "v1" / "card_directory.proto").read_text()
    block = proto[proto.index("Status codes a bank may return") : proto.index("rpc ListCards")]
    codes = set(re.findall(r"\b[A-Z][A-Z_]+\b", block)) & {c.name for c in grpc.StatusCode}
    assert len(codes) >= 8
    assert {c for c in codes if f"`{c}`" not in guide} == set()
    consent_source = (repo_root / "cardlookup" / "consent.py").read_text()
    reasons = set(re.findall(r'"(CONSENT_[A-Z_]+)"', consent_source)) | {"CALLER_NOT_HUB", "INVALID_REQUEST"}
    assert len(reasons) == 12
    assert {r for r in reasons if f"`{r}`" not in guide} == set()
    described = " ".join(c.description for c in CHECKS)
    assert {r for r in reasons if r not in described} == set()
