"""docs/app-backend.md kept honest: its Python blocks are verbatim excerpts
of docs/examples/app_*.py, which run here against a real hub; every CLI
line parses with the CLI's parser; the error table, the deadlines and the
retried calls match the client and the hub."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import datetime as dt
import importlib.util
import io
import re
import shlex
from pathlib import Path
from types import ModuleType

import grpc
import pytest

from cardlookup.hub.v1 import face_attestation_pb2 as face_pb
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import PkiPaths
from cardlookup.population import Person
from client import errors
from client.cli import build_parser
from client.options import RETRIED_METHODS, ClientOptions, RetryPolicy
from hub.api.errors import STATUS_OF_REASON
from tests.api.conftest import client_options
from tests.api.helpers import HubHarness

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "app-backend.md").read_text(encoding="utf-8")
MARK = "# --- the code shown in docs/app-backend.md ---\n"


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", ROOT / "docs" / "examples" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shown_part(name: str) -> str:
    text = (ROOT / "docs" / "examples" / f"{name}.py").read_text(encoding="utf-8")
    part = text[text.index(MARK) + len(MARK) :]
    return part.split("# --- development wiring")[0].strip()


def test_every_python_block_of_the_doc_is_an_example_that_runs() -> None:
    blocks = [b.strip() for b in re.findall(r"```python\n(.*?)```", DOC, re.S)]
    assert blocks == [shown_part("app_sync"), shown_part("app_async")]


def assert_matches_ground_truth(report: pb.Report, harness: HubHarness, person: Person, banks: list[str]) -> None:
    assert [s.bank_code for s in report.bank_summaries] == banks
    for s in report.bank_summaries:
        truth = harness.population.expected_answer(s.bank_code, person.id_number)
        assert (s.debit_card_count, s.credit_card_count) == (truth.debit_count, truth.credit_count)


async def test_the_sync_example_runs_the_journey_then_meets_the_cooldown(harness: HubHarness, pki: PkiPaths) -> None:
    look_up = example("app_sync").look_up
    person = harness.eligible(0)
    await harness.enrol(person)
    options = client_options(pki, harness.server.port)
    banks = ["102", "308"]

    def run() -> tuple[pb.Report | None, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            report = look_up(
                options,
                person.user_id,
                banks,
                lambda: harness.last_code(person.phone),
                lambda vid: harness.face.attest(person.user_id, vid, harness.clock.now()),
                person.payment_password,
            )
        return report, out.getvalue()

    report, out = await asyncio.to_thread(run)
    assert report is not None
    assert_matches_ground_truth(report, harness, person, banks)
    # Banks may finish before the watch starts (a loaded machine): the last
    # line is always the READY one, whichever messages came before it.
    assert "24小时" in out and out.splitlines()[-1] == f"{len(banks)}/{len(banks)} banks done; query QUERY_STATE_READY"
    harness.clock.advance(dt.timedelta(minutes=2))  # past the SMS rate limit
    again, out = await asyncio.to_thread(run)
    assert again is None
    assert "A new lookup is allowed 7 days after the latest report, from" in out and "Beijing time" in out
    assert re.search(r"retry_time \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)", out)


async def test_the_async_example_retypes_a_wrong_code_with_the_same_request_id(
    harness: HubHarness, pki: PkiPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    look_up = example("app_async").look_up
    person = harness.eligible(1)
    await harness.enrol(person)
    typed: list[str] = []

    async def read_sms_code() -> str:  # the user mistypes the code once
        real = harness.last_code(person.phone)
        typed.append(real if typed else ("000000" if real != "000000" else "111111"))
        return typed[-1]

    async def face_check(verification_id: str) -> face_pb.FaceAttestation:
        return harness.face.attest(person.user_id, verification_id, harness.clock.now())

    options = client_options(pki, harness.server.port)
    report = await look_up(options, person.user_id, ["102"], read_sms_code, face_check, person.payment_password)
    assert_matches_ground_truth(report, harness, person, ["102"])
    assert len(typed) == 2 and "The SMS code is wrong; 4 attempts left." in capsys.readouterr().out
    history = [q async for q in harness.client.iter_queries(person.user_id)]
    assert len(history) == 1  # the retyped code did not make a second query


def test_every_cli_line_of_the_doc_parses() -> None:
    block = re.search(r"## The CLI\n\n```\n(.*?)```", DOC, re.S)
    assert block
    lines = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    commands = [line for line in lines if line.startswith("cardlookup ")]
    documented = {shlex.split(c)[1] for c in commands}
    assert documented == {"enrol", "banks", "verify", "query", "watch", "list", "report", "not-mine", "delete-user"}
    parser = build_parser()
    for command in commands:
        argv = re.sub(r"\[([^\]]*)\]", r"\1", command).split()[1:]  # optional parts included
        parser.parse_args(argv)
    help_text = parser.format_help()
    for status in ("0 ", "1 ", "2 ", "130 "):
        assert re.search(rf"^\s+{status}", help_text, re.M), status
    assert "$CARDLOOKUP_HUB" in help_text and "$CARDLOOKUP_PKI" in help_text


def test_the_error_table_matches_the_client_and_the_hub() -> None:
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([A-Z_]+) \| ([^|]*)\|", DOC, re.M)
    documented = {reason: (status, meta.strip()) for reason, status, meta in rows}
    assert set(documented) == set(errors.BY_REASON) == set(STATUS_OF_REASON)
    for reason, (status, meta) in documented.items():
        assert STATUS_OF_REASON[reason] == getattr(grpc.StatusCode, status), reason
        cls = errors.BY_REASON[reason]
        assert cls.__name__ == "".join(w.capitalize() for w in reason.split("_")) or reason == "HUB_UNAVAILABLE"
        for key in re.findall(r"`(\w+)`", meta):
            assert "{" + key + "}" in errors.SENTENCES[reason], (reason, key)
    classes = {r: (c, k) for r, c, k in re.findall(r"^\| `([A-Z_]+)` \|.*\| `(\w+)` \((\w+)\) \|$", DOC, re.M)}
    assert set(classes) == set(errors.BY_REASON)
    for reason, shown in classes.items():
        cls = errors.BY_REASON[reason]
        assert shown == (cls.__name__, cls.__mro__[1].__name__), reason
        assert cls.__mro__[1] in errors.CATEGORIES, reason


def test_the_documented_replica_options_work() -> None:
    block = re.search(r"### Several hub replicas\n\n.*?```\n(.*?)```", DOC, re.S)
    assert block
    lines = block.group(1).splitlines()
    documented = re.search(r'^ClientOptions\.from_pki\("pki", (\[.*?\])\)', block.group(1), re.M)
    assert documented
    listed = ClientOptions.from_pki("pki", ast.literal_eval(documented.group(1)))
    assert listed.addresses == ("10.0.0.1:50051", "10.0.0.2:50051", "10.0.0.3:50051")
    assert listed.channel_target() == "ipv4:10.0.0.1:50051,10.0.0.2:50051,10.0.0.3:50051"
    cli = next(line for line in lines if line.startswith("cardlookup "))
    args = build_parser().parse_args([*cli.split("#")[0].replace("...", "").split()[1:], "list", "--user-id", "u"])
    assert args.hub == ["10.0.0.1:50051,10.0.0.2:50051", "10.0.0.3:50051"]
    with pytest.raises(ValueError, match="IP address"):
        ClientOptions.from_pki("pki", ["hub-a.example:50051", "hub-b.example:50051"])
    single = ClientOptions.from_pki("pki", "hubs.example:50051")  # one DNS name: balanced over its addresses
    assert single.channel_target() == "hubs.example:50051" and '"round_robin"' in single.service_config()


def test_the_documented_deadlines_and_retries_are_the_clients() -> None:
    options = ClientOptions(target="h:1", ca=Path("ca"), cert=Path("c"), key=Path("k"))
    assert (options.timeout_s, options.create_timeout_s, options.watch_timeout_s) == (10.0, 30.0, 25 * 3600.0)
    assert "10 s per call" in DOC and "30 s for CreateQuery" in DOC and "25 h for a whole" in DOC
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.initial_backoff_s, policy.max_backoff_s) == (4, 0.2, 3.0)
    assert "up to 4 attempts\nwith 0.2–3 s backoff" in DOC
    safe = re.search(r"The safe calls, (.*?) are re-sent", DOC, re.S)
    assert safe
    assert set(re.findall(r"\b([A-Z][a-z]+[A-Z]\w+)\b", safe.group(1))) == set(RETRIED_METHODS)


def test_the_client_gives_a_connection_grpcs_whole_connect_timeout() -> None:
    """grpc's `min_reconnect_backoff_ms` is not a backoff but the minimum
    time a connection attempt (TCP + TLS) may take: as short as the re-dial
    backoff (250 ms), every dial to a loaded hub failed UNAVAILABLE."""
    options = dict(ClientOptions(target="h:1", ca=Path("ca"), cert=Path("c"), key=Path("k")).channel_options())
    assert options["grpc.min_reconnect_backoff_ms"] >= 20_000
    assert options["grpc.initial_reconnect_backoff_ms"] < options["grpc.min_reconnect_backoff_ms"]
