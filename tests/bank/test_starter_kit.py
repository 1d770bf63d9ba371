"""The Python bank starter kit (bank_kit/): its own tests pass; its server,
run as its README says, over either example data source, passes the whole
conformance suite over real mTLS with no failure and no skip (the go-live
gate); so does a copy of the kit whose only change is a new data-source
class; a kit whose OpenCardCase is left open to other callers fails the
suite; the server drains (NOT_SERVING) and reloads its certificate on
SIGHUP."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bank_sim.conformance import CHECKS, KnownSubject, Outcome, run_conformance
from bank_sim.conformance.target import ConformanceTarget, dev_target
from cardlookup.pki import CONSENT_KEY_ID, PkiPaths, bank_server_name

ROOT = Path(__file__).resolve().parents[2]
CODE = "102"
EXAMPLE = ROOT / "bank_kit" / "example_records.json"
ZHANG = KnownSubject("张三", "310101199003071230", 3)

CSV_SOURCE = '''"""A bank's own records: one CSV row per card (the only change to this
copy of the kit)."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Self

from bank_kit.records import Card, Customer

FIELDS = ("id_number", "full_name", "number", "kind", "conditions", "status")


class CsvRecords:
    name = "csv"

    def __init__(self, path: Path) -> None:
        self._people: dict[str, tuple[str, list[Card]]] = {}
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                name, cards = self._people.setdefault(row["id_number"], (row["full_name"], []))
                conditions = frozenset(filter(None, row["conditions"].split("|")))
                if row["status"] != "closed":
                    cards.append(Card(row["number"], row["kind"], conditions))

    @classmethod
    def open(cls, location: str) -> Self:
        return cls(Path(location))

    @classmethod
    def example(cls, customers_json: Path, workdir: Path) -> Self:
        path = workdir / "cards.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            out = csv.DictWriter(f, FIELDS)
            out.writeheader()
            for id_number, c in json.loads(customers_json.read_text(encoding="utf-8"))["customers"].items():
                for k in c["cards"]:
                    conditions = "|".join(k.get("conditions", ()))
                    out.writerow(dict(zip(FIELDS, (id_number, c["full_name"], k["number"], k["kind"], conditions,
                                                   k.get("status", "active")))))
        return cls(path)

    def find(self, id_number: str, query_id: str, now: dt.datetime) -> Customer | None:
        entry = self._people.get(id_number)
        return None if entry is None else Customer(entry[0], tuple(entry[1]))
'''


def run_kit_tests(where: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", "bank_kit/pytest.ini", "bank_kit/tests", "-vv"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
    return result.stdout


def test_the_kits_own_tests_pass() -> None:
    out = run_kit_tests(ROOT)
    assert "[json]" in out and "[sqlite]" in out  # parametrised over both example sources


def test_the_kits_contract_is_the_projects_and_its_code_is_fresh() -> None:
    kit, project = ROOT / "bank_kit" / "contract", ROOT / "protos"
    protos = sorted(p.relative_to(project) for p in (project / "cardlookup" / "bank").rglob("*.proto"))
    assert protos == sorted(p.relative_to(kit) for p in kit.rglob("*.proto")) and len(protos) >= 2
    assert all((kit / p).read_bytes() == (project / p).read_bytes() for p in protos)
    subprocess.run([sys.executable, "-m", "bank_kit.contract.generate", "--check"], cwd=ROOT, check=True, timeout=120)
    # Its own package name: nothing of the project's `cardlookup` package is shadowed or imported.
    probe = "import sys, bank_kit.server; print(sorted(m for m in sys.modules if m.split('.')[0] == 'cardlookup'))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@asynccontextmanager
async def kit_server(
    pki: PkiPaths, where: Path, source: list[str], *extra: str, cert_dir: Path | None = None
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """`python -m bank_kit.server` run from `where` (a folder holding bank_kit/)."""
    secret = Path(tempfile.mkdtemp(prefix="kit-secret-")) / "card-ref.secret"
    secret.write_text("a-test-secret-for-card-refs\n")
    cert = (cert_dir / "server.pem") if cert_dir else pki.bank_cert(CODE)
    key = (cert_dir / "server.key") if cert_dir else pki.bank_key(CODE)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bank_kit.server",
        "--listen",
        "127.0.0.1:0",
        "--bank-code",
        CODE,
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--ca",
        str(pki.ca_cert),
        "--consent-key",
        f"{CONSENT_KEY_ID}={pki.consent_public_key}",
        *source,
        "--card-ref-secret",
        str(secret),
        *("--drain-seconds", "0"),  # no drain at the end; a test that drains passes its own
        *extra,
        cwd=where,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(where)},
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line.startswith(b"READY "), line
        yield f"127.0.0.1:{int(line.split()[1])}", process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            exited = asyncio.ensure_future(process.wait())
            while not (await asyncio.wait({exited}, timeout=1.0))[0]:
                process.send_signal(signal.SIGTERM)  # still draining: a second signal ends the drain
        shutil.rmtree(secret.parent)
    assert process.returncode == 0


@pytest.fixture
async def kit_bank(pki: PkiPaths, tmp_path: Path) -> AsyncIterator[str]:
    """The kit's server over the example JSON records (other tests use it)."""
    async with kit_server(pki, ROOT, ["--records", str(EXAMPLE)], "--cases", str(tmp_path / "cases.jsonl")) as (
        address,
        _,
    ):
        yield address


def assert_all_passed(results: list, target: ConformanceTarget) -> None:  # type: ignore[type-arg]
    assert [r.name for r in results] == [c.name for c in CHECKS]
    not_passed = [(r.name, r.outcome, r.explanation) for r in results if r.outcome is not Outcome.PASS]
    assert not_passed == [], not_passed


@pytest.mark.parametrize("source", ["json", "sqlite"])
async def test_the_kit_passes_the_whole_conformance_suite(pki: PkiPaths, tmp_path: Path, source: str) -> None:
    """The go-live gate: no failure and no skip (the kit offers card cases)."""
    audit = tmp_path / "audit.jsonl"
    spec = ["--records", str(EXAMPLE)] if source == "json" else ["--source", f"sqlite:{tmp_path / 'db'}"]
    if source == "sqlite":
        spec += ["--example-records", str(EXAMPLE)]
    async with kit_server(pki, ROOT, spec, "--audit-log", str(audit), "--cases", str(tmp_path / "cases.jsonl")) as (
        address,
        _,
    ):
        target = dev_target(pki, address, CODE, ZHANG, timeout=10.0)
        assert_all_passed(await run_conformance(target), target)
    # The consent audit: both verdicts, no personal data.
    text = audit.read_text(encoding="utf-8")
    verdicts = [json.loads(line) for line in text.splitlines()]
    assert {v["verdict"] for v in verdicts} == {"accepted", "refused"}
    assert ZHANG.full_name not in text and ZHANG.id_number not in text
    assert {v["consent_text_version"] for v in verdicts if v["verdict"] == "accepted"} == {"conformance"}
    # A real case row was written by the run (docs: run it against a test environment).
    assert (tmp_path / "cases.jsonl").read_text().count("\n") >= 1


async def test_a_copy_with_only_a_new_data_source_passes_its_tests_and_the_suite(pki: PkiPaths, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "bank_kit", tmp_path / "bank_kit", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "bank_kit" / "sources" / "csv_records.py").write_text(CSV_SOURCE, encoding="utf-8")
    out = run_kit_tests(tmp_path)
    assert "[csv]" in out and f"rootdir: {tmp_path}" in out  # the copy's tests, over the new source
    spec = ["--source", f"csv:{tmp_path / 'csv'}", "--example-records", "bank_kit/example_records.json"]
    async with kit_server(pki, tmp_path, spec) as (address, _):
        target = dev_target(pki, address, CODE, ZHANG, timeout=10.0)
        assert_all_passed(await run_conformance(target), target)
    assert (tmp_path / "csv" / "cards.csv").exists()


def test_the_suite_fails_a_kit_whose_open_card_case_is_open_to_the_app_backend(pki: PkiPaths, tmp_path: Path) -> None:
    """The kit with its caller check narrowed to ListCards (the old kit's
    hole): only tls.caller_must_be_hub_every_service fails."""
    from bank_kit.bank import Desk
    from bank_kit.cases import CaseBook
    from bank_kit.consent import ConsentVerifier
    from bank_kit.server import HubOnly, build_server
    from bank_kit.sources.json_records import JsonRecords
    from cardlookup.pki import load_ed25519_public

    class ListCardsOnly(HubOnly):
        def guards(self, method: str) -> bool:
            return method.endswith("/ListCards")

    desk = Desk(
        ConsentVerifier(CODE, {CONSENT_KEY_ID: load_ed25519_public(pki.consent_public_key)}),
        JsonRecords.open(str(EXAMPLE)),
        b"secret",
    )
    running = build_server(desk, CaseBook(CODE), 16, interceptors=(ListCardsOnly(),))
    credentials = grpc.ssl_server_credentials(
        [(pki.bank_key(CODE).read_bytes(), pki.bank_cert(CODE).read_bytes())],
        root_certificates=pki.ca_cert.read_bytes(),
        require_client_auth=True,
    )
    port = running.server.add_secure_port("127.0.0.1:0", credentials)
    running.server.start()
    try:
        results = asyncio.run(run_conformance(dev_target(pki, f"127.0.0.1:{port}", CODE, ZHANG, timeout=10.0)))
    finally:
        running.server.stop(None)
    failed = {r.name: r.explanation for r in results if r.outcome is Outcome.FAIL}
    # The hole leaves the session stream open too: its own caller check fails with it.
    assert set(failed) == {"tls.caller_must_be_hub_every_service", "session.caller_must_be_hub"}, failed
    assert "OpenCardCase" in failed["tls.caller_must_be_hub_every_service"]
    assert not [r for r in results if r.outcome is Outcome.SKIP]


async def test_the_kits_session_stream_passes_the_session_checks(pki: PkiPaths, kit_bank: str) -> None:
    """The session group (bank_sim/conformance/session_checks.py), run on its
    own until the suite's runner includes it (branch `sessions`)."""
    from bank_sim.conformance.probe import Probe
    from bank_sim.conformance.runner import _run_one
    from bank_sim.conformance.session_checks import SESSION_CHECKS

    probe = Probe.for_target(dev_target(pki, kit_bank, CODE, ZHANG, timeout=10.0))
    results = [await _run_one(check, probe) for check in SESSION_CHECKS]
    assert len(results) >= 5
    assert [(r.name, r.outcome, r.explanation) for r in results if r.outcome is not Outcome.PASS] == []


def _health(pki: PkiPaths, address: str, server_name: str) -> Callable[[], object]:
    def check() -> object:
        credentials = grpc.ssl_channel_credentials(
            pki.ca_cert.read_bytes(), pki.key("hub-client").read_bytes(), pki.cert("hub-client").read_bytes()
        )
        options = [("grpc.ssl_target_name_override", server_name)]
        with grpc.secure_channel(address, credentials, options=options) as channel:
            return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status

    return check


def _answers(check: Callable[[], object]) -> bool:
    try:
        return check() == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


async def eventually(condition: Callable[[], bool]) -> None:
    """Waits (no upper bound: the test's timeout is the limit) until `condition()`."""
    for _ in itertools.count():
        if await asyncio.to_thread(condition):
            return
        await asyncio.sleep(0.1)


async def test_sigterm_drains_not_serving_then_a_second_signal_stops(pki: PkiPaths, tmp_path: Path) -> None:
    async with kit_server(pki, ROOT, ["--records", str(EXAMPLE)], "--drain-seconds", "600") as (address, process):
        health = _health(pki, address, bank_server_name(CODE))
        assert await asyncio.to_thread(health) == health_pb2.HealthCheckResponse.SERVING
        process.send_signal(signal.SIGTERM)
        await eventually(lambda: health() == health_pb2.HealthCheckResponse.NOT_SERVING)
        # Still answering the hub while draining.
        results = await run_conformance(dev_target(pki, address, CODE, ZHANG), only=("consent.valid_accepted",))
        assert [r.outcome for r in results] == [Outcome.PASS]
        assert process.returncode is None
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 60)


async def test_a_second_signal_right_after_the_first_ends_the_drain(pki: PkiPaths, tmp_path: Path) -> None:
    """The second signal comes before the server has begun the drain the
    first one asked for: it still ends the drain (it was lost, and the kit
    drained its whole --drain-seconds). The server is stopped while both
    are sent, so that they arrive together."""
    async with kit_server(pki, ROOT, ["--records", str(EXAMPLE)], "--drain-seconds", "600") as (_, process):
        process.send_signal(signal.SIGSTOP)
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGINT)  # another kind: the system cannot merge the two
        process.send_signal(signal.SIGCONT)
        await asyncio.wait_for(process.wait(), 60)


async def test_sighup_reloads_the_certificate_for_new_connections(pki: PkiPaths, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(pki.bank_cert(CODE), certs / "server.pem")
    shutil.copy(pki.bank_key(CODE), certs / "server.key")
    async with kit_server(pki, ROOT, ["--records", str(EXAMPLE)], cert_dir=certs) as (address, process):
        as_102, as_103 = _health(pki, address, bank_server_name(CODE)), _health(pki, address, bank_server_name("103"))
        assert await asyncio.to_thread(as_102) == health_pb2.HealthCheckResponse.SERVING
        # New files are not used before SIGHUP...
        shutil.copy(pki.bank_cert("103"), certs / "server.pem")
        shutil.copy(pki.bank_key("103"), certs / "server.key")
        assert await asyncio.to_thread(as_102) == health_pb2.HealthCheckResponse.SERVING
        # ...and are after it, for new connections.
        process.send_signal(signal.SIGHUP)
        await eventually(lambda: _answers(as_103))
        with pytest.raises(grpc.RpcError):
            await asyncio.to_thread(as_102)


def install_wheel(tmp_path: Path) -> Path:
    """The project's wheel, installed (not editable) into a folder of its own."""
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, ROOT], check=True, timeout=600)
    (wheel,) = wheels.glob("cardlookup-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True, timeout=600)
    return site


async def test_the_go_live_tools_run_from_a_wheel_without_a_clone(pki: PkiPaths, kit_bank: str, tmp_path: Path) -> None:
    """`pip install` of the project's wheel (no clone, no editable install)
    gives a bank the conformance suite, which writes nothing where it is
    installed."""
    site = await asyncio.to_thread(install_wheel, tmp_path)
    installed = sorted(site.rglob("*"))
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
    run = [sys.executable, "-m", "bank_sim.conformance.cli", "--address", kit_bank, "--bank-code", CODE]
    run += ["--dev-pki", str(pki.root), "--subject-name", ZHANG.full_name, "--subject-id", ZHANG.id_number]
    where = [sys.executable, "-c", "import bank_sim.conformance.cli as c; print(c.__file__)"]
    located = await asyncio.to_thread(
        subprocess.run, where, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert located.stdout.startswith(str(site))  # the wheel's code, not this clone's
    result = await asyncio.to_thread(
        subprocess.run, run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{len(CHECKS)} passed, 0 failed, 0 skipped" in result.stdout
    assert sorted(site.rglob("*")) == installed


def test_the_readme_commands_use_real_options() -> None:
    """Every option the kit's README passes to its server and to the suite
    exists (the commands are the go-live gate a bank copies)."""
    readme = (ROOT / "bank_kit" / "README.md").read_text(encoding="utf-8")
    shell = "\n".join(re.findall(r"```sh\n(.*?)```", readme, flags=re.S)).replace("\\\n", " ")
    commands = [line.strip() for line in shell.splitlines()]
    server_options = {
        o for c in commands if c.startswith("python -m bank_kit.server") for o in re.findall(r"--[a-z-]+", c)
    }
    suite_options = {o for c in commands if c.startswith("cardlookup-conformance") for o in re.findall(r"--[a-z-]+", c)}
    help_text = subprocess.run(
        [sys.executable, "-m", "bank_kit.server", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert server_options and {o for o in server_options if o not in help_text} == set()
    suite_help = subprocess.run(
        [str(Path(sys.executable).parent / "cardlookup-conformance"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert suite_options and {o for o in suite_options if o not in suite_help} == set()
