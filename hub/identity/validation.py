"""Syntax checks of the values the app backend sends. Each returns the
normalised value or raises INVALID_FIELD naming the field; messages never
repeat the value (it may be a name, an ID number or a phone number)."""

from __future__ import annotations

import datetime as dt
import re

from cardlookup.checksums import is_valid_id_number
from cardlookup.regions import REGION_NAMES
from hub.identity.errors import invalid

_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PHONE_RE = re.compile(r"^1[3-9][0-9]{9}$")
_DIGITS6_RE = re.compile(r"^[0-9]{6}$")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def app_id(value: str, field: str) -> str:
    """user_id, request_id: 1-64 characters from [A-Za-z0-9_-]."""
    if not _ID_RE.match(value):
        raise invalid(field, f"{field} must be 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'")
    return value


def full_name(value: str) -> str:
    name = value.strip()
    if not 1 <= len(name) <= 64 or any(ch.isspace() and ch != " " for ch in name):
        raise invalid("full_name", "full_name must be 1 to 64 characters on one line")
    return name


def id_number(value: str) -> str:
    number = value.strip().upper()
    if not is_valid_id_number(number):
        raise invalid("id_number", "id_number must be an 18-character resident ID with a valid check character")
    return number


def expiry_date(value: str) -> dt.date | None:
    """'' for a long-term (长期) document."""
    if not value:
        return None
    try:
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
    if not _PHONE_RE.match(value):
        raise invalid("phone_number", "phone_number must be an 11-digit mainland mobile number")
    return value


def six_digits(value: str, field: str) -> str:
    if not _DIGITS6_RE.match(value):
        raise invalid(field, f"{field} must be 6 digits")
    return value


def query_id(value: str) -> str:
    if not _UUID_RE.match(value):
        raise invalid("name", "the query id must be a lowercase UUID")
    return value


def mask_phone(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}"
