"""`cardlookup-banks`: run a fleet of simulated banks until SIGINT/SIGTERM.

    cardlookup-banks --pki pki/ [--count 16] [--config banks.toml]
                     [--base-port P] [--admin-port P | --no-admin]
                     [--consent-key KEY_ID=PEM ...]
                     [--seed S] [--population-size N] [--addresses-out FILE]

Exit status: 0 after a clean stop, 1 if a port cannot be bound, 2 for bad
usage or a bad configuration file.

Prints one line when every bank serves, and (with --addresses-out) writes
{"banks": {code: address}, "admin": address, "admin_server_name": name,
"metrics": address or null} atomically at that moment, so a hub or demo can wait for the file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

from bank_sim.config_file import ConfigError, FleetSettings, env_overrides, load_settings
from bank_sim.fleet import BankFleet, FleetConfig, join_host_port
from cardlookup.pki import PkiPaths, create_dev_pki
from cardlookup.private_files import write_public

log = logging.getLogger("bank_sim")

STOP_GRACE = 2.0
"""Seconds calls in flight get to finish when the fleet stops."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cardlookup-banks",
        description="Run simulated banks (CardDirectoryService) over mTLS (docs/bank-simulator.md).",
        epilog="Exit status: 0 after a clean stop, 1 if a port cannot be bound, "
        "2 for bad usage or a bad configuration file.",
    )
    parser.add_argument("--pki", type=Path, default=Path("pki"), help="PKI directory (dev PKI created if missing)")
    parser.add_argument("--config", type=Path, help="banks.toml: ports, faults, population (optional)")
    parser.add_argument(
        "--count", type=int, help="number of banks (default 16: the first 16 of docs/rules.md; more are synthetic)"
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--base-port", type=int, help="bank i listens on P+i (default 0: free ports)")
    parser.add_argument("--admin-port", type=int, help="admin API port (default 0: a free port)")
    parser.add_argument("--no-admin", action="store_true", help="run no admin API")
    parser.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (default: none; 0 = a free port)")
    parser.add_argument(
        "--consent-key",
        action="append",
        metavar="KEY_ID=PEM",
        help="a hub consent key the banks trust (repeatable: two during a rotation overlap; "
        "replaces [fleet] consent_keys; default: the PKI's consent key)",
    )
    parser.add_argument("--seed", type=int, help="population seed")
    parser.add_argument("--population-size", type=int, help="number of people")
    parser.add_argument("--addresses-out", type=Path, help="write bank and admin addresses here (JSON)")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="logging level (default WARNING)",
    )
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> FleetSettings:
    settings = load_settings(args.config).with_overrides(**env_overrides(os.environ))
    if args.count is not None:
        if args.count < 1:
            raise ConfigError("--count must be at least 1")
        settings = replace(settings, count=args.count, codes=None)
    if args.population_size is not None and args.population_size < 1:
        raise ConfigError("--population-size must be at least 1")
    settings = settings.with_overrides(
        host=args.host,
        base_port=args.base_port,
        admin_port=args.admin_port,
        metrics_port=args.metrics_port,
        seed=args.seed,
        population_size=args.population_size,
    )
    if args.consent_key:
        settings = replace(settings, consent_keys=consent_key_flags(args.consent_key))
    return replace(settings, admin_port=None) if args.no_admin else settings


def consent_key_flags(entries: list[str]) -> dict[str, Path]:
    """`--consent-key KEY_ID=PEM` flags (the starter kit's form). Raises ConfigError."""
    keys: dict[str, Path] = {}
    for entry in entries:
        key_id, _, pem = entry.partition("=")
        if not key_id or not pem:
            raise ConfigError(f"--consent-key wants KEY_ID=PEM, got {entry!r}")
        keys[key_id] = Path(pem)
    return keys


def ensure_pki(root: Path, codes: list[str]) -> PkiPaths:
    """The PKI at `root`; a development PKI is created (or completed with
    missing bank certificates) only when a needed file is absent."""
    paths = PkiPaths(root)
    needed = [paths.ca_cert, paths.consent_public_key, *(paths.bank_cert(c) for c in codes)]
    if all(p.exists() for p in needed):
        return paths
    return create_dev_pki(root, codes)


def write_atomically(path: Path, text: str) -> None:
    write_public(path, text.encode("utf-8"))  # 0644 in 0700 directories whatever the umask (issue 17)


async def serve(config: FleetConfig, addresses_out: Path | None, started: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    fleet = BankFleet(config)
    await fleet.start()
    try:
        addresses = fleet.addresses
        if addresses_out is not None:
            document = {
                "banks": addresses,
                "admin": fleet.admin_address,
                "admin_server_name": fleet.admin_server_name,
                "metrics": join_host_port(config.host, fleet.metrics_port) if fleet.metrics_port else None,
            }
            write_atomically(addresses_out, json.dumps(document, indent=2) + "\n")
        ports = sorted(int(a.rsplit(":", 1)[1]) for a in addresses.values())
        admin = (
            f"admin {fleet.admin_address} (TLS name {fleet.admin_server_name})" if fleet.admin_address else "no admin"
        )
        metrics_at = join_host_port(config.host, fleet.metrics_port) if fleet.metrics_port else ""
        metrics = f", metrics http://{metrics_at}/metrics" if metrics_at else ""
        print(
            f"bank_sim ready: {len(addresses)} banks on {config.host} ports {ports[0]}-{ports[-1]}, {admin}{metrics}, "
            f"{time.monotonic() - started:.2f}s",
            flush=True,
        )
        await stop.wait()
    finally:
        await fleet.stop(grace=STOP_GRACE)
    print("bank_sim stopped", flush=True)


def main(argv: list[str] | None = None) -> None:
    started = time.monotonic()
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from(args)
        banks = settings.bank_configs()
        population = settings.population()
        consent_keys = settings.trusted_consent_keys()
    except ConfigError as error:
        print(f"cardlookup-banks: {error}", file=sys.stderr)
        sys.exit(2)  # bad usage, like argparse's own errors
    if args.addresses_out is not None:
        args.addresses_out.unlink(missing_ok=True)  # a stale file must not look like this run's
    pki = ensure_pki(args.pki, [b.code for b in banks])
    config = FleetConfig(
        pki=pki,
        banks=banks,
        population=population,
        host=settings.host,
        admin_port=settings.admin_port,
        metrics_port=settings.metrics_port,
        trusted_consent_keys=consent_keys,
    )
    try:
        asyncio.run(serve(config, args.addresses_out, started))
    except OSError as error:
        sys.exit(f"cardlookup-banks: {error}")


if __name__ == "__main__":
    main()
