"""The consent audit log: one JSON line per consent the kit accepted or
refused (docs/bank-integration.md asks banks to keep `consent_text_version`).

No personal data: the query id, the method, the scope, the hub's key id, the
notice text version, the verdict and the refusal reason; never a name, ID
number or card. Requests refused before their consent is verified (malformed
ones) are not logged: their fields are not known to be safe to write. The
file is created owner-only (0600) and only appended to.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path

from bank_kit.contract import card_directory_pb2 as pb


class AuditLog:
    def __init__(self, path: Path | None) -> None:
        self._fd = None if path is None else os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._lock = threading.Lock()

    def record(
        self,
        *,
        now: dt.datetime,
        method: str,
        query_id: str,
        key_id: str,
        consent: pb.Consent | None,
        reason: str | None,
    ) -> None:
        """`consent`: the parsed consent, None when it did not verify or
        parse; `reason`: None when accepted, else the refusal's reason."""
        if self._fd is None:
            return
        entry = {
            "time": now.isoformat(),
            "method": method,
            "query_id": query_id,
            "scope": None if consent is None else _scope_name(consent.scope),
            "key_id": key_id[:64],
            "consent_text_version": consent.consent_text_version if consent is not None else None,
            "verdict": "accepted" if reason is None else "refused",
            "reason": reason,
        }
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            os.write(self._fd, line)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _scope_name(scope: int) -> str:
    return pb.ConsentScope.Name(scope) if scope in pb.ConsentScope.values() else str(scope)
