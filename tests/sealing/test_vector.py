"""Issue 17: the sealed-report format is interoperable by construction.

docs/examples/sealed-report-vector.json was made by this code
(tests/sealing/vector.py); these tests check that the code still opens it
and still makes the same plaintexts and `info` bytes, and that an
independent HPKE implementation in another language (@hpke/core under
Node.js) opens it too."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cardlookup import sealed_report as sr
from tests.sealing import vector

ROOT = Path(__file__).resolve().parents[2]
VECTOR = ROOT / "docs" / "examples" / "sealed-report-vector.json"
NODE_DIR = ROOT / "tests" / "node_bank"


def _vector() -> dict:  # type: ignore[type-arg]
    return json.loads(VECTOR.read_text())


def test_the_code_opens_the_committed_vector() -> None:
    v = _vector()
    key = X25519PrivateKey.from_private_bytes(bytes.fromhex(v["recipient_private_key_hex"]))
    assert sr.public_raw(key).hex() == v["recipient_public_key_hex"]
    bundle = bytes.fromhex(v["bundle_hex"])
    entries = sr.decode_bundle(bundle)
    assert [i.hex() for i, _ in entries] == [e["info_hex"] for e in v["entries"]]
    for (info, message), expected in zip(entries, v["entries"], strict=True):
        assert sr.open_message(key, message, info).decode() == expected["plaintext"]
        assert len(message) == 32 + len(expected["plaintext"].encode()) + 16  # enc || ciphertext || tag
    assert sr.assemble(sr.open_bundle(key, bundle, v["query_id"])) == v["assembled_report"]


def test_the_vector_is_what_the_code_makes_today() -> None:
    """Drift: the info bytes, plaintexts and assembled report the code makes
    now are the committed ones (only the random HPKE bytes differ)."""
    made, committed = vector.make(), _vector()
    for field in ("suite", "recipient_public_key_hex", "query_id", "entries", "assembled_report"):
        assert made[field] == committed[field], field
    assert bytes.fromhex(made["entries"][1]["info_hex"]) == b"cardlookup report v1\x00answer\x00" + (
        vector.QUERY_ID.encode() + b"\x00102"
    )


def test_a_message_moved_to_another_query_bank_or_part_does_not_open() -> None:
    v = _vector()
    key = X25519PrivateKey.from_private_bytes(bytes.fromhex(v["recipient_private_key_hex"]))
    (_, summary), (_, answer) = sr.decode_bundle(bytes.fromhex(v["bundle_hex"]))
    for wrong in (
        sr.info(sr.ANSWER, v["query_id"], "103"),
        sr.info(sr.ANSWER, "another-query", "102"),
        sr.info(sr.CARDS, v["query_id"], "102"),
    ):
        with pytest.raises(InvalidTag):
            sr.open_message(key, answer, wrong)
    with pytest.raises(InvalidTag):
        sr.open_message(X25519PrivateKey.generate(), summary, sr.info(sr.SUMMARY, v["query_id"]))
    # An entry naming another query is refused before any decryption.
    moved = sr.encode_bundle([(sr.info(sr.ANSWER, "another-query", "102"), answer)])
    with pytest.raises(sr.BundleError):
        sr.open_bundle(key, moved, v["query_id"])


def test_an_independent_hpke_implementation_opens_the_vector() -> None:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@hpke" / "core").is_dir():
        raise RuntimeError(f"Node.js and `npm ci` in {NODE_DIR} are needed (scripts/test.sh installs both)")
    result = subprocess.run(
        [node, "open_sealed_report.mjs", str(VECTOR)], cwd=NODE_DIR, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    opened = json.loads(result.stdout)["entries"]
    assert opened == _vector()["entries"]
