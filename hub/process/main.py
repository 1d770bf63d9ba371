"""`cardlookup-hub --config hub.toml`: runs the hub until SIGTERM/SIGINT.

SIGHUP re-reads the configuration file and applies it without a restart
(HubServer.reload: certificates, keys, the bank registry; docs/operations.md);
a file it cannot use is logged and changes nothing.

The app-facing API (hub.api.install) is loaded by default; `--without-api`
runs an engine-only hub (fan-out, recovery, retention, health), which the
engine's crash-recovery tests and operators draining a node use.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import signal
import sys
from pathlib import Path

from cardlookup.private_files import write_public
from hub.core.config import ConfigError, HubConfig
from hub.core.logging import configure_logging, get_logger
from hub.keys.hsm import HsmError
from hub.process.server import HubServer, ServiceInstaller, StartupError

log = get_logger("hub.process.main")

GC_THRESHOLDS = (50_000, 20, 20)
"""Python's cyclic collector, tuned for a hub (issue 16): with the default
(700, 10, 10) a fan-out of 8 queries x 256 banks keeps ~100k short-lived
objects in flight (calls, futures, messages) and the collector rescanned
them hundreds of times per second: 1.5-3 s of a 6 s measured phase went to
it (bench.capacity). Collecting the youngest generation every 50,000
allocations instead lets most of them die by reference count first; garbage
in cycles waits at most that long."""


def tune_gc() -> None:
    """Once started: what start-up made (modules, configuration, keys) is
    frozen out of every collection, and the thresholds above apply."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def load_api_installer() -> ServiceInstaller:
    try:
        from hub.api import install
    except ImportError as error:
        raise SystemExit(
            f"cardlookup-hub: the API layer (hub.api.install) is not available ({error}); "
            "install the complete hub, or run with --without-api for an engine-only hub"
        ) from None
    installer: ServiceInstaller = install
    return installer


async def serve(
    config: HubConfig, with_api: bool, grace: float, config_path: Path | None = None, port_file: Path | None = None
) -> None:
    installers = [load_api_installer()] if with_api else []
    hub = HubServer(config, installers=installers, config_path=config_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[None]] = set()
    started = asyncio.Event()

    async def reload_once_started() -> None:
        await started.wait()
        await _reload(hub)

    def on_hangup() -> None:
        task = loop.create_task(reload_once_started())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    # Before the start: a SIGHUP right after `hub_serving` is logged (the
    # start may still be finishing) must reload, not end the process.
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    await hub.start()
    tune_gc()
    if port_file is not None:
        write_port_file(port_file, hub)
    started.set()
    try:
        await stop.wait()
        log.info("hub_stopping", grace_s=grace)
    finally:
        await hub.stop(grace)


def write_port_file(path: Path, hub: HubServer) -> None:
    """--port-file: the ports the hub bound (a config may listen on port 0),
    as JSON, written whole (a reader never sees half a file)."""
    ports = {
        "port": hub.port,
        "health_port": hub.health_port,
        "admin_port": hub.admin_port,
        "metrics_port": hub.metrics_port,
    }
    write_public(path, (json.dumps(ports) + "\n").encode())


async def _reload(hub: HubServer) -> None:
    """SIGHUP: HubServer.reload logs what it applied, or why it refused
    (nothing applied); it is the one owner of reloads, the admin Reload too."""
    try:
        await hub.reload()
    except Exception as error:
        if not isinstance(error, ConfigError | StartupError | HsmError | OSError | ValueError | KeyError):
            log.error("reload_refused", error_type=type(error).__name__)  # not logged by reload itself


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cardlookup-hub",
        description="Runs the card-lookup hub until SIGTERM or SIGINT (docs/hub-engine.md).",
        epilog="Exit status: 0 after a clean stop, 1 if the hub cannot start (keys, ports), "
        "2 for bad usage or a bad configuration file.",
    )
    parser.add_argument(
        "--config", type=Path, required=True, help="the hub's TOML configuration file (docs/examples/hub.toml)"
    )
    parser.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS, help="JSON logs on stderr (default INFO)"
    )
    parser.add_argument("--without-api", action="store_true", help="engine only: no CardLookupService")
    parser.add_argument(
        "--grace", type=float, default=10.0, help="seconds RPCs and bank streams get on shutdown, in total (default 10)"
    )
    parser.add_argument(
        "--port-file",
        type=Path,
        help="once serving, write the bound ports here as JSON (port, health_port, admin_port, metrics_port; "
        "0: not configured), for configs that listen on port 0",
    )
    args = parser.parse_args(argv)
    if args.grace < 0:
        parser.error("--grace must not be negative")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        config = HubConfig.from_file(args.config)
    except ConfigError as error:
        print(f"cardlookup-hub: {error}", file=sys.stderr)
        sys.exit(2)
    configure_logging(args.log_level)
    try:
        if args.port_file is not None:
            args.port_file.unlink(missing_ok=True)  # a stale file must not look like this run's
        asyncio.run(
            serve(
                config,
                with_api=not args.without_api,
                grace=args.grace,
                config_path=args.config,
                port_file=args.port_file,
            )
        )
    except StartupError as error:
        print(f"cardlookup-hub: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
