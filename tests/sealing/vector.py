"""The sealed-report test vector in docs/examples/ (issue 17): made by the
code, so a mobile team can check its implementation against real bytes.

    .venv/bin/python -m tests.sealing.vector > docs/examples/sealed-report-vector.json

regenerates it (HPKE's ephemeral key is random: the bytes change, the
checks in tests/sealing/test_vector.py hold for any run).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cardlookup import sealed_report as sr

QUERY_ID = "6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
# A fixed device key, for the vector only (never a real one).
PRIVATE_KEY_HEX = "a8abababababababababababababababababababababababababababababab6b"
SUMMARY: dict[str, Any] = {
    "query_id": QUERY_ID,
    "generate_time": dt.datetime(2026, 1, 5, 8, 30, tzinfo=dt.UTC).isoformat(),
    "expire_time": dt.datetime(2026, 1, 12, 8, 30, tzinfo=dt.UTC).isoformat(),
    "banks": [["102", "ANSWERED", ""], ["308", "NOT_ANSWERED", "DEADLINE_EXCEEDED"]],
}
ANSWER_CARDS = [["debit", "6222", "0123", 19, "r-102-0001", "5d0c" + "0" * 60]]
ANSWER_UNLISTED = {"NO_PHONE_ON_FILE": 1}


def plaintexts() -> list[tuple[bytes, bytes]]:
    return [
        (sr.info(sr.SUMMARY, QUERY_ID), json.dumps(SUMMARY, separators=(",", ":")).encode()),
        (sr.info(sr.ANSWER, QUERY_ID, "102"), sr.answer_plaintext(ANSWER_CARDS, ANSWER_UNLISTED)),
    ]


def make() -> dict[str, Any]:
    key = X25519PrivateKey.from_private_bytes(bytes.fromhex(PRIVATE_KEY_HEX))
    public = sr.public_raw(key)
    bundle = sr.encode_bundle((i, sr.seal(public, p, i)) for i, p in plaintexts())
    return {
        "suite": sr.SUITE_NAME,
        "hpke_ids": {"kem_id": "0x0020", "kdf_id": "0x0001", "aead_id": "0x0002", "mode": "0x00 (base)"},
        "recipient_private_key_hex": PRIVATE_KEY_HEX,
        "recipient_public_key_hex": public.hex(),
        "query_id": QUERY_ID,
        "entries": [{"info_hex": i.hex(), "plaintext": p.decode()} for i, p in plaintexts()],
        "bundle_hex": bundle.hex(),
        "assembled_report": sr.assemble(sr.open_bundle(key, bundle, QUERY_ID)),
    }


if __name__ == "__main__":
    print(json.dumps(make(), ensure_ascii=False, indent=2))
