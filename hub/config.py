"""Every setting of the hub, in one typed place.

A hub reads one TOML file (`cardlookup-hub --config hub.toml`), then a few
environment overrides (CARDLOOKUP_HUB_LISTEN, CARDLOOKUP_HUB_DATABASE,
CARDLOOKUP_HUB_HEALTH_LISTEN). Regions and banks are configuration, not code
(R2): the file lists them, and the defaults are SPEC.md's 16 banks and
open regions. `HubConfig.dev()` builds the configuration the demo and tests
use from a development PKI directory.

Example file (paths are relative to the file):

    listen = "127.0.0.1:50051"
    database = "var/hub.db"
    open_regions = ["310000", "530000"]
    consent_text_version = "2022-03-01"

    [api_tls]            # the app backend calls the hub with these
    ca = "pki/ca.pem"
    cert = "pki/certs/hub-server.pem"
    key = "pki/certs/hub-server.key"

    [bank_tls]           # the hub calls banks with these
    ca = "pki/ca.pem"
    cert = "pki/certs/hub-client.pem"
    key = "pki/certs/hub-client.key"

    [keys]
    consent_signing_key = "pki/keys/consent-signing.key"
    consent_key_id = "hub-consent-dev-1"
    key_encryption_key = "pki/keys/kek.hex"
    index_key = "pki/keys/index.hex"
    face_provider_keys = { "face-provider-dev-1" = "pki/keys/face-provider.pub" }

    [timings]            # seconds
    report_window = 86400

    [[banks]]
    code = "102"
    address = "127.0.0.1:7102"
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from cardlookup.banks import DEFAULT_BANKS, bank_by_code
from cardlookup.pki import APP_BACKEND_NAME, CONSENT_KEY_ID, FACE_KEY_ID, PkiPaths, bank_server_name
from cardlookup.regions import DEFAULT_OPEN_REGIONS

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
    """Calls in flight to this bank at most (per hub process)."""

    def tls_name(self) -> str:
        return self.server_name or bank_server_name(self.code)


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


@dataclass(frozen=True)
class HubConfig:
    database: Path
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

    @cached_property
    def _banks_by_code(self) -> dict[str, BankEndpoint]:
        # bank() runs per bank per query event (watch conversions, validation,
        # fan-out lanes): a linear scan made a 1,000-bank query O(n^3).
        return {b.code: b for b in reversed(self.banks)}  # reversed: the first entry of a code wins

    def bank(self, code: str) -> BankEndpoint | None:
        return self._banks_by_code.get(code)

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

    @classmethod
    def from_file(cls, path: Path, env: dict[str, str] | None = None) -> HubConfig:
        env = dict(os.environ if env is None else env)
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        base_dir = Path(path).resolve().parent

        def p(value: str) -> Path:
            return (base_dir / value).resolve()

        def tls(section: str) -> TlsFiles:
            s = raw.get(section)
            if not isinstance(s, dict) or not {"ca", "cert", "key"} <= s.keys():
                raise ValueError(f"{path}: [{section}] needs ca, cert and key")
            return TlsFiles(p(s["ca"]), p(s["cert"]), p(s["key"]))

        keys = raw.get("keys", {})
        for required in ("consent_signing_key", "key_encryption_key", "index_key"):
            if required not in keys:
                raise ValueError(f"{path}: [keys] needs {required}")
        known = {b.code: b for b in DEFAULT_BANKS}
        banks = []
        for entry in raw.get("banks", []):
            if "code" not in entry or "address" not in entry:
                raise ValueError(f"{path}: every [[banks]] entry needs code and address")
            default = known.get(entry["code"])
            banks.append(
                BankEndpoint(
                    code=str(entry["code"]),
                    display_name=entry.get("display_name", default.display_name if default else entry["code"]),
                    english_name=entry.get("english_name", default.english_name if default else entry["code"]),
                    address=entry["address"],
                    server_name=entry.get("server_name", ""),
                    max_concurrent=int(entry.get("max_concurrent", 32)),
                )
            )
        if not banks:
            raise ValueError(f"{path}: no [[banks]] configured")
        timing_fields = {f.name: f for f in dataclasses.fields(Timings)}
        timings: dict[str, Any] = {}
        for name, value in raw.get("timings", {}).items():
            if name not in timing_fields:
                raise ValueError(f"{path}: unknown timing {name!r}")
            is_count = name in ("breaker_failures", "sms_max_attempts", "password_max_failures")
            timings[name] = value if is_count or name == "retry_multiplier" else dt.timedelta(seconds=float(value))
        return cls(
            database=p(env.get("CARDLOOKUP_HUB_DATABASE", raw.get("database", "var/hub.db"))),
            listen=env.get("CARDLOOKUP_HUB_LISTEN", raw.get("listen", "127.0.0.1:50051")),
            health_listen=env.get("CARDLOOKUP_HUB_HEALTH_LISTEN", raw.get("health_listen", "")),
            api_tls=tls("api_tls"),
            bank_tls=tls("bank_tls"),
            consent_signing_key=p(keys["consent_signing_key"]),
            consent_key_id=keys.get("consent_key_id", CONSENT_KEY_ID),
            key_encryption_key=p(keys["key_encryption_key"]),
            index_key=p(keys["index_key"]),
            face_provider_keys={k: p(v) for k, v in keys.get("face_provider_keys", {}).items()},
            banks=tuple(banks),
            open_regions=frozenset(raw.get("open_regions", DEFAULT_OPEN_REGIONS)),
            allowed_clients=frozenset(raw.get("allowed_clients", [APP_BACKEND_NAME])),
            consent_text_version=raw.get("consent_text_version", DEFAULT_CONSENT_TEXT_VERSION),
            consent_text=raw.get("consent_text", DEFAULT_CONSENT_TEXT),
            sms_outbox=p(raw["sms_outbox"]) if "sms_outbox" in raw else None,
            timings=Timings(**timings),
        )
