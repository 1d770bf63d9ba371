"""`cardlookup`: the app backend's journey from a terminal, over the sync
client. For operators, bank IT teams and demos.

    cardlookup --hub 127.0.0.1:50051 --pki pki enrol --population-user u220000155
    cardlookup ... banks --user-id u220000155
    cardlookup ... verify --user-id u220000155          # the code goes to the SMS outbox
    cardlookup ... query --user-id u220000155 --verification-id V --code 123456 [--banks 102,308] [--track-new-cards]
    cardlookup ... watch --user-id u220000155 --query-id Q
    cardlookup ... list --user-id u220000155
    cardlookup ... report --user-id u220000155 --query-id Q [--password 123456] [--device-key FILE]
    cardlookup ... new-device --user-id u220000155 --device-key FILE [--password 123456]
    cardlookup ... not-mine --user-id u220000155 --query-id Q --card 2 [--close] [--password 123456] [--device-key FILE]

--hub and --pki default to $CARDLOOKUP_HUB and $CARDLOOKUP_PKI. Several hub
replicas: `--hub 10.0.0.1:50051,10.0.0.2:50051` or `--hub` repeated (each
an IP address with its port); calls are spread over the replicas that are
up and serving. The face
attestation `query` sends is signed by the development face provider
(client.devface) with the PKI's face-provider key. Errors are shown as one
plain sentence, never a traceback; see EXIT_STATUSES. The parser, the exit
statuses and the flags are client.cli_args (re-exported here).

Device report key (issue 17): `enrol --device-key FILE` makes the key file
if it does not exist (0600) and registers its public half; reports are then
sealed to it and `report --device-key FILE` opens them here. `new-device`
registers another key file's key (a new phone), with the payment password.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import sys
import uuid
from pathlib import Path

from cryptography.exceptions import InvalidTag
from rich.console import Console
from rich.live import Live
from rich.text import Text

from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.pki import PkiPaths
from cardlookup.population import Person, Population
from client import device_key, render, requests
from client.cli_args import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_STATUSES,
    EXIT_USAGE,
    FLAG_OF_FIELD,
    build_parser,
)
from client.devface import DevFaceProvider
from client.errors import CardLookupError, InvalidField
from client.options import ClientOptions
from client.sync import CardLookupClient

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_STATUSES",
    "EXIT_USAGE",
    "FLAG_OF_FIELD",
    "LocalProblem",
    "build_parser",
    "main",
    "run",
    "watch_with_progress",
]


class LocalProblem(Exception):
    """A problem on this side (arguments, files), as a plain sentence."""


def watch_with_progress(client: CardLookupClient, console: Console, user_id: str, query_id: str) -> pb.Query:
    """Shows a live per-bank table until the query is READY; returns it."""
    last = client.get_query(user_id, query_id)
    with Live(render.progress_table(last), console=console, refresh_per_second=8, transient=False) as live:
        first = True
        for message in client.watch_query(user_id, query_id, changes_only=True):
            if first:
                last, first = message.query, False
            else:
                requests.apply_changes(last, message.query)
            live.update(render.progress_table(last))
    return last


def _population_person(user_id: str) -> Person:
    try:
        return Population().person(user_id)
    except KeyError:
        raise LocalProblem(
            f"{user_id} is not a user of the synthetic population (its user ids look like u220000155)."
        ) from None


def _date(flag: str, value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise LocalProblem(f"{flag} must be a date as YYYY-MM-DD (got {value!r}).") from None


def _device_public(a: argparse.Namespace) -> bytes:
    if not a.device_key:
        return b""
    return device_key.public_bytes(device_key.load_or_create(Path(a.device_key)))


def _enrol(client: CardLookupClient, console: Console, a: argparse.Namespace) -> None:
    if a.population_user:
        p = _population_person(a.population_user)
        user = client.enroll_user(**p.enrolment(), report_public_key=_device_public(a))
    else:
        user = client.enroll_user(
            user_id=a.user_id or "",
            full_name=a.name or "",
            id_number=a.id_number or "",
            id_expiry_date=_date("--id-expiry", a.id_expiry),
            region_code=a.region or "",
            phone_number=a.phone or "",
            payment_password=a.password or "",
            report_public_key=_device_public(a),
        )
    eligible = "may look up cards" if user.eligible else f"may not look up cards yet ({user.ineligible_reason})"
    _say(console, f"Enrolled {user.user_id}: region {user.region_code}, phone {user.masked_phone}; {eligible}.")


def _banks(client: CardLookupClient, console: Console, a: argparse.Namespace) -> None:
    listed = client.list_banks(a.user_id)
    for b in listed.banks:
        _say(console, f"{b.bank_code}  {b.display_name}  {b.english_name}")
    _say(console, f"Authorization notice, version {listed.consent_text_version}:")
    _say(console, listed.consent_text.strip())


def _verify(client: CardLookupClient, console: Console, a: argparse.Namespace) -> None:
    started = client.start_verification(a.user_id)
    _say(console, f"SMS code sent to {started.masked_phone}; verification id {started.verification_id}")
    _say(console, f"The code is valid until {render.local_time(started.expire_time)} (Beijing time).")


def _face_provider(pki: PkiPaths, face_key: str | None) -> DevFaceProvider:
    path = Path(face_key) if face_key else pki.face_provider_key
    try:
        return DevFaceProvider.from_file(path)
    except (OSError, ValueError, TypeError):
        raise LocalProblem(f"The development face-provider key {path} is missing or not an Ed25519 key.") from None


def _query(client: CardLookupClient, console: Console, a: argparse.Namespace, pki: PkiPaths) -> None:
    face = _face_provider(pki, a.face_key)
    listed = client.list_banks(a.user_id)
    banks = [code.strip() for code in a.banks.split(",")] if a.banks else [b.bank_code for b in listed.banks]
    request = requests.create_query(
        user_id=a.user_id,
        request_id=a.request_id or uuid.uuid4().hex,
        verification_id=a.verification_id,
        sms_code=a.code,
        face_attestation=face.attest(a.user_id, a.verification_id, dt.datetime.now(dt.UTC)),
        consent_text_version=listed.consent_text_version,
        bank_codes=banks,
    )
    if a.track_new_cards:  # issue 12: new cards since the last lookup
        request = requests.tracking_new_cards(request)
    query = client.create_query_request(request)
    _say(console, query.acceptance_notice)
    _say(
        console,
        f"Query {query.query_id} accepted; report due by {render.local_time(query.report_due_time)} (Beijing time).",
    )
    if not a.no_wait:
        _watch_to_the_end(client, console, a.user_id, query.query_id)


def _watch(client: CardLookupClient, console: Console, a: argparse.Namespace) -> None:
    _watch_to_the_end(client, console, a.user_id, a.query_id)


def _watch_to_the_end(client: CardLookupClient, console: Console, user_id: str, query_id: str) -> None:
    final = watch_with_progress(client, console, user_id, query_id)
    _say(console, f"Query {final.query_id} is {render.query_state(final.state)}.")


def _list(client: CardLookupClient, console: Console, a: argparse.Namespace) -> None:
    queries = list(client.iter_queries(a.user_id, a.page_size))
    if not queries:
        _say(console, f"{a.user_id} has no lookups yet.")
        return
    console.print(render.history_table(queries))
    access = render.access_table(queries)
    if access is not None:
        console.print(access)
    cases = render.cases_table(queries)
    if cases is not None:
        console.print(cases)


def _report(client: CardLookupClient, console: Console, a: argparse.Namespace) -> None:
    password = a.password if a.password is not None else getpass.getpass("Payment password: ")
    key = device_key.load(Path(a.device_key)) if a.device_key else None
    try:
        report = client.get_report(a.user_id, a.query_id, password, device_key=key)
    except device_key.DeviceKeyNeeded:
        raise LocalProblem("The report is sealed to the user's device key: pass --device-key FILE.") from None
    except InvalidTag:
        raise LocalProblem("The device key file does not open this report (it was sealed to another key).") from None
    if key is not None and any(not b.display_name for b in report.bank_summaries):
        # A device-opened report names banks by code: the names come from ListBanks.
        names = {b.bank_code: b.display_name for b in client.list_banks(a.user_id).banks}
        for summary in report.bank_summaries:
            summary.display_name = summary.display_name or names.get(summary.bank_code, summary.bank_code)
        for card in report.cards:
            card.display_name = card.display_name or names.get(card.bank_code, card.bank_code)
    console.print(render.report_view(report))


def _new_device(client: CardLookupClient, console: Console, a: argparse.Namespace) -> None:
    password = a.password if a.password is not None else getpass.getpass("Payment password: ")
    key = device_key.load_or_create(Path(a.device_key))
    epoch = client.replace_report_key(a.user_id, password, device_key.public_bytes(key))
    _say(console, f"Registered the device report key of {a.device_key} (key {epoch}) for {a.user_id}.")


def _not_mine(client: CardLookupClient, console: Console, a: argparse.Namespace) -> None:
    password = a.password if a.password is not None else getpass.getpass("Payment password: ")
    kind = pb.CARD_CASE_KIND_CLOSE_REQUESTED if a.close else pb.CARD_CASE_KIND_NOT_RECOGNISED
    key = device_key.load(Path(a.device_key)) if a.device_key else None
    case = client.flag_card(a.user_id, a.query_id, password, a.card, kind, device_key=key)
    console.print(render.case_view(case), soft_wrap=True, highlight=False)


def _delete_user(client: CardLookupClient, console: Console, a: argparse.Namespace) -> None:
    password = a.password if a.password is not None else getpass.getpass("Payment password: ")
    closed = client.delete_user(a.user_id, password)
    erased = closed.erased_query_count
    running = f", {closed.ended_query_count} of them still running and ended" if closed.ended_query_count else ""
    _say(
        console,
        f"Account {a.user_id} closed: its data is erased at the hub"
        f" ({erased} {'query' if erased == 1 else 'queries'}{running}).",
    )


def _say(console: Console, text: str) -> None:
    """One line of plain text: the terminal wraps it (ids stay whole) and no
    markup or highlighting is applied to what the hub sent."""
    console.print(text, soft_wrap=True, markup=False, highlight=False)


def _error(console: Console, sentence: str) -> None:
    console.print(Text.assemble(("Error: ", "red"), sentence), soft_wrap=True, highlight=False)


def _sentence(error: CardLookupError) -> str:
    sentence = error.sentence()
    flag = FLAG_OF_FIELD.get(error.metadata.get("field", "")) if isinstance(error, InvalidField) else None
    return f"{sentence[:-1]} ({flag})." if flag else sentence


def _options(pki: PkiPaths, hubs: list[str], timeout_s: float) -> ClientOptions:
    try:
        return ClientOptions.from_pki(pki.root, hubs, timeout_s=timeout_s)
    except ValueError as problem:
        raise LocalProblem(f"--hub: {problem}.") from None


def _check_pki(pki: PkiPaths) -> None:
    for what, path in (
        ("CA certificate", pki.ca_cert),
        ("app-backend certificate", pki.cert("app-backend")),
        ("app-backend key", pki.key("app-backend")),
    ):
        if not path.is_file():
            raise LocalProblem(
                f"The PKI directory {pki.root} has no {what} ({path}); create one with "
                f"`cardlookup-pki --out {pki.root}` or pass --pki."
            )


COMMANDS = {
    "enrol": _enrol,
    "banks": _banks,
    "verify": _verify,
    "watch": _watch,
    "list": _list,
    "report": _report,
    "not-mine": _not_mine,
    "delete-user": _delete_user,
    "new-device": _new_device,
}


def run(argv: list[str] | None = None, console: Console | None = None) -> int:
    """Runs one command; returns the exit status (EXIT_STATUSES)."""
    args = build_parser().parse_args(argv)
    console = console or Console()
    pki = PkiPaths(Path(args.pki))
    try:
        _check_pki(pki)
        options = _options(pki, args.hub or [os.environ.get("CARDLOOKUP_HUB", "127.0.0.1:50051")], args.timeout)
        with CardLookupClient(options) as client:
            if args.command == "query":
                _query(client, console, args, pki)
            else:
                COMMANDS[args.command](client, console, args)
    except CardLookupError as error:
        _error(console, _sentence(error))
        return EXIT_REFUSED
    except LocalProblem as problem:
        _error(console, str(problem))
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.print("Interrupted. A query keeps running at the hub; `cardlookup watch` shows it again.")
        return EXIT_INTERRUPTED
    return EXIT_OK


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
