"""Reports sealed to the user's device (issue 17): HPKE (RFC 9180) messages,
the bundle that carries them, and the assembly of an opened report.

Shared by the hub (which seals) and the client (which opens with the
device's private key); it imports neither. docs/security.md "Sealed
reports" is the language-neutral statement of every byte below, and
docs/examples/hpke-vector.json a vector this code made.

Suite: DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM, mode base,
single shot. A message is `enc (32 bytes) || ciphertext (with its 16-byte
tag)`; the associated data is empty; what a message is for is bound in
`info`:

    b"cardlookup report v1" 0x00 <part> 0x00 <query id> 0x00 <bank code>

with <part> one of b"answer" (a bank's validated answer, sealed the moment
it arrives), b"cards" (that answer's keyed card fingerprints, the new-card
record) or b"summary" (sealed at READY; bank code empty). A message moved
to another query, bank or part does not open.

Bundle (what GetReport returns as `sealed_report`, and what the hub stores):

    b"CLB1" || u16 count || count × (u16 len || info || u32 len || message)

big-endian lengths. Each entry names its own `info`; the reader checks it
is the one it expects.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PrivateFormat, PublicFormat

SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
SUITE_NAME = "DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM"
INFO_PREFIX = b"cardlookup report v1"
MAGIC = b"CLB1"
KEY_BYTES = 32
ANSWER, CARDS, SUMMARY = "answer", "cards", "summary"

UNLISTED_REASON_TEXTS: dict[str, tuple[str, str]] = {
    "NO_PHONE_ON_FILE": ("未在银行预留手机号", "no mobile phone number on file at the bank"),
    "ID_DOCUMENT_EXPIRED": ("银行登记的身份证件已过期", "the ID document on file at the bank has expired"),
    "CARD_NOT_PRESENT_DISABLED": ("已关闭非柜面业务", "card-not-present self-service is disabled"),
}
SAFETY_TEXT = (
    "SAFETY",
    "查询结果仅供您本人查看。请勿向任何人透露短信验证码或查询结果；切勿在他人手机上进行查询；"
    "任何以贷款、退款、“账户升级”等名义要求您进行查询的，均为诈骗。",
    "These results are for you alone. Never share the SMS code or the results with anyone; never run a "
    "lookup on someone else's phone; anyone who asks you to run a lookup (for a loan, a refund, an "
    '"account upgrade", ...) is a fraudster.',
)
UNRECOGNISED_TEXT = (
    "UNRECOGNISED_CARDS",
    "如发现不认识或不再使用的银行卡，请及时到开户银行办理销户。",
    "If you see a card you do not recognise or no longer use, close it at the bank that issued it.",
)
CREDIT_REPORT_TEXT = (
    "CREDIT_REPORT",
    "本次查询与个人征信无关，不会影响您的个人信用报告。",
    "This lookup is unrelated to credit reports and does not affect your credit report.",
)


class BundleError(ValueError):
    """Not a well-formed bundle, or an entry not where it belongs."""


def info(part: str, query_id: str, bank_code: str = "") -> bytes:
    return b"\x00".join((INFO_PREFIX, part.encode(), query_id.encode(), bank_code.encode()))


def public_raw(key: X25519PublicKey | X25519PrivateKey) -> bytes:
    if isinstance(key, X25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def private_raw(key: X25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import NoEncryption

    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def check_public_key(raw: bytes) -> bytes:
    """Raises ValueError unless `raw` is a 32-byte X25519 public key."""
    if len(raw) != KEY_BYTES:
        raise ValueError("a report public key is 32 raw bytes (X25519)")
    X25519PublicKey.from_public_bytes(raw)
    return raw


def seal(public_key: bytes, plaintext: bytes, message_info: bytes) -> bytes:
    return SUITE.encrypt(plaintext, X25519PublicKey.from_public_bytes(public_key), info=message_info)


def open_message(private_key: X25519PrivateKey, message: bytes, message_info: bytes) -> bytes:
    """Raises cryptography.exceptions.InvalidTag for a wrong key or info."""
    return SUITE.decrypt(message, private_key, info=message_info)


def encode_bundle(entries: Iterable[tuple[bytes, bytes]]) -> bytes:
    items = list(entries)
    out = [MAGIC, struct.pack(">H", len(items))]
    for entry_info, message in items:
        out += [struct.pack(">H", len(entry_info)), entry_info, struct.pack(">I", len(message)), message]
    return b"".join(out)


def decode_bundle(blob: bytes) -> list[tuple[bytes, bytes]]:
    if blob[:4] != MAGIC or len(blob) < 6:
        raise BundleError("not a sealed-report bundle")
    (count,) = struct.unpack_from(">H", blob, 4)
    at, entries = 6, []
    try:
        for _ in range(count):
            (n,) = struct.unpack_from(">H", blob, at)
            entry_info = blob[at + 2 : at + 2 + n]
            at += 2 + n
            (m,) = struct.unpack_from(">I", blob, at)
            message = blob[at + 4 : at + 4 + m]
            if len(message) != m or len(entry_info) != n:
                raise BundleError("truncated bundle")
            at += 4 + m
            entries.append((entry_info, message))
    except struct.error as error:
        raise BundleError("truncated bundle") from error
    if at != len(blob):
        raise BundleError("trailing bytes after the bundle")
    return entries


def reseal_bundle(private_key: X25519PrivateKey, blob: bytes, new_public: bytes) -> bytes:
    """Every entry opened with the old key and sealed to the new one."""
    return encode_bundle((i, seal(new_public, open_message(private_key, m, i), i)) for i, m in decode_bundle(blob))


def open_bundle(private_key: X25519PrivateKey, blob: bytes, query_id: str) -> dict[str, Any]:
    """{"summary": {...} or None, "answers": {bank: {...}}, "cards": {bank: [...]}}:
    every entry opened and checked to belong to `query_id`."""
    out: dict[str, Any] = {"summary": None, "answers": {}, "cards": {}}
    for entry_info, message in decode_bundle(blob):
        parts = entry_info.split(b"\x00")
        if len(parts) != 4 or parts[0] != INFO_PREFIX or parts[2] != query_id.encode():
            raise BundleError("an entry of another query or format")
        part, bank = parts[1].decode(), parts[3].decode()
        data = json.loads(open_message(private_key, message, entry_info))
        if part == SUMMARY:
            out["summary"] = data
        elif part == ANSWER:
            out["answers"][bank] = data
        elif part == CARDS:
            out["cards"][bank] = data["f"]
        else:
            raise BundleError("an entry of an unknown part")
    return out


def answer_plaintext(cards: Sequence[Sequence[Any]], unlisted: Mapping[str, int]) -> bytes:
    """cards: [kind, first four, last four, number length, card_ref, fingerprint]."""
    return json.dumps({"cards": [list(c) for c in cards], "unlisted": dict(unlisted)}, separators=(",", ":")).encode()


def unlisted_notice(totals: Mapping[str, int]) -> tuple[str, str, str]:
    """R13: some cards are not listed yet; the bank's records decide."""
    known = sorted((r, n) for r, n in totals.items() if r in UNLISTED_REASON_TEXTS)
    zh = "，".join(f"{UNLISTED_REASON_TEXTS[r][0]}{n}张" for r, n in known)
    en = "; ".join(f"{n} with {UNLISTED_REASON_TEXTS[r][1]}" for r, n in known)
    return (
        "UNLISTED_CARDS",
        "部分银行卡暂不支持展示（" + zh + "）。"
        "未预留手机号、身份证件过期或已关闭非柜面业务的银行卡暂不在结果中列出，具体以银行记录为准。",
        "Some cards are not listed yet (" + en + "). Cards with no phone number on file, "
        "an expired ID document, or card-not-present self-service disabled are not listed; the bank's "
        "own records are authoritative.",
    )


def assemble(opened: Mapping[str, Any], previous_prints: set[str] | None = None) -> dict[str, Any]:
    """The report, in hub.reports.report's JSON form (plus "new_cards_marked" and
    each card's "new" flag), from an opened bundle: the summary's bank
    outcomes in order, each answered bank's section and cards from its
    answer, the notices (R13 when any card is unlisted, then R16, the
    unrecognised-card note and R15). `previous_prints`: the fingerprints
    of the lookup before (new-card marks), or None."""
    summary = opened["summary"]
    if summary is None:
        raise BundleError("the bundle has no summary")
    banks: list[list[Any]] = []
    cards: list[list[Any]] = []
    totals: dict[str, int] = {}
    for code, state, reason in summary["banks"]:
        answer = opened["answers"].get(code)
        if state == "ANSWERED" and answer is not None:
            kinds = [c[0] for c in answer["cards"]]
            banks.append([code, state, "", kinds.count("debit"), kinds.count("credit"), dict(answer["unlisted"])])
            for reason_code, n in answer["unlisted"].items():
                totals[reason_code] = totals.get(reason_code, 0) + n
            for c in answer["cards"]:
                new = previous_prints is not None and len(c) > 5 and c[5] not in previous_prints
                cards.append([code, *c[:5], new])
        else:
            banks.append([code, state, reason, 0, 0, {}])
    notices = [list(unlisted_notice(totals))] if totals else []
    notices += [list(SAFETY_TEXT), list(UNRECOGNISED_TEXT), list(CREDIT_REPORT_TEXT)]
    return {
        "query_id": summary["query_id"],
        "generate_time": summary["generate_time"],
        "expire_time": summary["expire_time"],
        "banks": banks,
        "cards": cards,
        "notices": notices,
        "new_cards_marked": previous_prints is not None,
    }
