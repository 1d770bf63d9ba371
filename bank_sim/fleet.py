"""A fleet of simulated banks in one process: one grpc.aio server per bank,
each on its own port with its own mTLS certificate, plus the admin server.

    config = FleetConfig.default(pki, Population(), count=16)
    async with BankFleet(config) as fleet:
        fleet.addresses            # {"102": "127.0.0.1:40123", ...}
        fleet.set_faults("102", Faults(down=True))

A grpc.aio server is cheap (1,000 of them start in well under a second on a
2-core machine, see docs/bank-simulator.md), so each bank gets a real server
of its own rather than a shared port: a bank's certificate is then bound to
its port exactly as it would be at a real bank.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from bank_sim.admin import BankSimAdminServicer
from bank_sim.cases import CardCases, CardCaseServicer
from bank_sim.directory import CardDirectory
from bank_sim.faults import Faults
from bank_sim.servicer import CardDirectoryServicer
from bank_sim.session import CardSessionServicer
from bank_sim.state import BankState
from cardlookup.bank.v1 import card_directory_pb2_grpc as bank_grpc
from cardlookup.bank.v1 import card_session_pb2_grpc as session_grpc
from cardlookup.banks import bank_fleet
from cardlookup.banksim.v1 import bank_sim_admin_pb2_grpc as admin_grpc
from cardlookup.clock import Clock, SystemClock
from cardlookup.metrics_http import BankSimMetrics, MetricsEndpoint
from cardlookup.pki import CONSENT_KEY_ID, PkiPaths, bank_server_name, load_ed25519_public
from cardlookup.population import Card, CardKind, Population
from cardlookup.tls import server_credentials

log = logging.getLogger(__name__)

# No SO_REUSEPORT: a second fleet on the same fixed ports must fail to bind
# instead of silently sharing them.
_SERVER_OPTIONS = [
    ("grpc.so_reuseport", 0),
    # The hub pings every 60 s on a connection with a call open, and a session
    # stream stays open while idle: allow pings without data every 30 s, never
    # strike (gRPC core's default refuses them under 5 minutes and closes the
    # connection after two; docs/bank-integration.md, "Performance expectations").
    ("grpc.http2.min_ping_interval_without_data_ms", 30_000),
    ("grpc.http2.max_ping_strikes", 0),
]
CARD_DIRECTORY_SERVICE = "cardlookup.bank.v1.CardDirectoryService"
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


async def add_health_and_reflection(server: grpc.aio.Server) -> health_aio.HealthServicer:
    """grpc.health.v1 (SERVING for "" and the card directory) and server
    reflection, as a real bank's server offers them (docs/bank-integration.md,
    "Health and reflection"). Both sit behind the same mTLS as ListCards; the
    caller check guards ListCards only, so an operator's probe with any
    certificate from the CA can ask whether the bank is up."""
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for service in ("", CARD_DIRECTORY_SERVICE):
        await health.set(service, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((CARD_DIRECTORY_SERVICE, HEALTH_SERVICE, reflection.SERVICE_NAME), server)
    return health


@dataclass(frozen=True)
class BankSimConfig:
    code: str
    port: int = 0
    """0 = any free port."""
    faults: Faults = field(default_factory=Faults)
    card_cases: bool = True
    """Offer the optional CardCaseService ("not my card"); False: the bank
    answers UNIMPLEMENTED, like a bank that has not built it."""
    session: bool = True
    """Offer the optional CardSessionService (the session stream); False: the
    bank answers UNIMPLEMENTED, like a bank that has not built it."""


@dataclass(frozen=True)
class FleetConfig:
    pki: PkiPaths
    """Bank i serves pki.bank_cert(code)/bank_key(code) and trusts pki.ca_cert."""
    banks: tuple[BankSimConfig, ...]
    population: Population
    """The banks' records. It must know the fleet's banks (Population(banks=
    bank_fleet(n))) or a bank it does not know holds no cards."""
    clock: Clock = field(default_factory=SystemClock)
    """Consent expiry and outage windows read this."""
    host: str = "127.0.0.1"
    admin_port: int | None = 0
    """None = no admin server."""
    trusted_consent_keys: dict[str, Ed25519PublicKey] | None = None
    """None = {CONSENT_KEY_ID: the pki's consent public key}."""
    seed: int | None = None
    """Seeds the random choices of faults (error_rate, latency_jitter)."""
    metrics_port: int | None = None
    """Port of the Prometheus endpoint on `host` (0 = a free port); None = none."""

    @classmethod
    def default(cls, pki: PkiPaths, population: Population, count: int = 16, **kw: Any) -> FleetConfig:
        """The first `count` banks of cardlookup.banks.bank_fleet, healthy."""
        return cls(pki=pki, banks=tuple(BankSimConfig(b.code) for b in bank_fleet(count)), population=population, **kw)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class BankFleet:
    def __init__(self, config: FleetConfig) -> None:
        codes = [b.code for b in config.banks]
        if not codes:
            raise ValueError("a fleet needs at least one bank")
        if len(set(codes)) != len(codes):
            raise ValueError("bank codes in a fleet must be unique")
        self._config = config
        self._states = {b.code: BankState(b.code, b.faults) for b in config.banks}
        self._rng = random.Random(config.seed)
        self._servers: list[grpc.aio.Server] = []
        self._ports: dict[str, int] = {}
        self._admin_port: int | None = None
        self.metrics = BankSimMetrics()
        """Calls per bank, method and status code (cardlookup.metrics_http); served at metrics_port."""
        self._metrics_endpoint: MetricsEndpoint | None = None

    async def start(self) -> None:
        if self._servers:
            raise RuntimeError("the fleet is already running")
        config = self._config
        keys = config.trusted_consent_keys
        if keys is None:
            keys = {CONSENT_KEY_ID: load_ed25519_public(config.pki.consent_public_key)}
        ca = config.pki.ca_cert
        try:
            for bank in config.banks:
                issued = self._states[bank.code].issued
                directory = CardDirectory(bank.code, config.population, keys, issued=issued)
                servicer = CardDirectoryServicer(directory, self._states[bank.code], config.clock, self._rng)
                server = grpc.aio.server(options=_SERVER_OPTIONS, interceptors=[self.metrics.interceptor(bank.code)])
                bank_grpc.add_CardDirectoryServiceServicer_to_server(servicer, server)
                if bank.session:
                    session_grpc.add_CardSessionServiceServicer_to_server(
                        CardSessionServicer(servicer, self._states[bank.code]), server
                    )
                await add_health_and_reflection(server)
                if bank.card_cases:
                    cases = CardCases(bank.code, config.population, keys, issued)
                    bank_grpc.add_CardCaseServiceServicer_to_server(
                        CardCaseServicer(cases, self._states[bank.code], config.clock), server
                    )
                creds = server_credentials(config.pki.bank_cert(bank.code), config.pki.bank_key(bank.code), ca)
                self._ports[bank.code] = self._bind(server, bank.port, creds, f"bank {bank.code}")
                self._servers.append(server)
                await server.start()
            if config.admin_port is not None:
                # The admin server presents the first bank's certificate, so
                # clients dial it with admin_server_name as the TLS name.
                first = config.banks[0].code
                admin = grpc.aio.server(options=_SERVER_OPTIONS)
                admin_grpc.add_BankSimAdminServiceServicer_to_server(
                    BankSimAdminServicer(self._states, self.address), admin
                )
                creds = server_credentials(config.pki.bank_cert(first), config.pki.bank_key(first), ca)
                self._admin_port = self._bind(admin, config.admin_port, creds, "the admin server")
                self._servers.append(admin)
                await admin.start()
            if config.metrics_port is not None:
                self._metrics_endpoint = MetricsEndpoint(
                    self.metrics.registry, join_host_port(config.host, config.metrics_port)
                )
        except BaseException:
            await self.stop(grace=0)
            raise
        log.info("bank fleet serving %d banks", len(self._ports))

    def _bind(self, server: grpc.aio.Server, port: int, creds: grpc.ServerCredentials, what: str) -> int:
        address = join_host_port(self._config.host, port)
        try:
            bound = server.add_secure_port(address, creds)
        except RuntimeError as error:
            raise OSError(f"{what} cannot listen on {address}: {error}") from None
        if bound == 0:  # older grpc versions report a failed bind this way
            raise OSError(f"{what} cannot listen on {address}")
        return bound

    async def stop(self, grace: float = 1.0) -> None:
        """Stops every server; calls still running get `grace` seconds."""
        servers, self._servers = self._servers, []
        await asyncio.gather(*(s.stop(grace) for s in servers))
        self._ports.clear()
        self._admin_port = None
        if self._metrics_endpoint is not None:
            self._metrics_endpoint.close()
            self._metrics_endpoint = None

    @property
    def metrics_port(self) -> int | None:
        """The bound metrics port while serving, None without an endpoint."""
        return self._metrics_endpoint.port if self._metrics_endpoint is not None else None

    async def __aenter__(self) -> BankFleet:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def address(self, code: str) -> str:
        """host:port of a running bank. KeyError for a code not serving."""
        if code not in self._ports:
            raise KeyError(f"bank {code} is not serving")
        return join_host_port(self._config.host, self._ports[code])

    @property
    def addresses(self) -> dict[str, str]:
        """code -> address, in configuration order."""
        return {b.code: self.address(b.code) for b in self._config.banks if b.code in self._ports}

    @property
    def admin_address(self) -> str | None:
        return None if self._admin_port is None else join_host_port(self._config.host, self._admin_port)

    @property
    def admin_server_name(self) -> str:
        """The TLS name to dial the admin server with (its certificate is the
        first bank's)."""
        return bank_server_name(self._config.banks[0].code)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(b.code for b in self._config.banks)

    def set_faults(self, code: str, faults: Faults) -> None:
        """Takes effect for the bank's next call."""
        if not isinstance(faults, Faults):
            raise TypeError("faults must be a Faults")
        self._state(code).faults = faults

    def faults(self, code: str) -> Faults:
        return self._state(code).faults

    def issue_card(self, code: str, id_number: str, kind: CardKind) -> Card:
        """Issues a new listed card to a person at bank `code` (issue 12:
        "new cards since the last lookup"); new queries list it."""
        return self._state(code).issued.issue(code, id_number, kind)

    def case_count(self, code: str) -> int:
        """Card cases the bank answered (OpenCardCase successes)."""
        return self._state(code).case_count

    def call_count(self, code: str) -> int:
        """ListCards calls received, refused ones included."""
        return self._state(code).call_count

    def session_streams(self, code: str) -> int:
        """Session streams that carried exchanges to the bank (the hub's
        discovery stream, half-closed at once, carries none)."""
        return self._state(code).session_streams

    def overlaps(self, code: str) -> int:
        """ListCards calls that arrived while another call for the same query
        id was in flight at this bank (no hub, however many replicas, should
        ever cause one)."""
        return self._state(code).overlaps

    def peak_in_flight(self, code: str) -> int:
        """The most ListCards calls this bank ever answered at once."""
        return self._state(code).peak_in_flight

    def max_calls_per_query(self, code: str) -> int:
        """The most calls for one query id ever in flight at once at this bank."""
        return self._state(code).max_per_query

    def _state(self, code: str) -> BankState:
        try:
            return self._states[code]
        except KeyError:
            raise KeyError(f"no bank {code} in this fleet") from None
