"""Privacy-safe structured logging for the hub (R8, R14).

Every hub log line is one JSON object: `{"ts", "level", "logger", "event",
...fields}`. Call sites pass an event name and a few fields (query id, bank
code, counts, status names), never a person's data. As a second line of
defence, every string that goes out is scrubbed: runs of 11 or more digits
(phone numbers, ID numbers, card numbers) and CJK characters (names) are
replaced, so a careless field cannot leak them.

    log = get_logger("hub.engine")
    log.info("bank_answered", query_id=qid, bank=code, cards=3)
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import IO, Any

_LONG_DIGITS = re.compile(r"\d[\d\s-]{9,}\d")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]+")
_ID_LIKE = re.compile(r"\d{17}[\dXx]")
REDACTED = "<redacted>"


def scrub(text: str) -> str:
    """Removes anything that looks like a card number, an ID number, a phone
    number or a Chinese name from `text`."""
    text = _ID_LIKE.sub(REDACTED, text)
    text = _LONG_DIGITS.sub(lambda m: REDACTED if sum(c.isdigit() for c in m.group()) >= 11 else m.group(), text)
    return _CJK.sub(REDACTED, text)


def _safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_safe(v) for v in value]
    if isinstance(value, dict):
        return {scrub(str(k)): _safe(v) for k, v in value.items()}
    return scrub(str(value))


class JsonFormatter(logging.Formatter):
    """Formats records as scrubbed JSON lines (fields from `extra={"fields": ...}`)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": scrub(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line.setdefault(key, _safe(value))
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: messages of foreign exceptions may carry data.
            line["error_type"] = record.exc_info[0].__name__
        return json.dumps(line, ensure_ascii=True, separators=(",", ":"))


class StructLogger:
    """A thin wrapper that turns keyword fields into a scrubbed JSON line."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def _log(self, level: int, event: str, fields: dict[str, Any], exc_info: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={"fields": fields}, exc_info=exc_info)

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, exc_info: bool = False, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields, exc_info=exc_info)


def get_logger(name: str) -> StructLogger:
    return StructLogger(logging.getLogger(name))


def configure_logging(level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Sends every `hub.*` logger to `stream` (stderr by default) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("hub")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
