"""The hub process: store, engine, gRPC server (mTLS), health, reflection,
retention sweeper.

Start order: open the database, load the keys, build the engine and run its
migrations, run the installers (they register services, migrations and
ready listeners), start the engine (recovery: resumes unfinished queries and
re-runs ready listeners, which is why installers run first), add health and
reflection, bind the mTLS port, start serving and the background tasks.

Stop order: health NOT_SERVING, stop accepting and drain RPCs for `grace`,
stop the engine (in-flight bank streams finish or stay PENDING for the next
start), cancel background tasks, close the database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from cardlookup.clock import Clock, SystemClock
from cardlookup.pki import load_ed25519_private, load_ed25519_public, load_secret
from cardlookup.tls import server_credentials
from hub.config import HubConfig
from hub.crypto import HubKeys
from hub.engine import QueryEngine
from hub.fanout import Fanout
from hub.logging import get_logger
from hub.metrics import ApiMetricsInterceptor, HubMetrics, MetricsEndpoint
from hub.store.db import Database, to_micros

log = get_logger("hub.server")


class StartupError(RuntimeError):
    """The hub cannot start with this configuration (unreadable keys, a port
    that cannot be bound); the message is one line for the operator."""


HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


@dataclass
class HubContext:
    """What an installer gets."""

    config: HubConfig
    clock: Clock
    db: Database
    keys: HubKeys
    engine: QueryEngine
    server: grpc.aio.Server
    service_names: list[str] = field(default_factory=list)
    """Full names of the services an installer added (reflection + health)."""
    background: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Long-running coroutines the hub runs and cancels on stop."""
    metrics: HubMetrics = field(default_factory=HubMetrics)
    """The process's metrics (hub.metrics); installers wrap what they own."""


ServiceInstaller = Callable[[HubContext], Awaitable[None]]


class HubServer:
    def __init__(
        self, config: HubConfig, clock: Clock | None = None, installers: Sequence[ServiceInstaller] = ()
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self._installers = list(installers)
        self._db: Database | None = None
        self._engine: QueryEngine | None = None
        self._server: grpc.aio.Server | None = None
        self._health_server: grpc.aio.Server | None = None
        self._health: health_aio.HealthServicer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._port = 0
        self._health_port = 0
        self.context: HubContext | None = None
        self.metrics = HubMetrics()
        """This hub's metrics, on a registry of its own (several hubs may share a process)."""
        self._metrics_endpoint: MetricsEndpoint | None = None

    @property
    def port(self) -> int:
        """The bound mTLS port (config.listen may ask for port 0)."""
        return self._port

    @property
    def health_port(self) -> int:
        """The plaintext health port, 0 if none is configured."""
        return self._health_port

    @property
    def metrics_port(self) -> int:
        """The bound metrics port, 0 if none is configured."""
        return self._metrics_endpoint.port if self._metrics_endpoint is not None else 0

    @property
    def engine(self) -> QueryEngine:
        if self._engine is None:
            raise RuntimeError("the hub is not started")
        return self._engine

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("the hub is not started")
        return self._db

    async def start(self) -> None:
        config = self.config
        self._db = db = await Database.open(config.database)
        metrics = self.metrics
        metrics.instrument_database(db)
        try:
            keys = _load_keys(config)
            fanout = Fanout(config, metrics=metrics)
            self._engine = engine = QueryEngine(config, db, keys, self.clock, fanout=fanout)
            await engine.migrate()
            self._server = server = grpc.aio.server(
                options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 1024 * 1024)],
                interceptors=[ApiMetricsInterceptor(metrics)],
            )
            self.context = ctx = HubContext(config, self.clock, db, keys, engine, server, metrics=metrics)
            for install in self._installers:
                await install(ctx)
            await engine.start()

            self._health = health = health_aio.HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(health, server)
            names = [*ctx.service_names, HEALTH_SERVICE, reflection.SERVICE_NAME]
            reflection.enable_server_reflection(names, server)
            creds = server_credentials(config.api_tls.cert, config.api_tls.key, config.api_tls.ca)
            self._port = _bind(config.listen, "listen", lambda: server.add_secure_port(config.listen, creds))
            await server.start()
            if config.health_listen:
                # Plaintext health only (load balancers); the API stays mTLS-only.
                self._health_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
                health_pb2_grpc.add_HealthServicer_to_server(health, self._health_server)
                health_server = self._health_server
                self._health_port = _bind(
                    config.health_listen, "health_listen", lambda: health_server.add_insecure_port(config.health_listen)
                )
                await self._health_server.start()
            if config.metrics_listen:
                self._metrics_endpoint = _bind_metrics(metrics, config.metrics_listen)
            for name in ["", *ctx.service_names]:
                await health.set(name, health_pb2.HealthCheckResponse.SERVING)
            self._tasks.append(asyncio.create_task(self._sweep_forever(), name="retention-sweeper"))
            for run in ctx.background:
                self._tasks.append(asyncio.create_task(_run(run)))
        except BaseException:
            await self.stop(grace=0)
            raise
        log.info("hub_serving", port=self._port, health_port=self._health_port, banks=len(config.banks))

    async def stop(self, grace: float = 5.0) -> None:
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)
        if self._health_server is not None:
            await self._health_server.stop(0)
        if self._engine is not None:
            await self._engine.stop(grace)
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._db is not None:
            await self._db.close()
        if self._metrics_endpoint is not None:
            self._metrics_endpoint.close()
            self._metrics_endpoint = None
        self._server = self._health_server = self._health = None
        self._engine = None
        self._db = None
        log.info("hub_stopped")

    async def _sweep_forever(self) -> None:
        interval = self.config.timings.sweep_interval.total_seconds()
        while True:
            try:
                await self.engine.sweep_expired()
                await self.metrics.refresh_store_gauges(self.db, to_micros(self.clock.now()))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.error("sweep_failed", exc_info=True)
            await asyncio.sleep(interval)


def _load_keys(config: HubConfig) -> HubKeys:
    checks: tuple[tuple[str, Path, Callable[[Path], object]], ...] = (
        ("keys.key_encryption_key", config.key_encryption_key, load_secret),
        ("keys.index_key", config.index_key, load_secret),
        ("keys.consent_signing_key", config.consent_signing_key, load_ed25519_private),
    )
    checks += tuple(
        (f"keys.face_provider_keys.{key_id}", path, load_ed25519_public)
        for key_id, path in config.face_provider_keys.items()
    )
    for key, path, load in checks:
        try:
            load(path)
        except (OSError, ValueError):
            # The loaders' own messages may quote file content; name the key and the file only.
            raise StartupError(f"{key}: {path} does not hold a usable key") from None
    return HubKeys.load(config)


def _bind(address: str, key: str, add_port: Callable[[], int]) -> int:
    # grpc raises a bare RuntimeError (and logs the errno itself) when a port
    # cannot be bound; the operator needs the key and the address instead.
    try:
        return add_port()
    except RuntimeError:
        raise StartupError(f"{key}: cannot listen on {address} (in use, or not an address of this host)") from None


def _bind_metrics(metrics: HubMetrics, address: str) -> MetricsEndpoint:
    try:
        return MetricsEndpoint(metrics.registry, address)
    except OSError:
        raise StartupError(
            f"metrics_listen: cannot listen on {address} (in use, or not an address of this host)"
        ) from None


async def _run(fn: Callable[[], Awaitable[None]]) -> None:
    await fn()
