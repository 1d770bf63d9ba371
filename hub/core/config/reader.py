"""Reading a hub.toml: every key checked on the way, each problem one
ConfigError line naming the file and the key (`cardlookup-hub` prints it and
exits with status 2)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardlookup.banks import bank_by_code
from cardlookup.hub_toml import read_toml
from cardlookup.pki import APP_BACKEND_NAME, CONSENT_KEY_ID, KEK_ID, OPERATOR_NAME
from cardlookup.regions import DEFAULT_OPEN_REGIONS, parse_open_regions
from hub.core.config.keys import (
    _BANK_KEYS,
    _COUNT_TIMINGS,
    _HSM_KEYS,
    _KEYS_KEYS,
    _TLS_KEYS,
    _TOP_KEYS,
    _TRACING_KEYS,
    BALANCING_POLICIES,
    SESSION_MODES,
)
from hub.core.config.settings import (
    DEFAULT_CONSENT_TEXT,
    DEFAULT_CONSENT_TEXT_VERSION,
    BankEndpoint,
    HsmSettings,
    Timings,
    TlsFiles,
    TracingSettings,
)
from hub.core.database import is_postgres_url


class ConfigError(ValueError):
    """A hub.toml the hub cannot use; the message is one line naming the file and the key."""


_BANK_CODE = re.compile(r"[0-9]{3,6}")
_ADDRESS = re.compile(r"(?P<host>\S+):(?P<port>[0-9]{1,5})")


@dataclass(frozen=True)
class _FileReader:
    """Turns a parsed hub.toml into a HubConfig, checking every key on the way
    (a misspelt key silently falling back to a default is how a production
    hub ends up with a 20 s window or no health port)."""

    path: Path
    env: dict[str, str]

    def read(self, raw: dict[str, Any]) -> dict[str, Any]:
        """HubConfig's fields (hub.core.config.hub_config builds it)."""
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
        for key_id in hsm.previous_key_encryption_key_labels if hsm else {}:
            if key_id == kek_id or key_id in previous:
                where = "the current key's id" if key_id == kek_id else "also in keys.previous_key_encryption_keys"
                raise self._fail("hsm.previous_key_encryption_key_labels", f"{key_id!r} is {where}")
        in_hsm = hsm.consent_signing_key_label if hsm else "", hsm.key_encryption_key_label if hsm else ""
        return dict(
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
            previous_key_encryption_key_labels=self._labels(table, "previous_key_encryption_key_labels"),
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

    def _labels(self, table: dict[str, Any], key: str) -> dict[str, str]:
        """A table of key id -> token label (both non-empty strings)."""
        labels = self._table(table, key, prefix="hsm.")
        return {k: self._str(labels, k, "", f"hsm.{key}.", nonempty=True) for k in labels}

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


def read_hub_file(path: Path, env: dict[str, str]) -> dict[str, Any]:
    """HubConfig's fields from the hub.toml at `path` (HubConfig.from_file)."""
    return _FileReader(path, env).read(_read_toml(path))
