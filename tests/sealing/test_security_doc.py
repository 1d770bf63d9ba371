"""docs/security.md kept honest (issue 17 item 4): the argon2id parameters
it states are the code's, and the sealed-report format it states is the
one cardlookup.sealed_report writes."""

from __future__ import annotations

import re
from pathlib import Path

from cardlookup import sealed_report as sr
from hub.identity.passwords import DEFAULT_PARAMETERS, PEPPERED
from hub.keys.user_sealing import DEVICE, PASSWORD, hpke_header

DOC = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text(encoding="utf-8")


def test_the_argon2_parameters_stated_are_the_codes() -> None:
    stated = set(re.findall(r"m = (\d+) MiB, t = (\d+), p = (\d+)", DOC))
    p = DEFAULT_PARAMETERS
    assert stated == {(str(p.memory_cost // 1024), str(p.time_cost), str(p.parallelism))}
    assert f"`{PEPPERED}`" in DOC
    assert "t=3, m=64 MiB" not in DOC  # version 1's, once stated as current


def test_the_sealed_report_format_stated_is_the_codes() -> None:
    assert "DHKEM(X25519, HKDF-SHA256) `0x0020` / HKDF-SHA256\n  `0x0001` / AES-256-GCM `0x0002`" in DOC
    assert sr.SUITE_NAME == "DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM"
    assert f'`"{sr.INFO_PREFIX.decode()}" 0x00 <part> 0x00 <query id> 0x00 <bank code>`' in DOC
    assert sr.info(sr.ANSWER, "q", "102") == b"cardlookup report v1\x00answer\x00q\x00102"
    assert f'`"{sr.MAGIC.decode()}"` ‖ u16 count' in DOC
    bundle = sr.encode_bundle([(b"i", b"mm")])
    assert bundle == b"CLB1" + b"\x00\x01" + b"\x00\x01i" + b"\x00\x00\x00\x02mm"
    for part in (sr.ANSWER, sr.CARDS, sr.SUMMARY):
        assert f"`{part}`" in DOC
    assert '`"H1"` ‖ key kind (`D` device, `P` password) ‖ epoch (u32)' in DOC
    assert hpke_header(DEVICE, 1) == b"H1D\x00\x00\x00\x01" and hpke_header(PASSWORD, 2)[2:3] == b"P"
