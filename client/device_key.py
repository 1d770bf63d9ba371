"""The device's report key (issue 17): the X25519 key pair whose public
half the app registers (EnrollUser `report_public_key`, ReplaceReportKey)
and whose private half opens the reports the hub sealed to it.

`open_report` turns GetReport's `sealed_report` into the same `pb.Report`
an unsealed GetReport returns (bank display names excepted: they come from
ListBanks; the hub's sealed summary holds bank codes only). The format is
cardlookup.sealed_report's (docs/security.md "Sealed reports").

The key file is the raw 32-byte private key, hex, private (0600) from its
first byte.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cardlookup import sealed_report as sr
from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.private_files import private_dir


class DeviceKeyNeeded(ValueError):
    """The report is sealed to the device: GetReport needs its private key."""


def generate() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def public_bytes(key: X25519PrivateKey) -> bytes:
    return sr.public_raw(key)


def save(key: X25519PrivateKey, path: Path) -> None:
    """Writes the key to a new file, 0600 from its first byte."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(sr.private_raw(key).hex() + "\n")


def load(path: Path) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(bytes.fromhex(path.read_text().strip()))


def load_or_create(path: Path) -> X25519PrivateKey:
    if path.exists():
        return load(path)
    key = generate()
    save(key, path)
    return key


def open_report(
    response: svc.GetReportResponse, key: X25519PrivateKey | None, user_id: str, query_id: str
) -> pb.Report:
    """GetReport's report, opened on the device when it came sealed."""
    if not response.sealed_report:
        return response.report
    if key is None:
        raise DeviceKeyNeeded("the report is sealed to the user's device key: pass it to open the report")
    previous: set[str] | None = None
    if response.sealed_previous_cards:
        previous = set()
        entries = sr.decode_bundle(response.sealed_previous_cards)
        if entries:  # a lookup that found no card has an empty record
            opened_previous = sr.open_bundle(key, response.sealed_previous_cards, _previous_query(response))
            previous = {f for prints in opened_previous["cards"].values() for f in prints}
    data = sr.assemble(sr.open_bundle(key, response.sealed_report, query_id), previous)
    return to_proto(data, user_id)


def sealed_card(
    response: svc.GetReportResponse, key: X25519PrivateKey, query_id: str, card_id: str
) -> svc.DeviceSealedCard | None:
    """FlagCard's `device_card` for a report sealed to the device: the card
    `card_id` (ReportCard.card_id of open_report's report) as the device
    opened it. None when the report is not sealed (the hub opens it itself)
    or has no such card (the hub then answers CARD_NOT_FOUND)."""
    if not response.sealed_report:
        return None
    data = sr.assemble(sr.open_bundle(key, response.sealed_report, query_id))
    index = int(card_id) - 1 if card_id.isdigit() else -1
    if not 0 <= index < len(data["cards"]):
        return None
    code, _kind, first, last, _length, ref, _new = data["cards"][index]
    return svc.DeviceSealedCard(bank_code=code, card_ref=ref, first_four=first, last_four=last)


def _previous_query(response: svc.GetReportResponse) -> str:
    """The query id the previous record's entries name (any entry's)."""
    info, _ = sr.decode_bundle(response.sealed_previous_cards)[0]
    return info.split(b"\x00")[2].decode()


def to_proto(data: dict[str, Any], user_id: str) -> pb.Report:
    """An assembled report (cardlookup.sealed_report.assemble) as pb.Report."""
    out = pb.Report(name=f"users/{user_id}/queries/{data['query_id']}/report")
    out.generate_time.FromDatetime(dt.datetime.fromisoformat(str(data["generate_time"])).astimezone(dt.UTC))
    out.expire_time.FromDatetime(dt.datetime.fromisoformat(str(data["expire_time"])).astimezone(dt.UTC))
    for code, state, reason, debit, credit, unlisted in data["banks"]:
        summary = out.bank_summaries.add(
            bank_code=code,
            state=pb.BankOutcomeState.Value(f"BANK_OUTCOME_STATE_{state}"),
            reason=reason,
            debit_card_count=debit,
            credit_card_count=credit,
            unlisted_card_count=sum(unlisted.values()),
        )
        for why, count in sorted(unlisted.items()):
            name = f"UNLISTED_REASON_{why}"
            value = pb.UnlistedReason.Value(name) if name in pb.UnlistedReason.keys() else 0  # noqa: SIM118
            summary.unlisted.add(reason=value, card_count=count)
    for i, (code, kind, first, last, length, _ref, new) in enumerate(data["cards"], start=1):
        out.cards.add(
            card_id=str(i),
            bank_code=code,
            card_type=pb.CardType.Value(f"CARD_TYPE_{kind.upper()}"),
            first_four=first,
            last_four=last,
            number_length=length,
            new_since_last_lookup=new,
        )
    out.new_cards_marked = bool(data["new_cards_marked"])
    for kind, text, english in data["notices"]:
        out.notices.add(kind=pb.NoticeKind.Value(f"NOTICE_KIND_{kind}"), text=text, english_text=english)
    return out


__all__ = [
    "DeviceKeyNeeded",
    "generate",
    "load",
    "load_or_create",
    "open_report",
    "public_bytes",
    "save",
    "sealed_card",
]
