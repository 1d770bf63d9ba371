"""`cardlookup`: the app backend's journey from a terminal, over the sync
client. For operators, bank IT teams and demos.

    cardlookup --hub 127.0.0.1:50051 --pki pki enrol --population-user u220000003
    cardlookup ... verify --user-id u220000003          # the code goes to the SMS outbox
    cardlookup ... query --user-id u220000003 --verification-id V --code 123456 [--banks 102,308]
    cardlookup ... list --user-id u220000003
    cardlookup ... report --user-id u220000003 --query-id Q --password 123456

--hub and --pki default to $CARDLOOKUP_HUB and $CARDLOOKUP_PKI. The face
attestation `query` sends is signed by the development face provider
(client.devface) with the PKI's face-provider key. Errors are shown as
plain sentences; the exit status is 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import uuid
from pathlib import Path

from rich.console import Console
from rich.live import Live

from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from client import render
from client.devface import DevFaceProvider
from client.errors import CardLookupError
from client.options import ClientOptions
from client.sync import CardLookupClient


def watch_with_progress(client: CardLookupClient, console: Console, user_id: str, query_id: str) -> pb.Query:
    """Shows a live per-bank table until the query is READY; returns it."""
    last = client.get_query(user_id, query_id)
    with Live(render.progress_table(last), console=console, refresh_per_second=8, transient=False) as live:
        for message in client.watch_query(user_id, query_id):
            last = message.query
            live.update(render.progress_table(last))
    return last


def _enrol(client: CardLookupClient, console: Console, a: argparse.Namespace) -> None:
    if a.population_user:
        p = Population().person(a.population_user)
        fields = dict(
            user_id=p.user_id,
            full_name=p.full_name,
            id_number=p.id_number,
            id_expiry_date=p.id_expiry,
            region_code=p.region_code,
            phone_number=p.phone,
            payment_password=p.payment_password,
        )
    else:
        fields = dict(
            user_id=a.user_id,
            full_name=a.name,
            id_number=a.id_number,
            id_expiry_date=dt.date.fromisoformat(a.id_expiry) if a.id_expiry else None,
            region_code=a.region,
            phone_number=a.phone,
            payment_password=a.password or "",
        )
    user = client.enroll_user(**fields)  # type: ignore[arg-type]
    eligible = "may look up cards" if user.eligible else f"may not look up cards yet ({user.ineligible_reason})"
    console.print(f"Enrolled {user.user_id}: region {user.region_code}, phone {user.masked_phone}; {eligible}.")


def _banks(client: CardLookupClient, console: Console, a: argparse.Namespace) -> None:
    listed = client.list_banks(a.user_id)
    for b in listed.banks:
        console.print(f"{b.bank_code}  {b.display_name}  {b.english_name}")
    console.print(f"Authorization notice {listed.consent_text_version}: {listed.consent_text}")


def _verify(client: CardLookupClient, console: Console, a: argparse.Namespace) -> None:
    started = client.start_verification(a.user_id)
    console.print(f"SMS code sent to {started.masked_phone}; verification id {started.verification_id}")
    console.print(f"The code is valid until {render.local_time(started.expire_time)} (Beijing time).")


def _query(client: CardLookupClient, console: Console, a: argparse.Namespace, pki: PkiPaths) -> None:
    listed = client.list_banks(a.user_id)
    banks = a.banks.split(",") if a.banks else [b.bank_code for b in listed.banks]
    face = DevFaceProvider.from_file(Path(a.face_key) if a.face_key else pki.face_provider_key)
    query = client.create_query(
        user_id=a.user_id,
        request_id=a.request_id or uuid.uuid4().hex,
        verification_id=a.verification_id,
        sms_code=a.code,
        face_attestation=face.attest(a.user_id, a.verification_id, dt.datetime.now(dt.UTC)),
        consent_text_version=listed.consent_text_version,
        bank_codes=banks,
    )
    console.print(query.acceptance_notice)
    if not a.no_wait:
        final = watch_with_progress(client, console, a.user_id, query.query_id)
        console.print(f"Query {final.query_id} is {render.query_state(final.state)}.")


def _list(client: CardLookupClient, console: Console, a: argparse.Namespace) -> None:
    console.print(render.history_table(list(client.iter_queries(a.user_id, a.page_size))))


def _report(client: CardLookupClient, console: Console, a: argparse.Namespace) -> None:
    console.print(render.report_view(client.get_report(a.user_id, a.query_id, a.password)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cardlookup", description="The card-lookup hub's app-backend client.")
    parser.add_argument("--hub", default=os.environ.get("CARDLOOKUP_HUB", "127.0.0.1:50051"), help="hub host:port")
    parser.add_argument("--pki", default=os.environ.get("CARDLOOKUP_PKI", "pki"), help="development PKI directory")
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline of each call, seconds")
    sub = parser.add_subparsers(dest="command", required=True)
    enrol = sub.add_parser("enrol", help="enrol a real-name user (R1)")
    enrol.add_argument("--population-user", help="enrol this user of the synthetic population")
    for flag in ("--user-id", "--name", "--id-number", "--id-expiry", "--region", "--phone", "--password"):
        enrol.add_argument(flag)
    sub.add_parser("banks", help="banks open to the user, and the authorization notice").add_argument(
        "--user-id", required=True
    )
    sub.add_parser("verify", help="send an SMS code (R4)").add_argument("--user-id", required=True)
    query = sub.add_parser("query", help="authorize and run a lookup, with live progress")
    query.add_argument("--user-id", required=True)
    query.add_argument("--verification-id", required=True)
    query.add_argument("--code", required=True, help="the 6-digit SMS code")
    query.add_argument("--banks", help="comma-separated bank codes (default: every bank open to the user)")
    query.add_argument("--face-key", help="dev face-provider key (default: PKI/keys/face-provider.key)")
    query.add_argument("--request-id", help="idempotency key (default: random)")
    query.add_argument("--no-wait", action="store_true", help="return once accepted")
    listing = sub.add_parser("list", help="the user's lookup history")
    listing.add_argument("--user-id", required=True)
    listing.add_argument("--page-size", type=int, default=20)
    report = sub.add_parser("report", help="open a report with the payment password (R10)")
    report.add_argument("--user-id", required=True)
    report.add_argument("--query-id", required=True)
    report.add_argument("--password", required=True)
    return parser


def run(argv: list[str] | None = None, console: Console | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = console or Console()
    pki = PkiPaths(Path(args.pki))
    options = ClientOptions.from_pki(pki.root, args.hub, timeout_s=args.timeout)
    try:
        with CardLookupClient(options) as client:
            match args.command:
                case "enrol":
                    _enrol(client, console, args)
                case "banks":
                    _banks(client, console, args)
                case "verify":
                    _verify(client, console, args)
                case "query":
                    _query(client, console, args, pki)
                case "list":
                    _list(client, console, args)
                case "report":
                    _report(client, console, args)
    except CardLookupError as error:
        console.print(f"[red]Error:[/red] {error.sentence()}", highlight=False)
        return 1
    except (OSError, ValueError) as error:
        console.print(f"[red]Error:[/red] {error}", highlight=False)
        return 2
    return 0


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
