"""Every setting of the hub, in one typed place.

A hub reads one TOML file (`cardlookup-hub --config hub.toml`), then a few
environment overrides (CARDLOOKUP_HUB_LISTEN, CARDLOOKUP_HUB_DATABASE,
CARDLOOKUP_HUB_HEALTH_LISTEN). Regions and banks are configuration, not code
(R2): the file lists the banks (at least one; names default to the
registry's) and the open regions (default: the pilot's, see docs/rules.md
R2). `HubConfig.dev()` builds the configuration the demo and tests use from
a development PKI directory.

The file is documented by example: docs/examples/hub.toml (every key, with
comments; paths are relative to the file), shown in docs/hub-engine.md and
loaded by tests/hub/test_config_file.py. Unknown keys are refused, not
ignored: a misspelt key would otherwise silently leave a default in force.
`cardlookup-hub` prints a ConfigError as one line and exits with status 2.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from cardlookup.banks import bank_by_code
from cardlookup.hub_toml import read_toml
from cardlookup.pki import (
    APP_BACKEND_NAME,
    CONSENT_KEY_ID,
    FACE_KEY_ID,
    KEK_ID,
    OPERATOR_NAME,
    PkiPaths,
    bank_server_name,
)
from cardlookup.regions import DEFAULT_OPEN_REGIONS, parse_open_regions
from hub.store.db import ConnectionSettings, is_postgres_url

DEFAULT_CONSENT_TEXT_VERSION = "2022-03-01"
DEFAULT_CONSENT_TEXT = (
    "您将授权本平台通过银联向您选择的银行查询您本人名下的银行卡信息（银行名称、卡种、卡号前四位和后四位）。"
    "查询结果仅供您本人查看，保存7个自然日后自动删除，不会影响您的个人征信。"
)


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    """CA certificate(s) the peer's certificate must chain to."""
    cert: Path
    key: Path


@dataclass(frozen=True)
class BankEndpoint:
    code: str
    display_name: str
    english_name: str
    address: str
    """host:port the hub dials."""
    server_name: str = ""
    """The DNS name the bank's certificate must carry; default
    `<code>.bank.cardlookup.internal`. Binds the bank's identity (a
    certificate issued to another bank is refused at the handshake)."""
    max_concurrent: int = 32
    """Calls in flight to this bank at most, for all replicas together: one
    replica, the owner of the bank's lane, makes every call to it (issue 16)."""
    addresses: tuple[str, ...] = ()
    """Every host:port of a bank with more than one endpoint (two data
    centres, a load balancer per site); `address` is then the first. Empty:
    `address` alone. The hub dials them as one gRPC channel whose balancing
    policy fails over between them (docs/configuration.md, "Banks with
    several addresses")."""
    balancing: str = "round_robin"
    """With several addresses: "round_robin" (calls spread over the
    endpoints the bank's grpc.health.v1 reports SERVING; one that is down or
    draining is left out) or "pick_first" (the first endpoint that connects
    takes every call, the next one only when it fails; health is not asked)."""
    session: str = "off"
    """Whether calls go over the bank's session stream
    (CardSessionService.ListCardsSession, card_session.proto): "off" (one
    ListCards call per query), "auto" (the session when the bank offers it,
    per-call ListCards when it answers UNIMPLEMENTED, tried again every 10
    minutes) or "on" (the session; UNIMPLEMENTED is a transient failure).
    Both "auto" and "on" call per call for a minute after the bank broke the
    session's protocol."""

    def tls_name(self) -> str:
        return self.server_name or bank_server_name(self.code)

    def all_addresses(self) -> tuple[str, ...]:
        return self.addresses or (self.address,)


@dataclass(frozen=True)
class Timings:
    report_window: dt.timedelta = dt.timedelta(hours=24)
    """R6: banks are retried within this window, then marked not answered."""
    report_retention: dt.timedelta = dt.timedelta(days=7)
    """R11: a report is deleted this long after it is generated."""
    cooldown: dt.timedelta = dt.timedelta(days=7)
    """R12: a new query is allowed this long after the latest report."""
    attempt_timeout: dt.timedelta = dt.timedelta(seconds=20)
    """Deadline of one ListCards call, the whole stream included."""
    retry_initial: dt.timedelta = dt.timedelta(seconds=1)
    retry_max: dt.timedelta = dt.timedelta(minutes=10)
    retry_multiplier: float = 2.0
    breaker_failures: int = 5
    """Consecutive transient failures that open a bank's circuit breaker."""
    breaker_reset: dt.timedelta = dt.timedelta(seconds=30)
    """How long an open breaker waits before letting one probe call through."""
    sms_code_ttl: dt.timedelta = dt.timedelta(minutes=5)
    sms_resend_interval: dt.timedelta = dt.timedelta(seconds=60)
    sms_max_attempts: int = 5
    face_attestation_max_age: dt.timedelta = dt.timedelta(minutes=10)
    password_max_failures: int = 5
    password_lockout: dt.timedelta = dt.timedelta(hours=24)
    sweep_interval: dt.timedelta = dt.timedelta(seconds=60)
    """How often the retention sweeper runs (R11)."""
    lease_duration: dt.timedelta = dt.timedelta(seconds=30)
    """How long a replica's bank lane (its ownership of a bank, issue 16)
    lasts unless renewed (every third of it); after it another replica takes
    the lane over. The time a dead replica's banks wait to be resumed (plus
    at most a third of it, the next lane round). A replica whose renewal
    failed stops calling after two thirds of it. Keep it above
    attempt_timeout: a call then ends before a lease renewed when it started
    can run out, so even a replica starved of CPU (renewals late) never has
    a call in flight while another replica calls the same bank."""
    notice_claim: dt.timedelta = dt.timedelta(minutes=5)
    """How long a replica's claim on sending a READY query's SMS (R9) lasts
    (at least lease_duration). Longer than any send can take, or another
    replica sends it again; the time the SMS waits if the replica that
    claimed it dies before sending."""
    sms_daily_cap_per_phone: int = 10
    """Verification SMS sent to one phone number in any 24 hours, at most
    (across every app account and person using that number)."""
    watch_streams_per_caller: int = 1000
    """WatchQuery streams one caller (client certificate name) may keep open
    at once, per hub process."""
    # Issue 22: how long what the hub keeps past R11 lives (the sweeper
    # deletes it after that, on every store; docs/security.md, data inventory).
    lookup_history_retention: dt.timedelta = dt.timedelta(days=180)
    """An expired query's record (its history: banks, outcomes, access
    events and cases with it), counted from its creation."""
    access_event_retention: dt.timedelta = dt.timedelta(days=180)
    """A report access event (R10), counted from the attempt."""
    card_case_retention: dt.timedelta = dt.timedelta(days=180)
    """A "not my card" case record, counted from its opening."""
    card_record_retention: dt.timedelta = dt.timedelta(days=180)
    """A sealed new-card record (issue 12), counted from its lookup's report."""
    abuse_counter_retention: dt.timedelta = dt.timedelta(days=2)
    """An SMS verification kept as a rate-limit counter (keyed person and
    phone hashes and a time); at least a day (the daily cap's window)."""
    closure_record_retention: dt.timedelta = dt.timedelta(days=7)
    """The keyed record of a closed account (it keeps R12's cooldown for a
    person who enrols again); at least the cooldown."""
    sms_outbox_retention: dt.timedelta = dt.timedelta(days=7)
    """Messages in the development SMS outbox file (it holds phone numbers)."""

    def problems(self) -> list[tuple[str, str]]:
        """The relations docs/configuration.md states between timings that
        these break, as (key, problem); the file reader refuses the first
        one as a one-line ConfigError (and the presets are tested with it)."""
        found: list[tuple[str, str]] = []
        if self.retry_initial > self.retry_max:
            found.append(("timings.retry_initial", "must not exceed timings.retry_max"))
        if self.lease_duration < self.attempt_timeout:
            found.append(
                (
                    "timings.lease_duration",
                    f"must be at least timings.attempt_timeout ({self.attempt_timeout.total_seconds():g} s): "
                    "a call could outlive the lease and another replica call the same bank",
                )
            )
        if self.notice_claim < self.lease_duration:
            found.append(
                (
                    "timings.notice_claim",
                    f"must be at least timings.lease_duration ({self.lease_duration.total_seconds():g} s)",
                )
            )
        if self.abuse_counter_retention < dt.timedelta(days=1):
            found.append(("timings.abuse_counter_retention", "must be at least 86400 (the SMS daily cap's day)"))
        if self.closure_record_retention < self.cooldown:
            found.append(("timings.closure_record_retention", "must be at least timings.cooldown"))
        return found

    store_probe_interval: dt.timedelta = dt.timedelta(seconds=2)
    """After a failed store write, how often the replica probes the database
    with one cheap write until it answers (then SERVING again, busy or idle;
    hub.store.health, issue 21)."""
    database_command_timeout: dt.timedelta = dt.timedelta(seconds=10)
    """PostgreSQL: longest one statement or connection attempt may take; then
    the connection is dropped and the write retried (a silent peer)."""
    database_keepalive_idle: dt.timedelta = dt.timedelta(seconds=10)
    """PostgreSQL: silence before the first TCP keepalive probe."""
    database_keepalive_interval: dt.timedelta = dt.timedelta(seconds=5)
    """PostgreSQL: time between unanswered TCP keepalive probes."""
    database_keepalive_count: int = 3
    """PostgreSQL: unanswered keepalive probes that drop a connection."""
    database_listen_check: dt.timedelta = dt.timedelta(seconds=5)
    """PostgreSQL: how often the listening connection makes a round trip
    (a vanished primary is noticed although nothing is notified)."""
    api_min_ping_interval: dt.timedelta = dt.timedelta(seconds=10)
    """Shortest interval between a client's HTTP/2 keepalive pings the API and
    admin ports accept on a connection sending no data (the documented
    client pings every 30 s; gRPC's default, 300 s, closed idle WatchQuery
    streams with GOAWAY too_many_pings)."""

    def connection_settings(self) -> ConnectionSettings:
        """The store's dead-peer settings (hub.store.db)."""
        return ConnectionSettings(
            keepalive_idle=self.database_keepalive_idle.total_seconds(),
            keepalive_interval=self.database_keepalive_interval.total_seconds(),
            keepalive_count=self.database_keepalive_count,
            command_timeout=self.database_command_timeout.total_seconds(),
            listen_check_interval=self.database_listen_check.total_seconds(),
        )


@dataclass(frozen=True)
class HsmSettings:
    """A PKCS#11 token holding the consent-signing key and/or the key-encryption
    key (hub.hsm); the keys never leave it. Files stay the development default."""

    module: Path
    """The PKCS#11 library (e.g. /usr/lib/softhsm/libsofthsm2.so)."""
    token_label: str
    pin: str
    """The user PIN; set it through CARDLOOKUP_HUB_HSM_PIN rather than the file."""
    consent_signing_key_label: str = ""
    """Label of an Ed25519 (CKK_EC_EDWARDS) private key; empty = keys.consent_signing_key (file)."""
    key_encryption_key_label: str = ""
    """Label of an AES-256 secret key; empty = keys.key_encryption_key (file)."""
    password_pepper_key_label: str = ""
    """Issue 17: label of a generic secret key (CKM_SHA256_HMAC) that peppers
    the payment-password hash; empty = a key derived from keys.index_key."""


@dataclass(frozen=True)
class TracingSettings:
    """OpenTelemetry tracing (hub.tracing): off by default."""

    enabled: bool = False
    otlp_endpoint: str = "http://127.0.0.1:4317"
    """The OTLP/gRPC collector: `http://` plaintext, `https://` TLS (the
    exporter's OTEL_EXPORTER_OTLP_* variables set certificates, headers)."""
    service_name: str = "cardlookup-hub"
    """The `service.name` resource attribute of every span."""
    sample_ratio: float = 1.0
    """Share of new traces kept (0..1); a call whose caller sampled it is kept."""


@dataclass(frozen=True)
class HubConfig:
    database: Path | str
    """A path: the embedded SQLite store (one hub process). A
    `postgresql://` URL: PostgreSQL, which several hub replicas share."""
    api_tls: TlsFiles
    bank_tls: TlsFiles
    consent_signing_key: Path
    key_encryption_key: Path
    index_key: Path
    banks: tuple[BankEndpoint, ...]
    listen: str = "127.0.0.1:50051"
    health_listen: str = ""
    """Optional plaintext address for gRPC health checks (load balancers);
    empty = health is only served on the mTLS port."""
    open_regions: frozenset[str] = DEFAULT_OPEN_REGIONS
    allowed_clients: frozenset[str] = frozenset({APP_BACKEND_NAME})
    """Client certificate names allowed on the API (R17)."""
    consent_key_id: str = CONSENT_KEY_ID
    face_provider_keys: dict[str, Path] = field(default_factory=dict)
    consent_text_version: str = DEFAULT_CONSENT_TEXT_VERSION
    consent_text: str = DEFAULT_CONSENT_TEXT
    sms_outbox: Path | None = None
    """Where the default SMS sender appends messages (JSON lines)."""
    timings: Timings = field(default_factory=Timings)
    metrics_listen: str = ""
    """host:port of the Prometheus endpoint (plaintext HTTP, /metrics);
    empty = no metrics endpoint (hub.metrics)."""
    admin_listen: str = ""
    """host:port of the operator admin service (mTLS, same server
    certificate as the API); empty = no admin service (hub.admin)."""
    admin_clients: frozenset[str] = frozenset({OPERATOR_NAME})
    """Client certificate DNS names allowed on the admin service."""
    key_encryption_key_id: str = KEK_ID
    """The id recorded in everything sealed from now on (hub.crypto)."""
    previous_key_encryption_keys: dict[str, Path] = field(default_factory=dict)
    """Retired KEKs by id: still open what they sealed, never seal."""
    hsm: HsmSettings | None = None
    tracing: TracingSettings = field(default_factory=TracingSettings)
    """[tracing]: OpenTelemetry spans over OTLP (docs/configuration.md)."""

    @cached_property
    def _banks_by_code(self) -> dict[str, BankEndpoint]:
        # bank() runs per bank per query event (watch conversions, validation,
        # fan-out lanes): a linear scan made a 1,000-bank query O(n^3).
        return {b.code: b for b in reversed(self.banks)}  # reversed: the first entry of a code wins

    def bank(self, code: str) -> BankEndpoint | None:
        return self._banks_by_code.get(code)

    def sms_outbox_path(self) -> Path:
        """`sms_outbox`, else beside the SQLite file (var/ for PostgreSQL)."""
        if self.sms_outbox is not None:
            return self.sms_outbox
        base = Path("var") if isinstance(self.database, str) else self.database.parent
        return base / "sms-outbox.jsonl"

    @classmethod
    def dev(cls, pki: PkiPaths, bank_addresses: dict[str, str], data_dir: Path, **overrides: Any) -> HubConfig:
        """The configuration of a local run over a development PKI."""
        banks = []
        for code, address in bank_addresses.items():
            info = bank_by_code(code)
            banks.append(
                BankEndpoint(
                    code=code,
                    display_name=info.display_name if info else f"模拟银行{code}",
                    english_name=info.english_name if info else f"Simulated Bank {code}",
                    address=address,
                )
            )
        base = cls(
            database=data_dir / "hub.db",
            api_tls=TlsFiles(pki.ca_cert, pki.cert("hub-server"), pki.key("hub-server")),
            bank_tls=TlsFiles(pki.ca_cert, pki.cert("hub-client"), pki.key("hub-client")),
            consent_signing_key=pki.consent_signing_key,
            key_encryption_key=pki.key_encryption_key,
            index_key=pki.index_key,
            banks=tuple(banks),
            face_provider_keys={FACE_KEY_ID: pki.face_provider_public_key},
            sms_outbox=data_dir / "sms-outbox.jsonl",
        )
        return dataclasses.replace(base, **overrides)

    def to_toml(self) -> str:
        """This configuration as a hub.toml that `from_file` reads back to an
        equal HubConfig (paths absolute). The demo, the benchmark and tests
        write the hub's configuration with it rather than by hand."""
        q = _toml_string
        lines = [
            f"listen = {q(self.listen)}",
            f"health_listen = {q(self.health_listen)}",
            f"database = {q(str(self.database))}",
            f"open_regions = [{', '.join(q(r) for r in sorted(self.open_regions))}]",
            f"allowed_clients = [{', '.join(q(c) for c in sorted(self.allowed_clients))}]",
            f"consent_text_version = {q(self.consent_text_version)}",
            f"consent_text = {q(self.consent_text)}",
        ]
        if self.sms_outbox is not None:
            lines.append(f"sms_outbox = {q(str(self.sms_outbox))}")
        lines += [
            f"metrics_listen = {q(self.metrics_listen)}",
            f"admin_listen = {q(self.admin_listen)}",
            f"admin_clients = [{', '.join(q(c) for c in sorted(self.admin_clients))}]",
        ]
        for section, tls in (("api_tls", self.api_tls), ("bank_tls", self.bank_tls)):
            lines += [
                "",
                f"[{section}]",
                f"ca = {q(str(tls.ca))}",
                f"cert = {q(str(tls.cert))}",
                f"key = {q(str(tls.key))}",
            ]
        faces = ", ".join(f"{q(k)} = {q(str(v))}" for k, v in self.face_provider_keys.items())
        previous = ", ".join(f"{q(k)} = {q(str(v))}" for k, v in self.previous_key_encryption_keys.items())
        hsm = self.hsm
        lines += ["", "[keys]"]
        if not (hsm and hsm.consent_signing_key_label):
            lines.append(f"consent_signing_key = {q(str(self.consent_signing_key))}")
        if not (hsm and hsm.key_encryption_key_label):
            lines.append(f"key_encryption_key = {q(str(self.key_encryption_key))}")
        lines += [
            f"consent_key_id = {q(self.consent_key_id)}",
            f"key_encryption_key_id = {q(self.key_encryption_key_id)}",
            f"previous_key_encryption_keys = {{ {previous} }}",
            f"index_key = {q(str(self.index_key))}",
            f"face_provider_keys = {{ {faces} }}",
        ]
        if hsm is not None:
            lines += [
                "",
                "[hsm]",
                f"module = {q(str(hsm.module))}",
                f"token_label = {q(hsm.token_label)}",
                f"pin = {q(hsm.pin)}",
                f"consent_signing_key_label = {q(hsm.consent_signing_key_label)}",
                f"key_encryption_key_label = {q(hsm.key_encryption_key_label)}",
                f"password_pepper_key_label = {q(hsm.password_pepper_key_label)}",
            ]
        tracing = self.tracing
        lines += [
            "",
            "[tracing]",
            f"enabled = {'true' if tracing.enabled else 'false'}",
            f"otlp_endpoint = {q(tracing.otlp_endpoint)}",
            f"service_name = {q(tracing.service_name)}",
            f"sample_ratio = {tracing.sample_ratio!r}",
        ]
        lines += ["", "[timings]"]
        for f in dataclasses.fields(Timings):
            value = getattr(self.timings, f.name)
            lines.append(f"{f.name} = {value.total_seconds() if isinstance(value, dt.timedelta) else value!r}")
        for b in self.banks:
            lines += [
                "",
                "[[banks]]",
                f"code = {q(b.code)}",
                f"address = {q(b.address)}",
                f"display_name = {q(b.display_name)}",
                f"english_name = {q(b.english_name)}",
                f"max_concurrent = {b.max_concurrent}",
            ]
            if len(b.all_addresses()) > 1:
                lines.append(f"addresses = [{', '.join(q(a) for a in b.all_addresses())}]")
                lines.append(f"balancing = {q(b.balancing)}")
            if b.session != "off":
                lines.append(f"session = {q(b.session)}")
            if b.server_name:
                lines.append(f"server_name = {q(b.server_name)}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_file(cls, path: Path, env: dict[str, str] | None = None) -> HubConfig:
        """Reads a hub.toml (docs/examples/hub.toml). Raises ConfigError, whose
        message names the file and the offending key, for anything it cannot
        use: unknown keys, wrong types, bad values, missing files."""
        env = dict(os.environ if env is None else env)
        return _FileReader(Path(path), env).read(_read_toml(path))


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes, UTF-8 kept).
    return json.dumps(value, ensure_ascii=False)


class ConfigError(ValueError):
    """A hub.toml the hub cannot use; the message is one line naming the file and the key."""


_TOP_KEYS = frozenset(
    {
        "listen",
        "health_listen",
        "database",
        "open_regions",
        "allowed_clients",
        "consent_text_version",
        "consent_text",
        "sms_outbox",
        "api_tls",
        "bank_tls",
        "keys",
        "timings",
        "banks",
        "metrics_listen",
        "admin_listen",
        "admin_clients",
        "hsm",
        "tracing",
    }
)
_TRACING_KEYS = frozenset({"enabled", "otlp_endpoint", "service_name", "sample_ratio"})
_TLS_KEYS = frozenset({"ca", "cert", "key"})
_KEYS_KEYS = frozenset(
    {
        "consent_signing_key",
        "consent_key_id",
        "key_encryption_key",
        "index_key",
        "face_provider_keys",
        "key_encryption_key_id",
        "previous_key_encryption_keys",
    }
)
_HSM_KEYS = frozenset(
    {
        "module",
        "token_label",
        "pin",
        "consent_signing_key_label",
        "key_encryption_key_label",
        "password_pepper_key_label",
    }
)
ENV_OVERRIDES = {
    "CARDLOOKUP_HUB_LISTEN": "listen",
    "CARDLOOKUP_HUB_HEALTH_LISTEN": "health_listen",
    "CARDLOOKUP_HUB_DATABASE": "database",
    "CARDLOOKUP_HUB_METRICS_LISTEN": "metrics_listen",
    "CARDLOOKUP_HUB_ADMIN_LISTEN": "admin_listen",
    "CARDLOOKUP_HUB_HSM_PIN": "hsm.pin",
}
"""Environment variables that override a key of the file (addresses, the
database and secrets, which deployments inject rather than write down)."""
_BANK_KEYS = frozenset(
    {
        "code",
        "address",
        "addresses",
        "balancing",
        "server_name",
        "max_concurrent",
        "display_name",
        "english_name",
        "session",
    }
)
BALANCING_POLICIES = ("round_robin", "pick_first")
SESSION_MODES = ("off", "auto", "on")
_COUNT_TIMINGS = frozenset(
    {
        "breaker_failures",
        "sms_max_attempts",
        "password_max_failures",
        "sms_daily_cap_per_phone",
        "watch_streams_per_caller",
        "database_keepalive_count",
    }
)
_BANK_CODE = re.compile(r"[0-9]{3,6}")
_ADDRESS = re.compile(r"(?P<host>\S+):(?P<port>[0-9]{1,5})")


@dataclass(frozen=True)
class _FileReader:
    """Turns a parsed hub.toml into a HubConfig, checking every key on the way
    (a misspelt key silently falling back to a default is how a production
    hub ends up with a 20 s window or no health port)."""

    path: Path
    env: dict[str, str]

    def read(self, raw: dict[str, Any]) -> HubConfig:
        self._no_unknown(raw, _TOP_KEYS, "")
        keys = self._table(raw, "keys", required=True)
        self._no_unknown(keys, _KEYS_KEYS, "keys.")
        listen = self.env.get("CARDLOOKUP_HUB_LISTEN") or self._str(raw, "listen", "127.0.0.1:50051")
        health_listen = self.env.get("CARDLOOKUP_HUB_HEALTH_LISTEN") or self._str(raw, "health_listen", "")
        self._address(listen, "listen")
        if health_listen:
            self._address(health_listen, "health_listen")
        database = self.env.get("CARDLOOKUP_HUB_DATABASE") or self._str(raw, "database", "var/hub.db")
        faces = self._table(keys, "face_provider_keys", prefix="keys.")
        previous = self._table(keys, "previous_key_encryption_keys", prefix="keys.")
        metrics_listen = self.env.get("CARDLOOKUP_HUB_METRICS_LISTEN") or self._str(raw, "metrics_listen", "")
        admin_listen = self.env.get("CARDLOOKUP_HUB_ADMIN_LISTEN") or self._str(raw, "admin_listen", "")
        for key, value in (("metrics_listen", metrics_listen), ("admin_listen", admin_listen)):
            if value:
                self._address(value, key)
        hsm = self._hsm(raw)
        kek_id = self._str(keys, "key_encryption_key_id", KEK_ID, "keys.", nonempty=True)
        if kek_id in previous:
            raise self._fail("keys.previous_key_encryption_keys", f"{kek_id!r} is the current key's id")
        in_hsm = hsm.consent_signing_key_label if hsm else "", hsm.key_encryption_key_label if hsm else ""
        return HubConfig(
            database=database if is_postgres_url(database) else self._resolve(database),
            listen=listen,
            health_listen=health_listen,
            api_tls=self._tls(raw, "api_tls"),
            bank_tls=self._tls(raw, "bank_tls"),
            consent_signing_key=self._file(keys, "consent_signing_key", "keys.", optional=bool(in_hsm[0])),
            consent_key_id=self._str(keys, "consent_key_id", CONSENT_KEY_ID, "keys.", nonempty=True),
            key_encryption_key=self._file(keys, "key_encryption_key", "keys.", optional=bool(in_hsm[1])),
            index_key=self._file(keys, "index_key", "keys."),
            face_provider_keys={k: self._file(faces, k, "keys.face_provider_keys.") for k in faces},
            banks=self._banks(raw),
            open_regions=self._regions(raw),
            allowed_clients=frozenset(self._str_list(raw, "allowed_clients", [APP_BACKEND_NAME])),
            consent_text_version=self._str(raw, "consent_text_version", DEFAULT_CONSENT_TEXT_VERSION, nonempty=True),
            consent_text=self._str(raw, "consent_text", DEFAULT_CONSENT_TEXT, nonempty=True),
            sms_outbox=self._resolve(self._str(raw, "sms_outbox", "", nonempty=True)) if "sms_outbox" in raw else None,
            timings=self._timings(raw),
            metrics_listen=metrics_listen,
            admin_listen=admin_listen,
            admin_clients=frozenset(self._str_list(raw, "admin_clients", [OPERATOR_NAME])),
            key_encryption_key_id=kek_id,
            previous_key_encryption_keys={
                k: self._file(previous, k, "keys.previous_key_encryption_keys.") for k in previous
            },
            hsm=hsm,
            tracing=self._tracing(raw),
        )

    def _tracing(self, raw: dict[str, Any]) -> TracingSettings:
        table = self._table(raw, "tracing")
        self._no_unknown(table, _TRACING_KEYS, "tracing.")
        enabled = table.get("enabled", False)
        if not isinstance(enabled, bool):
            raise self._fail("tracing.enabled", "must be true or false")
        endpoint = self._str(table, "otlp_endpoint", TracingSettings.otlp_endpoint, "tracing.", nonempty=True)
        if not re.fullmatch(r"https?://\S+:[0-9]{1,5}", endpoint):
            raise self._fail("tracing.otlp_endpoint", f"must be http(s)://host:port, not {endpoint!r}")
        ratio = table.get("sample_ratio", 1.0)
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
            raise self._fail("tracing.sample_ratio", "must be a number from 0 to 1")
        return TracingSettings(
            enabled=enabled,
            otlp_endpoint=endpoint,
            service_name=self._str(table, "service_name", TracingSettings.service_name, "tracing.", nonempty=True),
            sample_ratio=float(ratio),
        )

    def _hsm(self, raw: dict[str, Any]) -> HsmSettings | None:
        if "hsm" not in raw:
            return None
        table = self._table(raw, "hsm")
        self._no_unknown(table, _HSM_KEYS, "hsm.")
        pin = self.env.get("CARDLOOKUP_HUB_HSM_PIN") or self._str(table, "pin", "", "hsm.")
        if not pin:
            raise self._fail("hsm.pin", "missing (set it in the file or CARDLOOKUP_HUB_HSM_PIN)")
        settings = HsmSettings(
            module=self._file(table, "module", "hsm."),
            token_label=self._str(table, "token_label", "", "hsm.", nonempty=True),
            pin=pin,
            consent_signing_key_label=self._str(table, "consent_signing_key_label", "", "hsm."),
            key_encryption_key_label=self._str(table, "key_encryption_key_label", "", "hsm."),
            password_pepper_key_label=self._str(table, "password_pepper_key_label", "", "hsm."),
        )
        if not (
            settings.consent_signing_key_label
            or settings.key_encryption_key_label
            or settings.password_pepper_key_label
        ):
            raise self._fail(
                "hsm", "names no key (consent_signing_key_label, key_encryption_key_label, password_pepper_key_label)"
            )
        return settings

    def _fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {problem}")

    def _no_unknown(self, table: dict[str, Any], known: frozenset[str], prefix: str) -> None:
        for name in table:
            if name not in known:
                raise self._fail(prefix + name, "unknown key (allowed: " + ", ".join(sorted(known)) + ")")

    def _table(self, raw: dict[str, Any], name: str, prefix: str = "", required: bool = False) -> dict[str, Any]:
        if name not in raw:
            if required:
                raise self._fail(prefix + name, "missing (a table is required)")
            return {}
        value = raw[name]
        if not isinstance(value, dict):
            raise self._fail(prefix + name, "must be a table")
        return value

    def _str(self, raw: dict[str, Any], name: str, default: str, prefix: str = "", nonempty: bool = False) -> str:
        value = raw.get(name, default)
        if not isinstance(value, str):
            raise self._fail(prefix + name, f"must be a string, not {type(value).__name__}")
        if nonempty and not value.strip():
            raise self._fail(prefix + name, "must not be empty")
        return value

    def _str_list(self, raw: dict[str, Any], name: str, default: list[str]) -> list[str]:
        value = raw.get(name, default)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self._fail(name, "must be a list of non-empty strings")
        return value

    def _resolve(self, value: str) -> Path:
        return (self.path.resolve().parent / value).resolve()

    def _file(self, raw: dict[str, Any], name: str, prefix: str, optional: bool = False) -> Path:
        if name not in raw:
            if optional:
                return Path()  # the key lives in the HSM
            raise self._fail(prefix + name, "missing")
        path = self._resolve(self._str(raw, name, "", prefix, nonempty=True))
        if not path.is_file():
            raise self._fail(prefix + name, f"no such file: {path}")
        return path

    def _address(self, value: str, key: str) -> None:
        match = _ADDRESS.fullmatch(value)
        if match is None or int(match["port"]) > 65535:
            raise self._fail(key, f"must be host:port, not {value!r}")

    def _tls(self, raw: dict[str, Any], section: str) -> TlsFiles:
        table = self._table(raw, section, required=True)
        self._no_unknown(table, _TLS_KEYS, section + ".")
        prefix = section + "."
        return TlsFiles(
            self._file(table, "ca", prefix), self._file(table, "cert", prefix), self._file(table, "key", prefix)
        )

    def _regions(self, raw: dict[str, Any]) -> frozenset[str]:
        try:
            return parse_open_regions(raw.get("open_regions", sorted(DEFAULT_OPEN_REGIONS)))
        except ValueError as error:
            raise self._fail("open_regions", str(error)) from None

    def _banks(self, raw: dict[str, Any]) -> tuple[BankEndpoint, ...]:
        entries = raw.get("banks", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise self._fail("banks", "must be an array of tables ([[banks]])")
        if not entries:
            raise self._fail("banks", "no [[banks]] configured")
        banks: dict[str, BankEndpoint] = {}
        for i, entry in enumerate(entries):
            prefix = f"banks[{i}]."
            self._no_unknown(entry, _BANK_KEYS, prefix)
            if "code" not in entry:
                raise self._fail(prefix + "code", "missing")
            code = self._str(entry, "code", "", prefix)
            if not _BANK_CODE.fullmatch(code):
                raise self._fail(prefix + "code", f"must be 3-6 digits, not {code!r}")
            if code in banks:
                raise self._fail(prefix + "code", f"bank {code} is configured twice")
            addresses = self._bank_addresses(entry, prefix)
            balancing = self._str(entry, "balancing", "round_robin", prefix)
            if balancing not in BALANCING_POLICIES:
                raise self._fail(prefix + "balancing", f"must be one of {', '.join(BALANCING_POLICIES)}")
            max_concurrent = entry.get("max_concurrent", 32)
            if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
                raise self._fail(prefix + "max_concurrent", "must be an integer of at least 1")
            session = self._str(entry, "session", "off", prefix)
            if session not in SESSION_MODES:
                raise self._fail(prefix + "session", f'must be "off", "auto" or "on", not {session!r}')
            known = bank_by_code(code)
            banks[code] = BankEndpoint(
                code=code,
                display_name=self._str(entry, "display_name", known.display_name if known else code, prefix),
                english_name=self._str(entry, "english_name", known.english_name if known else code, prefix),
                address=addresses[0],
                server_name=self._str(entry, "server_name", "", prefix),
                max_concurrent=max_concurrent,
                addresses=addresses if len(addresses) > 1 else (),
                balancing=balancing,
                session=session,
            )
        return tuple(banks.values())

    def _bank_addresses(self, entry: dict[str, Any], prefix: str) -> tuple[str, ...]:
        """`address = "h:p"`, or `addresses = ["h1:p", "h2:p"]` (with
        `address`, if also given, equal to the first of them)."""
        if "address" not in entry and "addresses" not in entry:
            raise self._fail(prefix + "address", "missing (or give addresses)")
        addresses: tuple[str, ...] = ()
        if "addresses" in entry:
            listed = entry["addresses"]
            if not isinstance(listed, list) or not listed or not all(isinstance(a, str) for a in listed):
                raise self._fail(prefix + "addresses", "must be a non-empty list of host:port strings")
            if len(set(listed)) != len(listed):
                raise self._fail(prefix + "addresses", "lists an address twice")
            for i, address in enumerate(listed):
                self._address(address, f"{prefix}addresses[{i}]")
            addresses = tuple(listed)
        if "address" in entry:
            address = self._str(entry, "address", "", prefix)
            self._address(address, prefix + "address")
            if addresses and addresses[0] != address:
                raise self._fail(prefix + "address", "must be the first of addresses when both are given")
            addresses = addresses or (address,)
        return addresses

    def _timings(self, raw: dict[str, Any]) -> Timings:
        table = self._table(raw, "timings")
        names = frozenset(f.name for f in dataclasses.fields(Timings))
        self._no_unknown(table, names, "timings.")
        values: dict[str, Any] = {}
        for name, value in table.items():
            key = "timings." + name
            is_number = isinstance(value, int | float) and not isinstance(value, bool)
            if name in _COUNT_TIMINGS:
                if not is_number or not isinstance(value, int) or value < 1:
                    raise self._fail(key, "must be an integer of at least 1")
                values[name] = value
            elif name == "retry_multiplier":
                if not is_number or value < 1:
                    raise self._fail(key, "must be a number of at least 1")
                values[name] = float(value)
            else:
                if not is_number or not value > 0:
                    raise self._fail(key, "must be a positive number of seconds")
                values[name] = dt.timedelta(seconds=value)
        timings = Timings(**values)
        for key, problem in timings.problems():
            raise self._fail(key, problem)
        return timings


def _read_toml(path: Path) -> dict[str, Any]:
    """The file's TOML (cardlookup.hub_toml); ConfigError naming the file when it cannot be read."""
    try:
        return read_toml(path)
    except ValueError as error:
        raise ConfigError(str(error)) from None
