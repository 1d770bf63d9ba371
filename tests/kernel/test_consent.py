from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.consent import ConsentError, VerifiedConsent, sign_consent, subject_digest, verify_consent

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
QID = "6f1c9a52-8d3e-4b7a-9c1d-2e5f7a8b9c0d"
KEY = Ed25519PrivateKey.generate()


def _signed(**overrides: object) -> bank_pb.SignedConsent:
    args: dict[str, object] = dict(
        query_id=QID,
        bank_code="102",
        id_number="11010519491231002X",
        full_name="张三",
        issue_time=NOW,
        expire_time=NOW + dt.timedelta(hours=24),
        consent_text_version="2022-03-01",
    )
    args.update(overrides)
    return sign_consent(KEY, "k1", **args)  # type: ignore[arg-type]


def _verify(signed: bank_pb.SignedConsent, **overrides: object) -> VerifiedConsent:
    args: dict[str, object] = dict(
        bank_code="102", query_id=QID, id_number="11010519491231002X", full_name="张三", now=NOW
    )
    args.update(overrides)
    return verify_consent(signed, {"k1": KEY.public_key()}, **args)  # type: ignore[arg-type]


def test_subject_digest_is_documented_sha256() -> None:
    import hashlib

    text = f"cardlookup.bank.v1/subject\n{QID}\n11010519491231002X\n张三"
    assert subject_digest(QID, "11010519491231002X", "张三") == hashlib.sha256(text.encode()).digest()
    assert subject_digest("other", "11010519491231002X", "张三") != subject_digest(QID, "11010519491231002X", "张三")


def test_valid_consent_verifies() -> None:
    verified = _verify(_signed())
    assert verified.bank_code == "102"
    assert verified.expire_time == NOW + dt.timedelta(hours=24)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (
            lambda s: bank_pb.SignedConsent(consent=s.consent, signature=s.signature, key_id="nope"),
            "CONSENT_UNKNOWN_KEY",
        ),
        (
            lambda s: bank_pb.SignedConsent(consent=s.consent + b"\x00", signature=s.signature, key_id=s.key_id),
            "CONSENT_SIGNATURE_INVALID",
        ),
    ],
)
def test_tampering_is_refused(mutate: object, reason: str) -> None:
    with pytest.raises(ConsentError) as err:
        _verify(mutate(_signed()))  # type: ignore[operator]
    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("verify_overrides", "reason"),
    [
        ({"bank_code": "103"}, "CONSENT_WRONG_BANK"),
        ({"query_id": "00000000-0000-4000-8000-000000000000"}, "CONSENT_WRONG_QUERY"),
        ({"id_number": "110105194912310037"}, "CONSENT_SUBJECT_MISMATCH"),
        ({"full_name": "李四"}, "CONSENT_SUBJECT_MISMATCH"),
        ({"now": NOW + dt.timedelta(hours=24)}, "CONSENT_EXPIRED"),
        ({"now": NOW - dt.timedelta(minutes=6)}, "CONSENT_NOT_YET_VALID"),
    ],
)
def test_careful_bank_refusals(verify_overrides: dict[str, object], reason: str) -> None:
    with pytest.raises(ConsentError) as err:
        _verify(_signed(), **verify_overrides)
    assert err.value.reason == reason


def test_small_clock_skew_is_tolerated() -> None:
    _verify(_signed(), now=NOW - dt.timedelta(minutes=4))


def test_signature_by_another_key_is_refused() -> None:
    forged = sign_consent(
        Ed25519PrivateKey.generate(),
        "k1",
        query_id=QID,
        bank_code="102",
        id_number="11010519491231002X",
        full_name="张三",
        issue_time=NOW,
        expire_time=NOW + dt.timedelta(hours=1),
        consent_text_version="v",
    )
    with pytest.raises(ConsentError) as err:
        _verify(forged)
    assert err.value.reason == "CONSENT_SIGNATURE_INVALID"


def test_list_cards_request_carries_a_consent_for_its_own_subject() -> None:
    from cardlookup.consent import list_cards_request

    request = list_cards_request(
        KEY,
        "k1",
        query_id=QID,
        bank_code="102",
        id_number="11010519491231002X",
        full_name="张三",
        issue_time=NOW,
        expire_time=NOW + dt.timedelta(hours=1),
        consent_text_version="v",
    )
    assert (request.query_id, request.subject.id_number, request.subject.full_name) == (
        QID,
        "11010519491231002X",
        "张三",
    )
    verified = verify_consent(
        request.consent,
        {"k1": KEY.public_key()},
        bank_code="102",
        query_id=request.query_id,
        id_number=request.subject.id_number,
        full_name=request.subject.full_name,
        now=NOW,
    )
    assert verified.query_id == QID
