"""Privacy-safe structured logging for the hub (R8, R14; issue 11 item 2).

The standard library's logging with one JSON formatter (no extra
dependency): every line the hub process writes to its log is one JSON
object, `{"ts", "level", "logger", "event", ...fields}`, `ts` in UTC with
millisecond precision and a `Z`. Call sites pass an event name and a few
fields (query id, bank code, counts, status names), never a person's data:

    log = get_logger("hub.engine")
    log.info("bank_answered", query_id=qid, bank=code, cards=3)

As a second line of defence every string that goes out is scrubbed of what
can be a card number (13-19 digits, separators allowed), a resident ID
number (17 digits and a check character), a mainland mobile number
(1[3-9] and 9 more digits) or a Chinese name (CJK characters). UUIDs are
left whole wherever they appear, and the identifier fields (`query_id`,
`verification_id`, `bank`, `bank_code`) are kept whole when they have the
shape of an identifier, so lines stay correlatable.

Other libraries' Python loggers (asyncio, grpc's Python layer) go through
the same formatter. gRPC core's own C++ log lines cannot be reformatted: the
hub silences them by configuration (GRPC_VERBOSITY=NONE, set by
`quiet_grpc_core()` before gRPC loads; an operator who sets GRPC_VERBOSITY
gets core's plain-text lines back, for debugging).

A line logged inside a traced call (hub.telemetry.tracing, when tracing is on) also
carries `trace_id` and `span_id` (hex, as W3C trace context writes them),
so it can be found from the trace and the trace from it.

The level changes at run time: `set_level(level)` (the admin service calls
it), or the signals SIGUSR1 (DEBUG) and SIGUSR2 (back to the configured
level).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import signal
import sys
import threading
from typing import IO, Any

from opentelemetry import trace as otel_trace

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SEP = r"[ \t._-]?"
_CARD_LIKE = re.compile(rf"(?<![0-9])[0-9](?:{_SEP}[0-9]){{12,18}}(?![0-9])")
_ID_LIKE = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
_PHONE_LIKE = re.compile(rf"(?<![0-9])1[3-9][0-9]{_SEP}[0-9]{{4}}{_SEP}[0-9]{{4}}(?![0-9])")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]+")
_ID_FIELDS: dict[str, re.Pattern[str]] = {
    "query_id": _UUID,
    "verification_id": _UUID,
    "bank": re.compile(r"[0-9A-Za-z_-]{1,16}"),
    "bank_code": re.compile(r"[0-9A-Za-z_-]{1,16}"),
    "trace_id": re.compile(r"[0-9a-f]{32}"),
    "span_id": re.compile(r"[0-9a-f]{16}"),
}
REDACTED = "<redacted>"
HUB_LOGGER = "hub"


def _scrub_part(text: str) -> str:
    text = _ID_LIKE.sub(REDACTED, text)
    text = _CARD_LIKE.sub(REDACTED, text)
    text = _PHONE_LIKE.sub(REDACTED, text)
    return _CJK.sub(REDACTED, text)


def scrub(text: str) -> str:
    """Removes anything that can be a card number, an ID number, a phone
    number or a Chinese name from `text`; UUIDs are kept whole."""
    out: list[str] = []
    last = 0
    for m in _UUID.finditer(text):
        out.append(_scrub_part(text[last : m.start()]))
        out.append(m.group())
        last = m.end()
    out.append(_scrub_part(text[last:]))
    return "".join(out)


def _safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_safe(v) for v in value]
    if isinstance(value, dict):
        return {scrub(str(k)): _safe(v) for k, v in value.items()}
    return scrub(str(value))


def _field(key: str, value: Any) -> Any:
    shape = _ID_FIELDS.get(key)
    if shape is not None and isinstance(value, str) and shape.fullmatch(value) and not _PHONE_LIKE.fullmatch(value):
        return value  # an identifier, whole (a phone-shaped "bank" is still scrubbed)
    return _safe(value)


def utc_timestamp(created: float) -> str:
    """A record's time as RFC 3339 UTC with milliseconds and `Z`."""
    return dt.datetime.fromtimestamp(created, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class JsonFormatter(logging.Formatter):
    """Formats records as scrubbed JSON lines (fields from `extra={"fields": ...}`)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": utc_timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": scrub(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line.setdefault(scrub(str(key)), _field(key, value))
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
            span = otel_trace.get_current_span().get_span_context()
            if span.is_valid:  # inside a traced call (hub.telemetry.tracing): the line names its trace
                fields = {**fields, "trace_id": format(span.trace_id, "032x"), "span_id": format(span.span_id, "016x")}
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


def quiet_grpc_core() -> None:
    """Silences gRPC core's own plain-text log lines unless the operator
    chose a verbosity. Takes effect only before gRPC loads: hub/__init__.py
    calls it, so it runs before any hub module imports grpc."""
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")


_configured_level = logging.INFO


def set_level(level: str, logger: str = HUB_LOGGER) -> str:
    """Changes a hub logger's level now (DEBUG, INFO, WARNING, ERROR; the
    whole hub by default) and returns its previous effective level. The
    admin service (SetLogLevel) and the signal handlers call it. ValueError
    for an unknown level or a logger outside the hub."""
    if logger != HUB_LOGGER and not logger.startswith(HUB_LOGGER + "."):
        raise ValueError(f"only the hub's loggers ({HUB_LOGGER}, {HUB_LOGGER}.*) can be changed")
    value = logging.getLevelName(level.upper())
    if level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR") or not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r}: DEBUG, INFO, WARNING or ERROR")
    target = logging.getLogger(logger)
    previous = logging.getLevelName(target.getEffectiveLevel())
    target.setLevel(value)
    return str(previous)


def configure_logging(level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Sends every log record of the process (the `hub.*` loggers at `level`,
    other libraries' at WARNING) to `stream` (stderr by default) as JSON
    lines, and lets SIGUSR1/SIGUSR2 switch the hub's level at run time."""
    global _configured_level
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    hub = logging.getLogger(HUB_LOGGER)
    hub.handlers[:] = []
    hub.propagate = True
    set_level(level)
    _configured_level = hub.level
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, lambda *_: set_level("DEBUG"))
        signal.signal(signal.SIGUSR2, lambda *_: hub.setLevel(_configured_level))


__all__ = ["JsonFormatter", "configure_logging", "get_logger", "quiet_grpc_core", "scrub", "set_level"]
