"""The typed pieces of the hub's configuration: certificate files, a bank's
entry, the time rules, the HSM and tracing settings (hub.core.config re-exports
them; HubConfig gathers them in hub.core.config.hub_config)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cardlookup.pki import bank_server_name
from hub.core.database import ConnectionSettings

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
    the connection is dropped and the write retried (a silent peer). SQLite:
    its busy timeout (how long a statement waits for another process's lock)."""
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
    key (hub.keys.hsm); the keys never leave it. Files stay the development default."""

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
    previous_key_encryption_key_labels: dict[str, str] = field(default_factory=dict)
    """Issue 24: retired KEKs on the token, key id -> label: still open what
    they sealed, never seal (beside keys.previous_key_encryption_keys, the
    file-held ones; an id is listed in one of the two)."""


@dataclass(frozen=True)
class TracingSettings:
    """OpenTelemetry tracing (hub.telemetry.tracing): off by default."""

    enabled: bool = False
    otlp_endpoint: str = "http://127.0.0.1:4317"
    """The OTLP/gRPC collector: `http://` plaintext, `https://` TLS (the
    exporter's OTEL_EXPORTER_OTLP_* variables set certificates, headers)."""
    service_name: str = "cardlookup-hub"
    """The `service.name` resource attribute of every span."""
    sample_ratio: float = 1.0
    """Share of new traces kept (0..1); a call whose caller sampled it is kept."""
