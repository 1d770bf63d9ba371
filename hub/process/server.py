"""The hub process: store, engine, gRPC server (mTLS), health, reflection,
retention sweeper.

Start order: open the database, load the keys, build the engine and run its
migrations, run the installers (they register services, migrations and
ready listeners), start the engine (recovery: resumes unfinished queries and
re-runs ready listeners, which is why installers run first), add health and
reflection, bind the mTLS port, start serving and the background tasks.

Stop order (issue 19): health NOT_SERVING, then RPCs and the engine's bank
streams drain together until one deadline `grace` seconds away (bank
streams not finished by then stay PENDING for another replica or the next
start; the leases are released), cancel background tasks, close the
database. `grace` is the whole budget, not a per-stage one.

Run-time operations (issue 11): `reload` re-reads the configuration (SIGHUP
or the admin service's Reload) and applies it without a restart; `drain`
takes the hub out of the load balancers' rotation; `bank_health` feeds the
admin service's bank-health view. The admin service listens on its own
port (`admin_listen`), for operator certificates only (hub.admin).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from cardlookup.clock import Clock, SystemClock
from hub.admin import install_admin
from hub.api.interceptors import ApiInterceptor
from hub.api.limits import SERVER_OPTIONS
from hub.core.config import HubConfig
from hub.core.logging import get_logger
from hub.engine import QueryEngine
from hub.fanout import Fanout
from hub.keys.certs import ReloadableServerCredentials
from hub.runtime.context import HubContext, ServiceInstaller
from hub.runtime.health import WRITES_HEALTH_SERVICE, StoppingHealthServicer
from hub.runtime.listen import StartupError, bind, bind_metrics, check_tls, keepalive_options
from hub.runtime.reload import ReloadMixin, load_keys
from hub.runtime.reload_diff import fingerprints
from hub.store.db import Database, describe_target, open_database, to_micros
from hub.store.queries import QueryStore
from hub.telemetry import tracing
from hub.telemetry.api_metrics import ApiMetricsInterceptor
from hub.telemetry.metrics import BankHealthRow, HubMetrics, MetricsEndpoint

__all__ = [
    "WRITES_HEALTH_SERVICE",
    "HubContext",
    "HubServer",
    "ServiceInstaller",
    "StartupError",
    "keepalive_options",
]
"""Names other modules import from here (HubContext, StartupError and the
keepalive options live in hub.runtime.context and hub.runtime.listen)."""

log = get_logger("hub.process.server")


HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class HubServer(ReloadMixin):
    def __init__(
        self,
        config: HubConfig,
        clock: Clock | None = None,
        installers: Sequence[ServiceInstaller] = (),
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        """The file `reload()` re-reads (None: reload takes a HubConfig)."""
        self.clock: Clock = clock or SystemClock()
        self._installers = list(installers)
        self._db: Database | None = None
        self._engine: QueryEngine | None = None
        self._server: grpc.aio.Server | None = None
        self._health_server: grpc.aio.Server | None = None
        self._health: health_aio.HealthServicer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._port = 0
        self.api_interceptor: ApiInterceptor | None = None
        self._health_port = 0
        self.context: HubContext | None = None
        self.metrics = HubMetrics()
        """This hub's metrics, on a registry of its own (several hubs may share a process)."""
        self._metrics_endpoint: MetricsEndpoint | None = None
        self._credentials: ReloadableServerCredentials | None = None
        self._admin_credentials: ReloadableServerCredentials | None = None
        self._admin_server: grpc.aio.Server | None = None
        self._admin_port = 0
        self._fanout: Fanout | None = None
        self._reload_lock = asyncio.Lock()
        self._files: dict[str, str] = {}
        """Digests of the files the applied configuration names (hub.runtime.reload_diff)."""
        self.draining = False
        self._writes_ok = True
        self._api_writes_ok = True

    @property
    def port(self) -> int:
        """The bound mTLS port (config.listen may ask for port 0)."""
        return self._port

    @property
    def health_port(self) -> int:
        """The plaintext health port, 0 if none is configured."""
        return self._health_port

    @property
    def fanout(self) -> Fanout:
        """The bank lanes and channels (bank health, tests of re-dialling)."""
        if self._fanout is None:
            raise RuntimeError("the hub is not started")
        return self._fanout

    @property
    def admin_port(self) -> int:
        """The bound admin port, 0 if none is configured."""
        return self._admin_port

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
        try:
            self._db = db = await open_database(config.database, settings=config.timings.connection_settings())
        except Exception as error:
            raise StartupError(
                f"database: {describe_target(config.database)} cannot be opened: {_why(error)}"
            ) from None
        metrics = self.metrics
        metrics.instrument_database(db)
        tracing.configure(config.tracing)
        tracing.instrument_database(db)
        try:
            keys = load_keys(config)
            self._fanout = fanout = Fanout(config, metrics=metrics)
            self._engine = engine = QueryEngine(config, db, keys, self.clock, fanout=fanout)
            try:
                await engine.migrate()
            except Exception as error:
                raise StartupError(
                    f"database: {describe_target(config.database)} refuses writes: {_why(error)}"
                ) from None
            engine.add_store_health_listener(self._on_store_health)
            # The API's cross-cutting checks (caller, decoding, limits, error
            # mapping) are one interceptor, applied to every API method; the
            # metrics interceptor outside it sees every call's final status.
            self.api_interceptor = ApiInterceptor.for_config(config)
            self.api_interceptor.writes_available = lambda: self._writes_ok
            self.api_interceptor.on_write_outcome = self._on_api_write
            self._server = server = grpc.aio.server(
                options=[
                    ("grpc.so_reuseport", 0),
                    *SERVER_OPTIONS,
                    *keepalive_options(config.timings.api_min_ping_interval.total_seconds()),
                ],
                interceptors=[tracing.ServerTracing(), ApiMetricsInterceptor(metrics), self.api_interceptor],
            )
            self.context = ctx = HubContext(config, self.clock, db, keys, engine, server, metrics=metrics)
            for install in self._installers:
                await install(ctx)
            await engine.start()

            self._health = health = StoppingHealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(health, server)
            names = [*ctx.service_names, HEALTH_SERVICE, reflection.SERVICE_NAME]
            reflection.enable_server_reflection(names, server)
            check_tls(config)  # names the bad certificate, before a port is bound (issue 24)
            self._files = fingerprints(config)
            try:
                self._credentials = credentials = ReloadableServerCredentials(config.api_tls)
            except OSError:
                raise StartupError("api_tls: the server certificate, key or CA cannot be read") from None
            creds = credentials.credentials
            self._port = bind(config.listen, "listen", lambda: server.add_secure_port(config.listen, creds))
            await server.start()
            if config.admin_listen:
                await self._start_admin(config.admin_listen)
            if config.health_listen:
                # Plaintext health only (load balancers); the API stays mTLS-only.
                self._health_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
                health_pb2_grpc.add_HealthServicer_to_server(health, self._health_server)
                health_server = self._health_server
                self._health_port = bind(
                    config.health_listen, "health_listen", lambda: health_server.add_insecure_port(config.health_listen)
                )
                await self._health_server.start()
            if config.metrics_listen:
                self._metrics_endpoint = bind_metrics(metrics, config.metrics_listen)
            await self._publish_health()
            self._tasks.append(asyncio.create_task(self._sweep_forever(), name="retention-sweeper"))
            for run in ctx.background:
                self._tasks.append(asyncio.create_task(_run(run)))
        except BaseException:
            await self.stop(grace=0)
            raise
        log.info("hub_serving", port=self._port, health_port=self._health_port, banks=len(config.banks))

    async def stop(self, grace: float = 5.0) -> None:
        """Stops within `grace` seconds in total (issue 19): health says
        NOT_SERVING at once (health Watch streams end after saying so); the
        API server stops accepting calls and the engine stops starting bank
        attempts; calls in progress and bank streams then drain *together*
        until one deadline `grace` seconds from now, when the rest are
        cancelled; the engine releases its leases; the database closes. An
        idle hub stops at once."""
        clock = asyncio.get_running_loop()
        started = clock.time()
        grace = max(0.0, grace)
        deadline = started + grace
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
            self._export_serving(False)
        # The metrics endpoint's HTTP server sees its shutdown at its next
        # poll (50 ms); that runs in a thread while everything else drains.
        endpoint, self._metrics_endpoint = self._metrics_endpoint, None
        closing = asyncio.ensure_future(asyncio.to_thread(endpoint.close)) if endpoint is not None else None
        remaining = max(0.0, deadline - clock.time())  # one budget for every stage
        drains: list[Awaitable[None]] = []
        if self._server is not None:
            drains.append(self._server.stop(remaining))
        if self._engine is not None:
            drains.append(self._engine.stop(grace=remaining))
        await asyncio.gather(*drains)
        if self._health_server is not None:
            await self._health_server.stop(0)
        if self._admin_server is not None:
            await self._admin_server.stop(0)
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._db is not None:
            await self._db.close()
        if closing is not None:
            await closing
        tracing.shutdown()
        self._server = self._health_server = self._health = self._admin_server = None
        self._engine = self._fanout = None
        self._db = None
        log.info("hub_stopped", grace_s=grace, stop_s=round(clock.time() - started, 3))

    def _export_serving(self, serving: bool) -> None:
        for name in self._health_statuses(serving, serving):
            self.metrics.serving.labels(name).set(1 if serving else 0)

    def _health_statuses(self, reads: bool, writes: bool) -> dict[str, bool]:
        """Health service name -> SERVING?: "" and the API's service names
        say whether the replica answers (reads), WRITES_HEALTH_SERVICE
        whether it can also store (writes)."""
        names = self.context.service_names if self.context else []
        return {"": reads, **dict.fromkeys(names, reads), WRITES_HEALTH_SERVICE: reads and writes}

    async def _publish_health(self) -> None:
        if self._health is None or self.context is None:
            return
        reads = not self.draining
        for name, ok in self._health_statuses(reads, self._writes_ok).items():
            status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
            await self._health.set(name, status)
            self.metrics.serving.labels(name).set(1 if ok else 0)

    async def set_serving(self, serving: bool) -> None:
        """Turns every health status of this hub (the API's port and the
        plaintext health port): NOT_SERVING sends load balancers and
        round_robin clients to the other replicas."""
        if serving and self.draining:
            return  # a drained hub stays NOT_SERVING (docs/operations.md)
        self.draining = not serving
        await self._publish_health()

    @property
    def writes_ok(self) -> bool:
        """False while the store refuses writes (the hub answers reads only)."""
        return self._writes_ok

    def _on_store_health(self, healthy: bool) -> None:
        if healthy:
            self._api_writes_ok = True  # the engine's writes succeed again: so will the API's
        self._refresh_writes()

    def _on_api_write(self, ok: bool) -> None:
        if not ok and self._engine is not None:
            # The engine's store probe then brings the writes back even on an
            # idle replica (issue 21): its success clears this flag too.
            self._engine.store_write_failed("api_write")
        if ok != self._api_writes_ok:
            self._api_writes_ok = ok
            self._refresh_writes()

    def _refresh_writes(self) -> None:
        # Store writes failing (seen by the engine or by an API write): this
        # replica keeps answering reads, refuses writes fast, and says so on
        # WRITES_HEALTH_SERVICE until writes succeed again.
        healthy = self._api_writes_ok and (self._engine is None or self._engine.store_healthy)
        if healthy == self._writes_ok:
            return
        self._writes_ok = healthy
        self.metrics.store_writes_healthy.set(1 if healthy else 0)
        if not healthy:
            log.warning("hub_degraded", serving="reads only")
        else:
            log.info("hub_writes_restored")
        task = asyncio.get_running_loop().create_task(self._publish_health())
        self._tasks.append(task)

    async def _start_admin(self, address: str) -> None:
        self._admin_server = admin = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 0),
                *keepalive_options(self.config.timings.api_min_ping_interval.total_seconds()),
            ]
        )
        install_admin(admin, self)
        # Credentials of its own: gRPC hands a dynamic credential's initial
        # configuration to the first port only.
        self._admin_credentials = ReloadableServerCredentials(self.config.api_tls)
        creds = self._admin_credentials.credentials
        self._admin_port = bind(address, "admin_listen", lambda: admin.add_secure_port(address, creds))
        await admin.start()

    async def drain(self) -> tuple[int, int]:
        """Health answers NOT_SERVING from now on (load balancers move new
        calls elsewhere); calls and bank work in progress continue. Returns
        (API calls in progress, bank calls in flight)."""
        self.draining = True
        await self._publish_health()
        log.info("hub_draining")
        bank_calls = sum(self.metrics.health.in_flight(b.code) for b in self.config.banks)
        return self.metrics.api_in_progress, bank_calls

    def bank_health(self) -> list[BankHealthRow]:
        """Every configured bank's recent calls (admin GetBankHealth)."""
        states = self._fanout.breaker_states() if self._fanout is not None else {}
        return [self.metrics.health.row(b.code, states.get(b.code, "closed")) for b in self.config.banks]

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.engine.sweep_expired()
                await self.metrics.refresh_store_gauges(QueryStore(self.db), to_micros(self.clock.now()))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.error("sweep_failed", exc_info=True)
            await asyncio.sleep(self.config.timings.sweep_interval.total_seconds())  # a reload may change it


def _why(error: Exception) -> str:
    """One line about a database error: its class and first line (SQLite's
    and PostgreSQL's messages name the problem, never stored data)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__


async def _run(fn: Callable[[], Awaitable[None]]) -> None:
    await fn()
