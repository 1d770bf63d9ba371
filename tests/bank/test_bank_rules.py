"""A simulated bank behaves like a careful bank: who may call, request
validation, consent verification, idempotency, unknown subjects."""

from __future__ import annotations

import datetime as dt
import uuid

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bank_sim.fleet import BankFleet
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.checksums import id_check_char
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Person, Population
from cardlookup.rpc_errors import BANK_DOMAIN, error_info_of
from tests.bank.caller import BankCaller, bank_caller


async def refused(caller: BankCaller, code: str, request: bank_pb.ListCardsRequest) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await caller.list_cards(code, request)
    return caught.value


def reason(error: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    info = error_info_of(error)
    assert info is not None and info.domain == BANK_DOMAIN
    return error.code(), info.reason, info.metadata


async def test_same_query_id_gets_the_same_answer(
    caller: BankCaller, customer: tuple[Person, str], clock: ManualClock
) -> None:
    person, code = customer
    request = caller.request(code, person.full_name, person.id_number, now=clock.now())
    first = await caller.list_cards(code, request)
    clock.advance(dt.timedelta(hours=3))
    again = await caller.list_cards(code, request)
    assert len(first.cards) >= 2
    assert again.cards == first.cards and again.summary == first.summary


async def test_a_query_id_reused_for_another_subject_is_refused(
    caller: BankCaller, customer: tuple[Person, str], population: Population, clock: ManualClock
) -> None:
    person, code = customer
    other = next(p for p in population.people if p.id_number != person.id_number)
    query_id = str(uuid.uuid4())
    await caller.list_cards(
        code, caller.request(code, person.full_name, person.id_number, now=clock.now(), query_id=query_id)
    )
    error = await refused(
        caller, code, caller.request(code, other.full_name, other.id_number, now=clock.now(), query_id=query_id)
    )
    assert reason(error) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST", {"field": "query_id"})


async def test_unknown_subject_gets_an_empty_list_not_not_found(caller: BankCaller, clock: ManualClock) -> None:
    first17 = "31010119800101999"
    stranger = first17 + id_check_char(first17)
    got = await caller.list_cards("102", caller.request("102", "路人甲", stranger, now=clock.now()))
    assert got.cards == []
    assert got.summary == bank_pb.ListCardsSummary()


async def test_a_name_that_does_not_match_the_records_gets_an_empty_list(
    caller: BankCaller, customer: tuple[Person, str], clock: ManualClock
) -> None:
    person, code = customer
    got = await caller.list_cards(
        code, caller.request(code, person.full_name + "某", person.id_number, now=clock.now())
    )
    assert got.cards == [] and got.summary == bank_pb.ListCardsSummary()


@pytest.mark.parametrize(
    ("bend", "expected_reason"),
    [
        ("wrong_bank", "CONSENT_WRONG_BANK"),
        ("wrong_query", "CONSENT_WRONG_QUERY"),
        ("wrong_subject", "CONSENT_SUBJECT_MISMATCH"),
        ("expired", "CONSENT_EXPIRED"),
        ("future", "CONSENT_NOT_YET_VALID"),
        ("unknown_key", "CONSENT_UNKNOWN_KEY"),
        ("bad_signature", "CONSENT_SIGNATURE_INVALID"),
        ("other_signer", "CONSENT_SIGNATURE_INVALID"),
        ("malformed", "CONSENT_MALFORMED"),
        ("no_scope", "CONSENT_SCOPE_INVALID"),
    ],
)
async def test_each_consent_failure_is_permission_denied_with_its_reason(
    caller: BankCaller,
    customer: tuple[Person, str],
    population: Population,
    clock: ManualClock,
    bend: str,
    expected_reason: str,
) -> None:
    person, code = customer
    now = clock.now()
    kw: dict[str, object] = {}
    if bend == "wrong_bank":
        kw["consent_bank"] = "103" if code != "103" else "102"
    elif bend == "wrong_query":
        kw["consent_query"] = str(uuid.uuid4())
    elif bend == "wrong_subject":
        kw["consent_id_number"] = next(p for p in population.people if p != person).id_number
    elif bend == "future":
        kw["issue_time"] = now + dt.timedelta(hours=1)
    request = caller.request(code, person.full_name, person.id_number, now=now, **kw)  # type: ignore[arg-type]
    if bend == "expired":
        clock.advance(dt.timedelta(hours=24))  # the consent lives exactly 24 h
    elif bend == "unknown_key":
        request.consent.key_id = "someone-else"
    elif bend == "bad_signature":
        request.consent.signature = bytes(64)
    elif bend == "other_signer":
        request.consent.signature = Ed25519PrivateKey.generate().sign(request.consent.consent)
    elif bend in ("malformed", "no_scope"):
        payload = b"\xff\xff\xff" if bend == "malformed" else _without_scope(request.consent.consent)
        request.consent.consent = payload
        request.consent.signature = caller._signing_key.sign(payload)
    error = await refused(caller, code, request)
    assert reason(error)[:2] == (grpc.StatusCode.PERMISSION_DENIED, expected_reason)
    # A refused call reveals nothing about the subject.
    assert person.id_number not in (error.details() or "") and person.full_name not in (error.details() or "")


def _without_scope(payload: bytes) -> bytes:
    consent = bank_pb.Consent.FromString(payload)
    consent.scope = bank_pb.CONSENT_SCOPE_UNSPECIFIED
    return consent.SerializeToString()


async def test_consent_valid_until_just_before_expiry(
    caller: BankCaller, customer: tuple[Person, str], clock: ManualClock
) -> None:
    person, code = customer
    request = caller.request(code, person.full_name, person.id_number, now=clock.now())
    clock.advance(dt.timedelta(hours=24) - dt.timedelta(seconds=1))
    got = await caller.list_cards(code, request)
    assert got.summary is not None and got.summary.listed_card_count >= 2


@pytest.mark.parametrize(
    ("field", "bend"),
    [
        ("query_id", lambda r: setattr(r, "query_id", r.query_id.upper())),
        ("query_id", lambda r: setattr(r, "query_id", "")),
        ("query_id", lambda r: setattr(r, "query_id", r.query_id + "\n")),
        ("subject.full_name", lambda r: setattr(r.subject, "full_name", "  ")),
        ("subject.full_name", lambda r: setattr(r.subject, "full_name", "张" * 65)),
        ("subject.id_number", lambda r: setattr(r.subject, "id_number", r.subject.id_number[:17] + "Y")),
        ("subject.id_number", lambda r: setattr(r.subject, "id_number", _wrong_check(r.subject.id_number))),
        ("consent", lambda r: r.ClearField("consent")),
    ],
)
async def test_malformed_requests_are_invalid_argument_naming_the_field(
    caller: BankCaller, customer: tuple[Person, str], clock: ManualClock, field: str, bend: object
) -> None:
    person, code = customer
    request = caller.request(code, person.full_name, person.id_number, now=clock.now())
    bend(request)  # type: ignore[operator]
    error = await refused(caller, code, request)
    assert reason(error) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST", {"field": field})
    assert person.id_number not in (error.details() or "")


def _wrong_check(id_number: str) -> str:
    right = id_number[17]
    return id_number[:17] + ("0" if right != "0" else "1")


async def test_a_client_certificate_that_is_not_the_hubs_is_refused(
    pki: PkiPaths, fleet: BankFleet, customer: tuple[Person, str], clock: ManualClock
) -> None:
    person, code = customer
    async with bank_caller(pki, fleet.addresses, identity="app-backend") as intruder:
        request = intruder.request(code, person.full_name, person.id_number, now=clock.now())
        error = await refused(intruder, code, request)
    assert reason(error)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_HUB")
    assert fleet.call_count(code) == 1  # refused calls count too


async def test_a_certificate_from_another_ca_fails_the_handshake(
    tmp_path_factory: pytest.TempPathFactory,
    pki: PkiPaths,
    fleet: BankFleet,
    customer: tuple[Person, str],
    clock: ManualClock,
) -> None:
    from cardlookup.pki import create_dev_pki

    person, code = customer
    rogue = create_dev_pki(tmp_path_factory.mktemp("rogue-pki"), ["102"])
    # The rogue client trusts the real CA, so only the bank's check of the
    # client certificate can refuse it.
    rogue_with_real_ca = PkiPaths(rogue.root)
    (rogue.root / "ca.pem").write_bytes(pki.ca_cert.read_bytes())
    async with bank_caller(rogue_with_real_ca, fleet.addresses) as intruder:
        request = intruder.request(code, person.full_name, person.id_number, now=clock.now())
        error = await refused(intruder, code, request)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert fleet.call_count(code) == 0  # never reached the bank's code


async def test_a_certificate_naming_the_hub_only_in_its_common_name_is_refused(
    pki: PkiPaths, fleet: BankFleet, customer: tuple[Person, str], clock: ManualClock
) -> None:
    """Issue 9 item 1 at the banks: the caller is who the DNS SubjectAltName
    says; a certificate from the CA with CN = the hub's name is not the hub."""
    from bank_sim.conformance.impostor import CN_IMPOSTOR, cn_impostor_identity

    cn_impostor_identity(pki)
    person, code = customer
    async with bank_caller(pki, fleet.addresses, identity=CN_IMPOSTOR) as impostor:
        error = await refused(
            impostor, code, impostor.request(code, person.full_name, person.id_number, now=clock.now())
        )
    assert reason(error) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_HUB", {})


@pytest.mark.parametrize("field", ["subject.full_name", "subject.id_number"])
async def test_a_trailing_newline_is_refused_not_stripped(
    caller: BankCaller, customer: tuple[Person, str], clock: ManualClock, field: str
) -> None:
    """Issue 9 item 3 at the banks: whole-value matching. The consent is
    signed for exactly the value sent, so only the newline can be refused."""
    person, code = customer
    name = person.full_name + ("\n" if field == "subject.full_name" else "")
    id_number = person.id_number + ("\n" if field == "subject.id_number" else "")
    error = await refused(caller, code, caller.request(code, name, id_number, now=clock.now()))
    assert reason(error) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST", {"field": field})
