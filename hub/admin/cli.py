"""`cardlookup-admin`: the operator's command for the hub's admin service.

    cardlookup-admin --target 127.0.0.1:50053 --pki pki/ health [--watch 2]
    cardlookup-admin --target ... --ca ca.pem --cert operator.pem --key operator.key reload
    cardlookup-admin --target ... --pki pki/ drain
    cardlookup-admin --target ... --pki pki/ log-level hub.fanout DEBUG
    cardlookup-admin --target ... --pki pki/ rewrap [--batch-size 500]

It presents the operator's client certificate (with --pki: certs/operator.*
of a development PKI). `health` prints one row per bank; `--watch SECONDS`
redraws it until interrupted. `rewrap` moves every stored item sealed under a
previous key-encryption key onto the current one, one batch per call, with a
progress line per batch; interrupt and re-run it at will. Exit status: 0 done, 1 the hub refused or is
unreachable (one line on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import grpc
from rich.console import Console
from rich.live import Live
from rich.table import Table

from cardlookup.admin.v1 import admin_service_pb2 as pb
from cardlookup.admin.v1 import admin_service_pb2_grpc as admin_grpc
from cardlookup.pki import HUB_SERVER_NAME, PkiPaths
from cardlookup.rpc_errors import error_info_of
from cardlookup.tls import channel_credentials

BREAKER_NAMES = {
    pb.BREAKER_STATE_CLOSED: "closed",
    pb.BREAKER_STATE_OPEN: "[red]open[/red]",
    pb.BREAKER_STATE_HALF_OPEN: "[yellow]half-open[/yellow]",
}


def health_table(response: pb.GetBankHealthResponse) -> Table:
    table = Table(title="bank health (this hub process)")
    for column, justify in (
        ("bank", "left"),
        ("name", "left"),
        ("calls", "right"),
        ("success", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("breaker", "left"),
        ("in flight", "right"),
        ("last error", "left"),
    ):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for b in response.banks:
        table.add_row(
            b.bank_code,
            b.display_name,
            str(b.recent_calls),
            f"{b.success_rate * 100:.1f}%",
            f"{b.latency_p50_seconds * 1000:.0f}",
            f"{b.latency_p99_seconds * 1000:.0f}",
            BREAKER_NAMES.get(b.breaker_state, "?"),
            str(b.in_flight),
            b.last_error_reason or "-",
        )
    return table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cardlookup-admin",
        description="Operate a running hub through its admin service (docs/operations.md).",
        epilog="Exit status: 0 done, 1 refused or unreachable, 2 bad usage.",
    )
    parser.add_argument("--target", required=True, help="host:port of the hub's admin_listen")
    parser.add_argument("--pki", type=Path, help="a development PKI: uses ca.pem and certs/operator.*")
    parser.add_argument("--ca", type=Path, help="CA certificate the hub's certificate chains to")
    parser.add_argument("--cert", type=Path, help="the operator's client certificate")
    parser.add_argument("--key", type=Path, help="the operator's private key")
    parser.add_argument(
        "--server-name", default=HUB_SERVER_NAME, help=f"TLS name the hub's certificate carries ({HUB_SERVER_NAME})"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call (default 10)")
    sub = parser.add_subparsers(dest="command", required=True)
    health = sub.add_parser("health", help="bank health as a table")
    health.add_argument("--watch", type=float, metavar="SECONDS", help="redraw every SECONDS until Ctrl-C")
    sub.add_parser("reload", help="re-read the hub's configuration file and apply it (as SIGHUP)")
    sub.add_parser("drain", help="health NOT_SERVING: load balancers stop sending new calls")
    level = sub.add_parser("log-level", help="change a logger's level")
    level.add_argument("logger", help='"hub" or a logger under it, e.g. hub.fanout')
    level.add_argument("level", type=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    rewrap = sub.add_parser("rewrap", help="move items sealed under previous key-encryption keys onto the current one")
    rewrap.add_argument("--batch-size", type=int, default=500, help="items per call (default 500, at most 5000)")
    args = parser.parse_args(argv)
    if args.pki is not None:
        paths = PkiPaths(args.pki)
        args.ca = args.ca or paths.ca_cert
        args.cert = args.cert or paths.cert("operator")
        args.key = args.key or paths.key("operator")
    if not (args.ca and args.cert and args.key):
        parser.error("give --pki, or all of --ca, --cert and --key")
    if args.command == "rewrap" and not 0 < args.batch_size <= 5000:
        parser.error("--batch-size must be 1 to 5000")
    if args.command == "health" and args.watch is not None and args.watch <= 0:
        parser.error("--watch must be a positive number of seconds")
    return args


def run(args: argparse.Namespace, console: Console) -> None:
    try:
        credentials = channel_credentials(args.ca, args.cert, args.key)
    except OSError as error:
        raise SystemExit(f"cardlookup-admin: cannot read {error.filename}") from None
    options = [("grpc.ssl_target_name_override", args.server_name)]
    with grpc.secure_channel(args.target, credentials, options=options) as channel:
        stub = admin_grpc.AdminServiceStub(channel)
        if args.command == "health":
            if args.watch is None:
                console.print(health_table(stub.GetBankHealth(pb.GetBankHealthRequest(), timeout=args.timeout)))
                return
            with Live(console=console, auto_refresh=False) as live:
                while True:
                    response = stub.GetBankHealth(pb.GetBankHealthRequest(), timeout=args.timeout)
                    live.update(health_table(response), refresh=True)
                    time.sleep(args.watch)
        elif args.command == "reload":
            for change in stub.Reload(pb.ReloadRequest(), timeout=args.timeout).changes:
                console.print(change, markup=False)
        elif args.command == "drain":
            drained = stub.Drain(pb.DrainRequest(), timeout=args.timeout)
            console.print(
                f"draining: {drained.api_calls_in_progress} API calls and "
                f"{drained.bank_calls_in_flight} bank calls in progress continue"
            )
        elif args.command == "rewrap":
            rewrap(stub, args, console)
        else:
            done = stub.SetLogLevel(pb.SetLogLevelRequest(logger=args.logger, level=args.level), timeout=args.timeout)
            console.print(f"{done.logger}: {done.previous_level} -> {done.level}")


def rewrap(stub: admin_grpc.AdminServiceStub, args: argparse.Namespace, console: Console) -> None:
    """Rewrap batches until nothing movable is left; one line per batch, then
    what is left by key id ("(no id)": sealed before key ids existed)."""
    total = 0
    while True:
        done = stub.Rewrap(pb.RewrapRequest(batch_size=args.batch_size), timeout=args.timeout)
        total += done.rewrapped
        console.print(
            f"rewrapped {done.rewrapped} (total {total}) onto {done.current_key_id}; {done.remaining} left",
            markup=False,
            soft_wrap=True,
        )
        if done.rewrapped == 0 or done.remaining == 0:
            break
    for key_id, count in sorted(done.remaining_by_key_id.items()):
        console.print(f"left under {key_id or '(no id)'}: {count}", markup=False, soft_wrap=True)
    if done.unknown:
        console.print(
            f"{done.unknown} items are under key ids the hub's configuration does not list"
            " (KEK_UNKNOWN in the hub's log): list those keys again, then re-run",
            markup=False,
            soft_wrap=True,
        )
    if done.remaining == 0:
        console.print(
            "nothing left: the previous key-encryption keys can be removed from the configuration", soft_wrap=True
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        run(args, Console())
    except KeyboardInterrupt:
        pass
    except grpc.RpcError as error:
        code = error.code()
        info = error_info_of(error)
        reason = f" {info.reason}" if info and info.reason else ""
        print(f"cardlookup-admin: {code.name}{reason}: {error.details()}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
