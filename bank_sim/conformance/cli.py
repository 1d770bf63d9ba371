"""`cardlookup-conformance`: run the bank conformance suite from a shell.

    cardlookup-conformance --address bank.example:7443 --bank-code 102 \\
        --ca ca.pem --client-cert hub-client.pem --client-key hub-client.key \\
        --consent-key consent-test.key --consent-key-id hub-consent-test-1 \\
        --subject-name 张三 --subject-id 310101199001011234

Exit status: 0 when no check failed, 1 when any failed, 2 on bad usage.

`--profile VERSION` certifies against that version of the bank guide: only
the checks it introduced or earlier run (and decide the exit status); the
newer ones are listed as "new since your profile", not run. The default is
the current guide; `--list` shows each check's version.
The suite provokes TLS handshake failures on purpose; gRPC logs a few lines
about them on stderr (GRPC_VERBOSITY=NONE silences them).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from rich.console import Console

from bank_sim.conformance.impostor import cn_impostor_identity
from bank_sim.conformance.report import render_table, to_json
from bank_sim.conformance.results import Outcome
from bank_sim.conformance.runner import CHECKS, run_conformance
from bank_sim.conformance.target import (
    DEFAULT_PRECEDENCE_ID_NUMBER,
    DEFAULT_PRECEDENCE_NAME,
    DEFAULT_UNKNOWN_ID_NUMBER,
    ClientIdentity,
    ConformanceTarget,
    KnownSubject,
    SigningKey,
    population_subject,
)
from bank_sim.conformance.versions import CURRENT_GUIDE_VERSION, GUIDE_VERSIONS, KNOWN_VERSIONS
from cardlookup.banks import bank_fleet
from cardlookup.checksums import is_valid_id_number
from cardlookup.pki import CONSENT_KEY_ID, PkiPaths
from cardlookup.population import Population


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cardlookup-conformance",
        description="Check a bank's cardlookup.bank.v1 CardDirectoryService endpoint against the contract.",
    )
    p.add_argument("--address", help="host:port of the bank endpoint")
    p.add_argument(
        "--dev-pki",
        type=Path,
        help="a cardlookup-pki directory: sets --ca, --client-*, --consent-key*, --other-client-*, --cn-impostor-* "
        "from it",
    )
    p.add_argument(
        "--population-subject",
        action="store_true",
        help="take the known subject from the simulator's default population (for bank_sim runs)",
    )
    p.add_argument("--bank-code", help="the bank category code the endpoint is for, e.g. 102")
    p.add_argument("--ca", type=Path, help="CA certificate (PEM) of the bank's server cert and the hub's client cert")
    p.add_argument("--client-cert", type=Path, help="the hub's client certificate (PEM)")
    p.add_argument("--client-key", type=Path, help="the hub's client private key (PEM)")
    p.add_argument("--consent-key", type=Path, help="the test consent-signing Ed25519 private key the bank trusts")
    p.add_argument("--consent-key-id", help="the key id the bank knows that key by")
    p.add_argument("--subject-name", help="full name of a test customer with at least one listed card")
    p.add_argument("--subject-id", help="that customer's 18-character ID number")
    p.add_argument("--expected-cards", type=int, help="how many cards the bank lists for that customer")
    p.add_argument("--untrusted-key", type=Path, help="an Ed25519 private key the bank must NOT trust (optional)")
    p.add_argument("--untrusted-key-id", default="conformance-untrusted", help="key id for --untrusted-key")
    p.add_argument("--other-client-cert", type=Path, help="a client cert from the same CA that is not the hub's")
    p.add_argument("--other-client-key", type=Path, help="its private key")
    p.add_argument(
        "--cn-impostor-cert", type=Path, help="a client cert from the CA with the hub's name as CN only, not as SAN"
    )
    p.add_argument("--cn-impostor-key", type=Path, help="its private key")
    p.add_argument(
        "--precedence-subject-name", default=DEFAULT_PRECEDENCE_NAME, help="full name of the R13 test customer"
    )
    p.add_argument(
        "--precedence-subject-id", default=DEFAULT_PRECEDENCE_ID_NUMBER, help="ID number of the R13 test customer"
    )
    p.add_argument("--server-name", help="TLS name to verify the bank by (default <code>.bank.cardlookup.internal)")
    p.add_argument("--unknown-id", default=DEFAULT_UNKNOWN_ID_NUMBER, help="a valid ID number the bank does not hold")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per call (default 10)")
    p.add_argument("--only", action="append", default=[], help="run only this check or group (repeatable)")
    p.add_argument("--json", action="store_true", help="print results as JSON instead of a table")
    p.add_argument("--list", action="store_true", help="list the checks (with the guide version of each) and exit")
    p.add_argument(
        "--profile",
        default=CURRENT_GUIDE_VERSION,
        choices=KNOWN_VERSIONS,
        help=f"certify against this bank guide version (default {CURRENT_GUIDE_VERSION}, the current one); "
        "newer checks are listed as new since your profile, not run",
    )
    return p


_REQUIRED = (
    "address",
    "bank_code",
    "ca",
    "client_cert",
    "client_key",
    "consent_key",
    "consent_key_id",
    "subject_name",
    "subject_id",
)


def _fill_dev_defaults(args: argparse.Namespace) -> None:
    """Explicit options win over what --dev-pki and --population-subject fill in."""
    if args.dev_pki is not None:
        pki = PkiPaths(args.dev_pki)
        defaults = {
            "ca": pki.ca_cert,
            "client_cert": pki.cert("hub-client"),
            "client_key": pki.key("hub-client"),
            "consent_key": pki.consent_signing_key,
            "consent_key_id": CONSENT_KEY_ID,
            "other_client_cert": pki.cert("app-backend"),
            "other_client_key": pki.key("app-backend"),
        }
        for name, value in defaults.items():
            if getattr(args, name) is None:
                setattr(args, name, value)
        if args.cn_impostor_cert is None and pki.ca_key.is_file():
            impostor = cn_impostor_identity(pki)
            args.cn_impostor_cert, args.cn_impostor_key = impostor.cert, impostor.key
    if args.population_subject and args.bank_code and args.subject_id is None:
        subject = population_subject(Population(banks=bank_fleet(5000)), args.bank_code)
        args.subject_name, args.subject_id = subject.full_name, subject.id_number
        if args.expected_cards is None:
            args.expected_cards = subject.expected_listed


def target_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ConformanceTarget:
    _fill_dev_defaults(args)
    missing = [f"--{name.replace('_', '-')}" for name in _REQUIRED if getattr(args, name) is None]
    if missing:
        parser.error("missing " + ", ".join(missing))
    for path in (args.ca, args.client_cert, args.client_key, args.consent_key):
        if not path.is_file():
            parser.error(f"no such file: {path}")
    if not is_valid_id_number(args.subject_id):
        parser.error("--subject-id is not a valid 18-character ID number")
    if (args.other_client_cert is None) != (args.other_client_key is None):
        parser.error("--other-client-cert and --other-client-key go together")
    if (args.cn_impostor_cert is None) != (args.cn_impostor_key is None):
        parser.error("--cn-impostor-cert and --cn-impostor-key go together")
    if not is_valid_id_number(args.precedence_subject_id):
        parser.error("--precedence-subject-id is not a valid 18-character ID number")
    return ConformanceTarget(
        address=args.address,
        bank_code=args.bank_code,
        ca_cert=args.ca,
        hub_client=ClientIdentity(args.client_cert, args.client_key),
        consent_key=SigningKey(args.consent_key, args.consent_key_id),
        subject=KnownSubject(args.subject_name, args.subject_id, args.expected_cards),
        untrusted_key=SigningKey(args.untrusted_key, args.untrusted_key_id) if args.untrusted_key else None,
        other_client=ClientIdentity(args.other_client_cert, args.other_client_key) if args.other_client_cert else None,
        cn_impostor=ClientIdentity(args.cn_impostor_cert, args.cn_impostor_key) if args.cn_impostor_cert else None,
        precedence_subject=KnownSubject(args.precedence_subject_name, args.precedence_subject_id),
        server_name=args.server_name,
        unknown_id_number=args.unknown_id,
        timeout=args.timeout,
    )


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    console = Console()
    if args.list:
        for version in GUIDE_VERSIONS:
            console.print(f"guide {version.version} ({version.date}): {version.summary}", highlight=False)
            for check in (c for c in CHECKS if c.since == version.version):
                console.print(f"  [bold]{check.name}[/]  {check.description}", highlight=False)
        return
    target = target_from_args(args, parser)
    results = asyncio.run(run_conformance(target, tuple(args.only), args.profile))
    if args.json:
        print(to_json(results))
    else:
        title = f"cardlookup.bank.v1 conformance, guide {args.profile}: bank {target.bank_code} at {target.address}"
        render_table(results, console, title, args.profile)
    sys.exit(1 if any(r.outcome is Outcome.FAIL for r in results) else 0)


if __name__ == "__main__":
    main()
