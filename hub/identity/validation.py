"""Syntax checks of the values the app backend sends. Each returns the
value or raises INVALID_FIELD naming the field; messages never repeat the
value (it may be a name, an ID number or a phone number).

One rule everywhere: the whole value must match (`fullmatch`, never a
`$`-anchored search, which lets a trailing newline through), and nothing is
stripped: a value with surrounding whitespace or a trailing newline is
refused, not silently repaired (the app shows the user what was wrong).
The only normalisation is the ID number's check character, x -> X."""

from __future__ import annotations

import datetime as dt
import re

from cardlookup.checksums import is_valid_id_number
from cardlookup.regions import REGION_NAMES
from hub.identity.errors import invalid

_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PHONE_RE = re.compile(r"1[3-9][0-9]{9}")
_DIGITS6_RE = re.compile(r"[0-9]{6}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_BANK_CODE_RE = re.compile(r"[A-Za-z0-9_-]{1,16}")
_VERSION_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_BANK_CODES = 1000
"""More than any configuration this hub is built for (R3 picks a subset)."""
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def app_id(value: str, field: str) -> str:
    """user_id, request_id: 1-64 characters from [A-Za-z0-9_-]."""
    if not _ID_RE.fullmatch(value):
        raise invalid(field, f"{field} must be 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'")
    return value


def full_name(value: str) -> str:
    # isprintable() is False for control, format and line/paragraph
    # separator characters: none belongs in a name sent on to banks.
    if not 1 <= len(value) <= 64 or not value.isprintable() or value != value.strip():
        raise invalid(
            "full_name", "full_name must be 1 to 64 printable characters on one line, without surrounding spaces"
        )
    return value


def id_number(value: str) -> str:
    number = value.upper()
    if not is_valid_id_number(number):
        raise invalid("id_number", "id_number must be an 18-character resident ID with a valid check character")
    return number


def expiry_date(value: str) -> dt.date | None:
    """'' for a long-term (长期) document."""
    if not value:
        return None
    try:
        # fromisoformat alone also takes "20301231" and week dates.
        if not _DATE_RE.fullmatch(value):
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise invalid(
            "id_expiry_date", "id_expiry_date must be YYYY-MM-DD, or empty for a long-term document"
        ) from None


def region_code(value: str) -> str:
    if value not in REGION_NAMES:
        raise invalid("region_code", "region_code must be a GB/T 2260 province code such as 310000")
    return value


def phone_number(value: str) -> str:
    if not _PHONE_RE.fullmatch(value):
        raise invalid("phone_number", "phone_number must be an 11-digit mainland mobile number")
    return value


def six_digits(value: str, field: str) -> str:
    if not _DIGITS6_RE.fullmatch(value):
        raise invalid(field, f"{field} must be 6 digits")
    return value


def query_id(value: str) -> str:
    if not _UUID_RE.fullmatch(value):
        raise invalid("name", "the query id must be a lowercase UUID")
    return value


def verification_id(value: str) -> str:
    """The id StartVerification returned (a lowercase UUID)."""
    if not _UUID_RE.fullmatch(value):
        raise invalid("verification_id", "verification_id must be the id StartVerification returned")
    return value


def consent_text_version(value: str) -> str:
    if not _VERSION_RE.fullmatch(value):
        raise invalid("consent_text_version", "consent_text_version must be the version ListBanks returned")
    return value


def bank_codes(values: tuple[str, ...]) -> tuple[str, ...]:
    """A non-empty list of distinct, well-formed bank codes (whether each
    is open is a rule, checked later: BANK_NOT_AVAILABLE)."""
    if not values:
        raise invalid("bank_codes", "choose at least one bank")
    if len(values) > MAX_BANK_CODES:
        raise invalid("bank_codes", f"choose at most {MAX_BANK_CODES} banks")
    if not all(_BANK_CODE_RE.fullmatch(code) for code in values):
        raise invalid("bank_codes", "each bank code must be 1 to 16 characters from A-Z, a-z, 0-9, '_' and '-'")
    if len(set(values)) != len(values):
        raise invalid("bank_codes", "bank_codes must not repeat a bank")
    return values


def mask_phone(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}"


def report_public_key(value: bytes, field: str = "report_public_key") -> bytes:
    """Issue 17: a device's X25519 public key, 32 raw bytes."""
    from cardlookup.sealed_report import check_public_key

    try:
        return check_public_key(value)
    except ValueError:
        raise invalid(field, f"{field} must be an X25519 public key: 32 raw bytes") from None
