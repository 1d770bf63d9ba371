"""What a reload changes, in words an operator can check (issue 24 item 5).

`describe(old, new, seen)` compares two configurations, and the content of
every file they name (a certificate renewed under the same path is a
change; a file rewritten with the same bytes is not), and returns two
lists: what the reload applies now, and what changed but takes effect only
after a restart. Nothing is listed for a setting that did not change, so
the log line and the admin answer say exactly what an operator did.

Which settings apply at once is the reload's contract, kept here in one
place and in docs/configuration.md ("What a reload applies", per key); each applied one
is read by its component at use time or handed to it by HubServer.reload.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path

from hub.core.config import HubConfig, TlsFiles

APPLIED_AT_ONCE = frozenset(
    {
        "banks",
        "api_tls",
        "bank_tls",
        "consent_text_version",
        "consent_text",
        "admin_clients",
        "face_provider_keys",
        "consent_key_id",
        "consent_signing_key",
        "key_encryption_key",
        "key_encryption_key_id",
        "previous_key_encryption_keys",
        "hsm",
        "timings.cooldown",
        "timings.report_window",
        "timings.report_retention",
        "timings.notice_claim",
        # Issue 19 item 4: the retention sweeper reads these at every sweep.
        "timings.sweep_interval",
        "timings.lookup_history_retention",
        "timings.access_event_retention",
        "timings.card_case_retention",
        "timings.card_record_retention",
        "timings.abuse_counter_retention",
        "timings.closure_record_retention",
        "timings.sms_outbox_retention",
    }
)
"""Settings a reload applies to the running hub; every other one is
reported as needing a restart."""


def in_effect(running: HubConfig, new: HubConfig) -> HubConfig:
    """The configuration a reload hands to the hub's components: `new`'s value
    of every setting in APPLIED_AT_ONCE, the running value of every other one
    (issue 19 item 4). A component that reads its configuration at use time
    then never applies a restart-only setting in part (the engine's lease
    timing, the case desk's call deadline did); the reload reports those as
    needing a restart, and the running configuration still shows the value
    in force."""
    timings = dataclasses.replace(
        running.timings,
        **{
            f.name: getattr(new.timings, f.name)
            for f in dataclasses.fields(new.timings)
            if f"timings.{f.name}" in APPLIED_AT_ONCE
        },
    )
    kept = {
        f.name: getattr(running, f.name)
        for f in dataclasses.fields(HubConfig)
        if f.name not in APPLIED_AT_ONCE and f.name != "timings"
    }
    return dataclasses.replace(new, **kept, timings=timings)


_KEYS = (
    "consent_signing_key",
    "key_encryption_key",
    "index_key",
    "consent_key_id",
    "key_encryption_key_id",
    "previous_key_encryption_keys",
    "face_provider_keys",
)
_SKIPPED = frozenset({"banks", "timings", "api_tls", "bank_tls", "hsm", *_KEYS})


def fingerprints(config: HubConfig) -> dict[str, str]:
    """A digest of every file the configuration names, by setting name."""
    files: dict[str, Path] = {}
    for section, tls in (("api_tls", config.api_tls), ("bank_tls", config.bank_tls)):
        for part in ("ca", "cert", "key"):
            files[f"{section}.{part}"] = Path(getattr(tls, part))
    hsm = config.hsm
    if not (hsm and hsm.consent_signing_key_label):
        files["consent_signing_key"] = config.consent_signing_key
    if not (hsm and hsm.key_encryption_key_label):
        files["key_encryption_key"] = config.key_encryption_key
    files["index_key"] = config.index_key
    for kid, path in config.previous_key_encryption_keys.items():
        files[f"previous_key_encryption_keys.{kid}"] = path
    for kid, path in config.face_provider_keys.items():
        files[f"face_provider_keys.{kid}"] = path
    return {name: _digest(path) for name, path in files.items()}


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def describe(
    old: HubConfig, new: HubConfig, old_files: dict[str, str], new_files: dict[str, str]
) -> tuple[list[str], list[str]]:
    """(changes applied now, changes that need a restart)."""
    changed: list[tuple[str, str]] = []  # (setting, what)

    def files_of(prefix: str) -> set[str]:
        names = {n for n in old_files.keys() | new_files.keys() if n == prefix or n.startswith(prefix + ".")}
        return {n for n in names if old_files.get(n) != new_files.get(n)}

    for section, label in (("api_tls", "server certificate"), ("bank_tls", "client certificate towards banks")):
        old_tls: TlsFiles = getattr(old, section)
        new_tls: TlsFiles = getattr(new, section)
        touched = files_of(section) | {
            f"{section}.{p}" for p in ("ca", "cert", "key") if getattr(old_tls, p) != getattr(new_tls, p)
        }
        if touched:
            what = "replaced; new connections use it" if section == "api_tls" else "replaced; bank channels re-dial"
            changed.append((section, f"{label} or trusted CAs ({', '.join(sorted(touched))}) {what}"))
    changed += [("banks", line) for line in _banks(old, new)]
    changed += _keys(old, new, files_of)
    if old.hsm != new.hsm:
        changed.append(("hsm", "token settings changed; keys re-resolved on the token"))
    for f in dataclasses.fields(HubConfig):
        if f.name in _SKIPPED:
            continue
        if getattr(old, f.name) != getattr(new, f.name):
            changed.append((f.name, "changed"))
    for f in dataclasses.fields(old.timings):
        if getattr(old.timings, f.name) != getattr(new.timings, f.name):
            changed.append((f"timings.{f.name}", "changed"))
    applied = [f"{key}: {what}" for key, what in changed if key in APPLIED_AT_ONCE]
    restart = [f"{key}: {what}; takes effect after a restart" for key, what in changed if key not in APPLIED_AT_ONCE]
    return applied, restart


def _banks(old: HubConfig, new: HubConfig) -> Iterable[str]:
    before, after = {b.code: b for b in old.banks}, {b.code: b for b in new.banks}
    for code in sorted(after.keys() - before.keys()):
        yield f"added {code}"
    for code in sorted(before.keys() - after.keys()):
        yield f"removed {code} (queries in flight finish)"
    for code in sorted(before.keys() & after.keys()):
        diff = [
            f.name
            for f in dataclasses.fields(before[code])
            if getattr(before[code], f.name) != getattr(after[code], f.name)
        ]
        if diff:
            yield f"{code} changed ({', '.join(diff)})"


def _keys(old: HubConfig, new: HubConfig, touched: Callable[[str], set[str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    old_hsm, new_hsm = old.hsm, new.hsm
    old_kek = old_hsm.key_encryption_key_label if old_hsm else ""
    new_kek = new_hsm.key_encryption_key_label if new_hsm else ""
    if old.key_encryption_key_id != new.key_encryption_key_id or old_kek != new_kek or touched("key_encryption_key"):
        where = f"token key {new_kek!r}" if new_kek else "file"
        out.append(("key_encryption_key_id", f"sealing with key-encryption key {new.key_encryption_key_id} ({where})"))
    if old.previous_key_encryption_keys.keys() != new.previous_key_encryption_keys.keys() or touched(
        "previous_key_encryption_keys"
    ):
        ids = ", ".join(sorted(new.previous_key_encryption_keys)) or "none"
        out.append(("previous_key_encryption_keys", f"previous key-encryption keys: {ids}"))
    old_sign = old_hsm.consent_signing_key_label if old_hsm else ""
    new_sign = new_hsm.consent_signing_key_label if new_hsm else ""
    if old.consent_key_id != new.consent_key_id or old_sign != new_sign or touched("consent_signing_key"):
        where = f"token key {new_sign!r}" if new_sign else "file"
        out.append(("consent_key_id", f"signing consents with key id {new.consent_key_id} ({where})"))
    if old.face_provider_keys.keys() != new.face_provider_keys.keys() or touched("face_provider_keys"):
        out.append(("face_provider_keys", f"trusting {', '.join(sorted(new.face_provider_keys)) or 'none'}"))
    if touched("index_key") or old.index_key != new.index_key:
        out.append(("index_key", "changed (the index key cannot rotate: existing lookups would stop matching)"))
    return out
