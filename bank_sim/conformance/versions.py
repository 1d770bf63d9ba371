"""The bank guide's versions, the one place they live: each conformance
check names the guide version that introduced it (`Check.since`), and
`cardlookup-conformance --profile V` certifies a bank against the checks of
version V and earlier, listing the newer ones as "new since your profile".

A new rule for banks gets a new version here (appended: the last entry is
the current guide), its checks say `since=` that version, and
docs/bank-integration.md's changelog for banks says what changed, why, and
what a bank must do. tests/bank/test_conformance_profiles.py keeps the
three in step and refuses a check without a known version.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GuideVersion:
    version: str
    """"MAJOR.MINOR", e.g. "1.1"."""
    date: str
    """When it was published (YYYY-MM-DD)."""
    summary: str
    """What changed for banks, in one line."""


GUIDE_VERSIONS: tuple[GuideVersion, ...] = (
    GuideVersion("1.0", "2026-11-26", "the first bank guide: mTLS, consent verification, ListCards, errors"),
    GuideVersion(
        "1.1",
        "2026-11-28",
        "caller identity from the SAN only, whole-value request patterns, R13 precedence, the card cap",
    ),
    GuideVersion("1.2", "2026-11-28", 'the optional CardCaseService ("not my card" cases)'),
    GuideVersion(
        "1.3",
        "2026-12-07",
        "the caller check on every bank service, card states, where the case card check sits, real case rows, "
        "the optional session stream (CardSessionService)",
    ),
)

CURRENT_GUIDE_VERSION = GUIDE_VERSIONS[-1].version
"""The version of docs/bank-integration.md this suite checks by default."""

KNOWN_VERSIONS = tuple(v.version for v in GUIDE_VERSIONS)


def version_key(version: str) -> tuple[int, ...]:
    """ "1.10" sorts after "1.9". Raises ValueError for a malformed version."""
    parts = version.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a guide version (MAJOR.MINOR): {version!r}")
    return tuple(int(p) for p in parts)


def in_profile(since: str, profile: str) -> bool:
    """Whether a check introduced in `since` belongs to `profile`."""
    return version_key(since) <= version_key(profile)
