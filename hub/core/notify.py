"""SMS to the user's registered phone: verification codes (R4) and the
report-ready notice (R9).

`SmsSender` is the seam to a real SMS gateway. The default,
`OutboxSmsSender`, appends one JSON line per message to a file, the
development "gateway" that the operator and the demo read:

    {"time": "2026-01-05T09:00:00.123Z", "phone": "13812345678", "kind": "VERIFICATION_CODE",
     "text": "...", "verification_id": "0b6e...", "code": "123456"}

`time` is RFC 3339 UTC with milliseconds. A VERIFICATION_CODE record also
carries the verification id and the code as fields (the text stays the
real text), so that a test in any language reads them without parsing
Chinese; a REPORT_READY record has neither.

The outbox holds the real number because it stands in for the gateway; it
is not a log, and logs never carry phone numbers. Texts never carry card
data.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from cardlookup.private_files import ensure_private, open_private_append

SmsKind = Literal["VERIFICATION_CODE", "REPORT_READY"]


@dataclass(frozen=True)
class SmsMessage:
    phone: str
    kind: SmsKind
    text: str
    time: dt.datetime
    verification_id: str = ""
    """VERIFICATION_CODE: the verification the code belongs to."""
    code: str = ""
    """VERIFICATION_CODE: the code in `text`."""


class SmsSender(Protocol):
    async def send(self, message: SmsMessage) -> None:
        """Hands the message to the gateway; raises if it was not accepted."""
        ...


class OutboxSmsSender:
    """Appends messages to a JSON-lines file (the development gateway)."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock = asyncio.Lock()

    async def send(self, message: SmsMessage) -> None:
        record = {
            "time": outbox_time(message.time),
            "phone": message.phone,
            "kind": message.kind,
            "text": message.text,
        }
        if message.kind == "VERIFICATION_CODE":
            record |= {"verification_id": message.verification_id, "code": message.code}
        line = json.dumps(record, ensure_ascii=False)
        async with self._lock:
            await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        # The outbox holds phone numbers: 0600 from its first byte. Under the
        # outbox lock: a retention or closure rewrite must not drop this line.
        with outbox_lock(self._path), open_private_append(self._path) as f:
            f.write(line + "\n")
            f.flush()


@contextlib.contextmanager
def outbox_lock(path: Path) -> Iterator[None]:
    """Holds the outbox's lock file (flock, across processes): appends and
    rewrites of the development outbox take turns."""
    lock = path.with_name(path.name + ".lock")
    ensure_private(lock)
    with open(lock, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        yield


def outbox_time(when: dt.datetime) -> str:
    """RFC 3339 UTC with milliseconds, e.g. 2026-01-05T09:00:00.123Z."""
    utc = when.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class OutboxTail:
    """Reads an SMS outbox (JSON lines) incrementally, as many phones would:
    the file grows with every query, so re-reading it whole per code would
    cost O(n^2). Shared by the benchmarks and the replica tests and demo
    (several hub replicas append to one outbox file)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._codes: dict[str, str] = {}

    def _refresh(self) -> None:
        if not self._path.exists():
            return
        with self._path.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.decode("utf-8").splitlines():
            message = json.loads(line)
            code = verification_code_in(message["text"]) if message["kind"] == "VERIFICATION_CODE" else None
            if code:
                self._codes[message["phone"]] = code

    async def code_for(self, phone: str, timeout_s: float = 10.0) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            self._refresh()
            code = self._codes.pop(phone, None)
            if code is not None:
                return code
            if time.monotonic() > deadline:
                raise TimeoutError("no verification SMS in the outbox")
            await asyncio.sleep(0.005)


def read_outbox(path: Path) -> list[dict[str, str]]:
    """Every message in an outbox file, oldest first (for the demo, tests and
    operators)."""
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def latest_verification_code(path: Path, phone: str) -> str | None:
    """The code of the newest verification SMS to `phone` in an outbox file,
    read as the phone would read it (for the demo and tests)."""
    texts = [m["text"] for m in read_outbox(path) if m["phone"] == phone and m["kind"] == "VERIFICATION_CODE"]
    return verification_code_in(texts[-1]) if texts else None


def verification_code_in(text: str) -> str | None:
    """The code in a message made by verification_text, if it is one."""
    match = _CODE_IN_TEXT.search(text)
    return match.group(1) if match else None


_CODE_IN_TEXT = re.compile(r"验证码(\d{6})")


def verification_text(code: str, ttl: dt.timedelta) -> str:
    minutes = max(1, int(ttl.total_seconds() // 60))
    return f"【一键查卡】验证码{code}，{minutes}分钟内有效。请勿将验证码告诉任何人，谨防诈骗。"


def report_ready_text() -> str:
    # R9: no card data, no bank names, no counts.
    return "【一键查卡】您的银行卡查询报告已生成，请于7日内在App中凭支付密码查看。如非本人操作，请忽略本短信。"
