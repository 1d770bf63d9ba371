"""`cardlookup-demo`: the whole service end to end on one machine.

1. `cardlookup-pki` creates a development PKI (CA, hub, app backend, banks).
2. `cardlookup-banks` starts 16 simulated banks (one process).
3. `cardlookup-hub` starts the hub (another process) with a config written
   here: mTLS both ways, SMS outbox, database in the work directory.
4. As the app backend (the sync client): enrol a population user, send the
   SMS code and read it from the outbox, sign a face attestation with the
   dev face provider, create a query of all 16 banks with live per-bank
   progress, open the report with the payment password and print it.
5. Compare the report with the population's ground truth, then stop both
   processes (SIGTERM, graceful) and remove the work directory.

Exit status 0 only if the report matches the ground truth.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from rich.console import Console

from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import PkiPaths
from cardlookup.population import Person, Population
from client import render
from client.cli import watch_with_progress
from client.devface import DevFaceProvider
from client.errors import CardLookupError
from client.options import ClientOptions
from client.sync import CardLookupClient
from devstack import localstack
from hub.core.notify import read_outbox, verification_code_in

BANK_COUNT = 16


def ground_truth_mismatches(report: pb.Report, person: Person, population: Population) -> list[str]:
    """What differs between the report and what the banks hold (R7, R13)."""
    problems = []
    for s in report.bank_summaries:
        truth = population.expected_answer(s.bank_code, person.id_number)
        if s.state != pb.BANK_OUTCOME_STATE_ANSWERED:
            problems.append(f"bank {s.bank_code} did not answer")
        got = (s.debit_card_count, s.credit_card_count, s.unlisted_card_count)
        want = (truth.debit_count, truth.credit_count, sum(truth.unlisted.values()))
        if got != want:
            problems.append(f"bank {s.bank_code}: debit/credit/unlisted {got}, expected {want}")
    codes = [s.bank_code for s in report.bank_summaries]
    got_cards = Counter((c.bank_code, c.card_type, c.first_four, c.last_four) for c in report.cards)
    want_cards = Counter(
        (code, pb.CARD_TYPE_DEBIT if c.kind == "debit" else pb.CARD_TYPE_CREDIT, c.first_four, c.last_four)
        for code in codes
        for c in population.expected_answer(code, person.id_number).listed
    )
    if got_cards != want_cards:
        problems.append("the listed cards differ from the banks' records")
    return problems


def run_demo(work: Path, console: Console) -> bool:
    pki = PkiPaths(work / "pki")
    console.rule("1. Development PKI")
    subprocess.run(
        [*localstack.command("cardlookup-pki"), "--out", str(pki.root), "--banks", str(BANK_COUNT)], check=True
    )
    banks_proc: localstack.Process | None = None
    hub_proc: localstack.Process | None = None
    logs = work / "logs"
    logs.mkdir()
    try:
        console.rule(f"2. {BANK_COUNT} simulated banks")
        addresses_file = work / "banks.json"
        banks_proc = localstack.start_banks(pki, BANK_COUNT, addresses_file, logs / "banks.log")
        localstack.wait_for_file(addresses_file, banks_proc, "cardlookup-banks", logs / "banks.log")
        banks = localstack.read_addresses(addresses_file)
        console.print(f"{len(banks)} banks serving over mTLS (pid {banks_proc.pid})")

        console.rule("3. The hub")
        config = work / "hub.toml"
        localstack.write_hub_config(config, pki, 0, banks, work)
        hub_proc = localstack.start_hub(config, logs / "hub.log")
        port = localstack.wait_for_hub(logs / "hub.log", hub_proc)
        options = ClientOptions.from_pki(pki.root, f"127.0.0.1:{port}")
        with CardLookupClient(options) as client:
            client.wait_ready(localstack.START_TIMEOUT_S)
            console.print(f"hub serving on 127.0.0.1:{port} (pid {hub_proc.pid}), app-backend certificate only")
            return _journey(client, console, pki, work / "sms-outbox.jsonl")
    except (CardLookupError, RuntimeError, subprocess.CalledProcessError) as error:
        message = error.sentence() if isinstance(error, CardLookupError) else str(error)
        console.print(f"[red]Demo failed:[/red] {message}")
        for name in ("banks.log", "hub.log"):
            tail = (logs / name).read_text(errors="replace").splitlines()[-15:] if (logs / name).exists() else []
            if tail:
                console.print(f"--- last lines of {name}:\n" + "\n".join(tail), highlight=False, markup=False)
        return False
    finally:
        console.rule("6. Shutdown")
        for process, what in ((hub_proc, "the hub"), (banks_proc, "the banks")):
            if localstack.stop(process):
                console.print(f"{what} did not stop within {localstack.STOP_TIMEOUT_S:.0f} s; killed it")
        console.print("hub and banks stopped")


def _journey(client: CardLookupClient, console: Console, pki: PkiPaths, outbox: Path) -> bool:
    population = Population()
    person = population.demo_person(dt.datetime.now(dt.UTC).date())
    console.rule("4. The user's journey (as the app backend)")
    user = client.enroll_user(**person.enrolment())
    console.print(f"enrolled {user.user_id} (region {user.region_code}, phone {user.masked_phone})")
    listed = client.list_banks(person.user_id)
    console.print(f"{len(listed.banks)} banks open to the user; notice version {listed.consent_text_version}")
    started = client.start_verification(person.user_id)
    sms = [m for m in read_outbox(outbox) if m["phone"] == person.phone and m["kind"] == "VERIFICATION_CODE"]
    code = verification_code_in(sms[-1]["text"]) if sms else None
    if code is None:
        raise RuntimeError("no SMS code in the outbox")
    console.print(f"SMS to {started.masked_phone}: {sms[-1]['text']}")
    face = DevFaceProvider.from_file(pki.face_provider_key)
    query = client.create_query(
        user_id=person.user_id,
        request_id=uuid.uuid4().hex,
        verification_id=started.verification_id,
        sms_code=code,
        face_attestation=face.attest(person.user_id, started.verification_id, dt.datetime.now(dt.UTC)),
        consent_text_version=listed.consent_text_version,
        bank_codes=[b.bank_code for b in listed.banks],
    )
    console.print(query.acceptance_notice)
    watch_with_progress(client, console, person.user_id, query.query_id)
    ready_sms = _wait_for_ready_sms(outbox, person.phone)
    console.print(f"SMS to {started.masked_phone}: {ready_sms}")

    console.rule("5. The report (payment password)")
    report = client.get_report(person.user_id, query.query_id, person.payment_password)
    console.print(render.report_view(report))
    console.print(render.history_table([client.get_query(person.user_id, query.query_id)]))
    problems = ground_truth_mismatches(report, person, population)
    if problems:
        console.print("[red]The report does NOT match the population's ground truth:[/red]")
        for p in problems:
            console.print(f"  - {p}")
        return False
    cards = len(report.cards)
    console.print(
        f"[green]The report matches the population's ground truth[/green] for {person.user_id}: "
        f"{len(report.bank_summaries)} banks, {cards} listed cards, "
        f"{sum(s.unlisted_card_count for s in report.bank_summaries)} not listed (R13)."
    )
    return True


def _wait_for_ready_sms(outbox: Path, phone: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ready = [m for m in read_outbox(outbox) if m["phone"] == phone and m["kind"] == "REPORT_READY"]
        if ready:
            return ready[-1]["text"]
        time.sleep(0.05)
    return "(no report-ready SMS yet)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cardlookup-demo", description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--workdir", type=Path, help="where to put the PKI, database and logs (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    console = Console()
    started = time.monotonic()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="cardlookup-demo-"))
    if args.workdir:
        if work.exists() and any(work.iterdir()):
            raise SystemExit(f"cardlookup-demo: {work} is not empty")
        work.mkdir(parents=True, exist_ok=True)
    try:
        ok = run_demo(work, console)
    finally:
        if args.keep:
            console.print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    console.print(f"demo {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
