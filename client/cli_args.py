"""The `cardlookup` command's arguments (client.cli runs them): the parser
with every command and flag, the exit statuses, and the flag each request
field is typed with (so that an INVALID_FIELD names the flag)."""

from __future__ import annotations

import argparse
import os

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_STATUSES = """exit status:
  0    done
  1    the hub refused the request or could not be reached (the message says why)
  2    a problem on this side: bad arguments, a missing PKI or key file
  130  interrupted (Ctrl-C); a query keeps running at the hub: `watch` shows it again"""

# The request field an INVALID_FIELD names -> the flag the user typed it with.
FLAG_OF_FIELD = {
    "user_id": "--user-id",
    "parent": "--user-id",
    "name": "--query-id",
    "full_name": "--name",
    "id_number": "--id-number",
    "id_expiry_date": "--id-expiry",
    "region_code": "--region",
    "phone_number": "--phone",
    "payment_password": "--password",
    "device_card": "--device-key",
    "verification_id": "--verification-id",
    "sms_code": "--code",
    "bank_codes": "--banks",
    "request_id": "--request-id",
    "page_size": "--page-size",
    "card_id": "--card",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cardlookup",
        description="The card-lookup hub's app-backend client: enrol, verify, query with live progress, "
        "history, report. Times are shown in Beijing time.",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--hub",
        action="append",
        metavar="HOST:PORT",
        help="hub host:port; several hub replicas as IP:PORT,IP:PORT,... or a repeated --hub: calls are "
        "spread over those that are up (default: $CARDLOOKUP_HUB, else 127.0.0.1:50051)",
    )
    parser.add_argument(
        "--pki",
        default=os.environ.get("CARDLOOKUP_PKI", "pki"),
        help="development PKI directory made by cardlookup-pki (default: $CARDLOOKUP_PKI, else ./pki)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline of each call, seconds (default 10)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=EXIT_STATUSES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    def user_id(p: argparse.ArgumentParser, required: bool = True) -> None:
        p.add_argument("--user-id", required=required, help="the app's user id")

    enrol = command("enrol", "enrol a real-name user, or replace their data (R1)")
    enrol.add_argument(
        "--population-user", metavar="USER_ID", help="enrol this user of the synthetic population (all fields)"
    )
    user_id(enrol, required=False)
    enrol.add_argument("--name", help="full name as on the ID card")
    enrol.add_argument("--id-number", help="18-character resident ID number")
    enrol.add_argument("--id-expiry", metavar="YYYY-MM-DD", help="ID card expiry date (omit: long-term)")
    enrol.add_argument("--region", metavar="CODE", help="GB/T 2260 province code, e.g. 310000")
    enrol.add_argument("--phone", help="11-digit mobile number")
    enrol.add_argument("--password", help="6-digit payment password (required the first time)")
    enrol.add_argument("--device-key", metavar="FILE", help="seal reports to this device key (made if missing, 0600)")
    user_id(command("banks", "the banks open to the user, and the authorization notice (R2, R3)"))
    user_id(command("verify", "send an SMS code to the registered phone (R4)"))
    query = command("query", "authorize and run a lookup, with live per-bank progress (R3-R6)")
    user_id(query)
    query.add_argument("--verification-id", required=True, help="the id `verify` printed")
    query.add_argument("--code", required=True, help="the 6-digit SMS code")
    query.add_argument("--banks", help="comma-separated bank codes (default: every bank open to the user)")
    query.add_argument("--face-key", help="dev face-provider key (default: PKI/keys/face-provider.key)")
    query.add_argument("--request-id", help="idempotency key: the same id returns the same query (default: random)")
    query.add_argument("--no-wait", action="store_true", help="return once accepted (see `watch`)")
    query.add_argument(
        "--track-new-cards",
        action="store_true",
        help="mark the cards new since your previous tracked lookup (omit: stop tracking, delete the record)",
    )
    watch = command("watch", "live per-bank progress of a query until it is ready (R6)")
    user_id(watch)
    watch.add_argument("--query-id", required=True, help="the query id `query` or `list` printed")
    listing = command("list", "the user's lookup history, newest first, with report access (R10, R11)")
    user_id(listing)
    listing.add_argument("--page-size", type=int, default=20, help="queries per call, 1-100 (default 20)")
    report = command("report", "open a report with the payment password (R10)")
    user_id(report)
    report.add_argument("--query-id", required=True, help="the query id `query` or `list` printed")
    report.add_argument("--password", help="the 6-digit payment password (default: ask for it)")
    report.add_argument("--device-key", metavar="FILE", help="the device key file that opens a sealed report")
    new_device = command("new-device", "register a new device's report key, with the payment password (issue 17)")
    user_id(new_device)
    new_device.add_argument("--device-key", required=True, metavar="FILE", help="the new key file (made if missing)")
    new_device.add_argument("--password", help="the 6-digit payment password (default: ask for it)")
    not_mine = command("not-mine", "open a case at the bank about a card of the report (issue 12)")
    user_id(not_mine)
    not_mine.add_argument("--query-id", required=True, help="the query whose report lists the card")
    not_mine.add_argument("--card", required=True, metavar="N", help="the card's # in `report`")
    not_mine.add_argument("--close", action="store_true", help="the card is yours but unused: ask to close it")
    not_mine.add_argument("--password", help="the 6-digit payment password (default: ask for it)")
    not_mine.add_argument("--device-key", metavar="FILE", help="the device report key, for a report sealed to it")
    leave = command("delete-user", "close the account: the hub erases the user's data (issue 22)")
    user_id(leave)
    leave.add_argument("--password", help="the 6-digit payment password (default: ask for it)")
    return parser
