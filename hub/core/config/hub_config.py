"""HubConfig: every setting of one hub, built from a hub.toml
(hub.core.config.reader) or for a development run (`HubConfig.dev`), and written
back as TOML (`to_toml`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from cardlookup.banks import bank_by_code
from cardlookup.pki import APP_BACKEND_NAME, CONSENT_KEY_ID, FACE_KEY_ID, KEK_ID, OPERATOR_NAME, PkiPaths
from cardlookup.regions import DEFAULT_OPEN_REGIONS
from hub.core.config.reader import read_hub_file
from hub.core.config.settings import (
    DEFAULT_CONSENT_TEXT,
    DEFAULT_CONSENT_TEXT_VERSION,
    BankEndpoint,
    HsmSettings,
    Timings,
    TlsFiles,
    TracingSettings,
)


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
    empty = no metrics endpoint (hub.telemetry.metrics)."""
    admin_listen: str = ""
    """host:port of the operator admin service (mTLS, same server
    certificate as the API); empty = no admin service (hub.admin)."""
    admin_clients: frozenset[str] = frozenset({OPERATOR_NAME})
    """Client certificate DNS names allowed on the admin service."""
    key_encryption_key_id: str = KEK_ID
    """The id recorded in everything sealed from now on (hub.keys.crypto)."""
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
                "previous_key_encryption_key_labels = {{ {} }}".format(
                    ", ".join(f"{q(k)} = {q(v)}" for k, v in hsm.previous_key_encryption_key_labels.items())
                ),
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
        return cls(**read_hub_file(Path(path), env))


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes, UTF-8 kept).
    return json.dumps(value, ensure_ascii=False)
