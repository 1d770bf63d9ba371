"""Issue 9 item 7 / issue 11 item 2: one JSON object per line, UTC
timestamps, identifiers whole, free text scrubbed, gRPC core silenced, the
level changeable at run time."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.core.logging import configure_logging, get_logger, scrub, set_level


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("INFO", out)
    try:
        yield out
    finally:
        logging.getLogger().handlers.clear()
        logging.getLogger("hub").setLevel(logging.NOTSET)


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(x) for x in out.getvalue().splitlines()]


def test_query_ids_are_never_redacted() -> None:
    """The old scrubber redacted UUIDs whose digit groups looked like numbers
    (about one in eighteen); every UUID must now stay whole."""
    ids = [str(uuid.UUID(int=n * 0x1000100010001 + 13812345678)) for n in range(200)]
    ids += [str(uuid.uuid4()) for _ in range(2000)]
    ids += ["00000000-0000-4000-8000-013812345678", "11111111-1111-1111-1111-111111111111"]
    for qid in ids:
        assert scrub(f"query {qid} done") == f"query {qid} done", qid


def test_identifier_fields_stay_whole_and_free_text_is_scrubbed(logs: io.StringIO) -> None:
    qid = "00000000-0000-4000-8000-013812345678"
    log = get_logger("hub.test")
    log.info(
        "bank_final",
        query_id=qid,
        bank="102",
        note="李四 6222 0212 3456 7890 13812345678 11010119900307123X",
        phone="138-1234-5678",
    )
    (line,) = lines(logs)
    assert line["query_id"] == qid and line["bank"] == "102"
    rest = logs.getvalue().replace(qid, "")
    for secret in ("李四", "6222 0212", "13812345678", "11010119900307123X", "1234-5678"):
        assert secret not in rest


def test_timestamps_are_utc_marked_z(logs: io.StringIO) -> None:
    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Shanghai"
    time.tzset()
    try:
        before = dt.datetime.now(dt.UTC)
        get_logger("hub.test").info("tick")
        after = dt.datetime.now(dt.UTC)
    finally:
        if old_tz is None:
            os.environ.pop("TZ")
        else:
            os.environ["TZ"] = old_tz
        time.tzset()
    ts = str(lines(logs)[0]["ts"])
    assert ts.endswith("Z")
    when = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    assert before - dt.timedelta(milliseconds=2) <= when <= after + dt.timedelta(milliseconds=2)


def test_foreign_loggers_write_json_too(logs: io.StringIO) -> None:
    logging.getLogger("asyncio").error("Task exception was never retrieved 13812345678")
    (line,) = lines(logs)
    assert line["logger"] == "asyncio" and "13812345678" not in logs.getvalue()


def test_the_level_changes_at_run_time(logs: io.StringIO) -> None:
    log = get_logger("hub.test")
    log.debug("hidden")
    set_level("debug")
    log.debug("shown")
    set_level("INFO")
    log.debug("hidden again")
    os.kill(os.getpid(), signal.SIGUSR1)
    log.debug("shown by SIGUSR1")
    os.kill(os.getpid(), signal.SIGUSR2)
    log.debug("hidden by SIGUSR2")
    assert [x["event"] for x in lines(logs)] == ["shown", "shown by SIGUSR1"]
    with pytest.raises(ValueError):
        set_level("LOUD")


def test_grpc_core_lines_do_not_reach_the_log(tmp_path: Path) -> None:
    """A hub process whose gRPC core fails to bind: every stderr line is JSON."""
    script = tmp_path / "run.py"
    script.write_text(
        "import asyncio, socket\n"
        "import hub.process.server\n"
        "import grpc\n"
        "from hub.core.logging import configure_logging, get_logger\n"
        "configure_logging('INFO')\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
        "async def main():\n"
        "    server = grpc.aio.server(options=[('grpc.so_reuseport', 0)])\n"
        "    try:\n"
        "        server.add_insecure_port(f'127.0.0.1:{s.getsockname()[1]}')\n"
        "    except RuntimeError:\n"
        "        get_logger('hub.test').error('bind_failed')\n"
        "asyncio.run(main())\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRPC_")}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env, check=True
    )
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert errors, "the hub logged nothing"
    for line in errors:
        assert json.loads(line)["event"], line
