"""The bank simulator's configuration file (TOML), and its defaults.

Every key is optional; with no file the fleet is the first 16 banks
(docs/rules.md) on free ports, healthy, over the default population. The CLI's flags override
the file. Example (docs/bank-simulator.md describes every key):

    [population]
    seed = 20211220
    size = 200

    [fleet]
    count = 16            # or: codes = ["102", "308", "5000"]
    host = "127.0.0.1"
    base_port = 7100      # bank i listens on base_port + i; 0 = free ports
    admin_port = 7099     # 0 = a free port; admin = false turns it off
    metrics_port = 7098   # Prometheus /metrics (cardlookup.metrics_http BankSimMetrics); omit for none
    # the hub's consent keys the banks trust (default: the PKI's one key);
    # two during a rotation overlap. Paths are relative to this file.
    consent_keys = { "hub-consent-dev-1" = "pki/keys/consent-signing.pub" }

    [defaults.faults]     # every bank starts with these switches
    latency = 0.02

    [[banks]]             # per bank: port and faults (merged over defaults)
    code = "102"
    port = 7202
    faults = { error_rate = 0.2, error_code = "UNAVAILABLE" }
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bank_sim.faults import Faults, FaultsError
from bank_sim.fleet import BankSimConfig
from cardlookup.banks import BankInfo, bank_by_code, bank_fleet, synthetic_bank
from cardlookup.pki import load_ed25519_public
from cardlookup.population import DEFAULT_SEED, DEFAULT_SIZE, Population

SYNTHETIC_BASE = 5000
_KIND_NAMES = {int: "an integer", str: "a string"}


class ConfigError(ValueError):
    """A configuration file the simulator cannot use; says where."""


@dataclass(frozen=True)
class BankOverride:
    port: int | None = None
    faults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FleetSettings:
    """What the file (or the flags) ask for, before anything starts."""

    count: int = 16
    codes: tuple[str, ...] | None = None
    """Explicit bank codes; None = the first `count` of bank_fleet."""
    host: str = "127.0.0.1"
    base_port: int = 0
    admin_port: int | None = 0
    metrics_port: int | None = None
    """Prometheus endpoint port on `host` (0 = a free port); None = no endpoint."""
    seed: int = DEFAULT_SEED
    population_size: int = DEFAULT_SIZE
    default_faults: Mapping[str, Any] = field(default_factory=dict)
    banks: Mapping[str, BankOverride] = field(default_factory=dict)
    consent_keys: Mapping[str, Path] | None = None
    """Key id -> the hub's Ed25519 public key file (PEM) the banks trust
    (issue 24 item 4); None = the PKI directory's consent key under its id."""

    def bank_infos(self) -> tuple[BankInfo, ...]:
        if self.codes is None:
            return bank_fleet(self.count)
        return tuple(bank_info(code) for code in self.codes)

    def bank_configs(self) -> tuple[BankSimConfig, ...]:
        """Per-bank port and faults, in fleet order. Raises ConfigError."""
        infos = self.bank_infos()
        known = {b.code for b in infos}
        stray = sorted(set(self.banks) - known)
        if stray:
            raise ConfigError(f"[[banks]] code {stray[0]} is not in the fleet")
        configs = []
        for i, info in enumerate(infos):
            override = self.banks.get(info.code, BankOverride())
            port = override.port if override.port is not None else (self.base_port + i if self.base_port else 0)
            try:
                faults = Faults.from_mapping({**self.default_faults, **override.faults})
            except (FaultsError, TypeError) as error:
                raise ConfigError(f"faults of bank {info.code}: {error}") from None
            configs.append(BankSimConfig(code=info.code, port=port, faults=faults))
        return tuple(configs)

    def population(self) -> Population:
        return Population(seed=self.seed, size=self.population_size, banks=self.bank_infos())

    def trusted_consent_keys(self) -> dict[str, Ed25519PublicKey] | None:
        """The consent keys loaded (None: the fleet's default). Raises ConfigError."""
        if self.consent_keys is None:
            return None
        keys = {}
        for key_id, path in self.consent_keys.items():
            try:
                keys[key_id] = load_ed25519_public(path)
            except (OSError, ValueError):
                raise ConfigError(f"consent key {key_id}: {path} is not a readable Ed25519 public key (PEM)") from None
        return keys

    def with_overrides(self, **changes: Any) -> FleetSettings:
        """A copy with the given settings changed; None values are ignored."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def bank_info(code: str) -> BankInfo:
    """A real bank of the registry, or a synthetic one ("5000" and up)."""
    info = bank_by_code(code)
    if info is not None:
        return info
    if code.isdigit() and int(code) >= SYNTHETIC_BASE:
        return synthetic_bank(int(code) - SYNTHETIC_BASE)
    raise ConfigError(f"unknown bank code {code!r}: use a registry code or a synthetic code from {SYNTHETIC_BASE}")


ENV_OVERRIDES = {
    "CARDLOOKUP_BANKS_HOST": "host",
    "CARDLOOKUP_BANKS_BASE_PORT": "base_port",
    "CARDLOOKUP_BANKS_ADMIN_PORT": "admin_port",
    "CARDLOOKUP_BANKS_METRICS_PORT": "metrics_port",
}
"""Environment variables that override [fleet] keys of the file (addresses a
deployment injects); the command's flags override both."""


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """The ENV_OVERRIDES present in `env`, typed. Raises ConfigError."""
    changes: dict[str, Any] = {}
    for name, key in ENV_OVERRIDES.items():
        value = env.get(name)
        if not value:
            continue
        if key == "host":
            changes[key] = value
        elif value.isdigit() and int(value) <= 65535:
            changes[key] = int(value)
        else:
            raise ConfigError(f"{name} must be a port number, not {value!r}")
    return changes


def load_settings(path: Path | None) -> FleetSettings:
    """The settings of a file, or the defaults for None. Raises ConfigError."""
    if path is None:
        return FleetSettings()
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: {error}") from None
    try:
        return _parse(raw, Path(path).parent)
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise ConfigError(f"{path}: {error}") from None
        raise ConfigError(f"{path}: {error!r}") from None


TOP_KEYS = frozenset({"population", "fleet", "defaults", "banks"})
POPULATION_KEYS = frozenset({"seed", "size"})
FLEET_KEYS = frozenset({"count", "codes", "host", "base_port", "admin_port", "admin", "metrics_port", "consent_keys"})
DEFAULTS_KEYS = frozenset({"faults"})
BANK_KEYS = frozenset({"code", "port", "faults"})
"""Every key of the file, by table (docs/configuration.md documents each;
tests/hub/test_config_docs.py compares)."""


def _parse(raw: Mapping[str, Any], base: Path = Path()) -> FleetSettings:
    _only(raw, TOP_KEYS, "top level")
    population = raw.get("population", {})
    _only(population, POPULATION_KEYS, "[population]")
    fleet = raw.get("fleet", {})
    _only(fleet, FLEET_KEYS, "[fleet]")
    defaults = raw.get("defaults", {})
    _only(defaults, DEFAULTS_KEYS, "[defaults]")
    banks: dict[str, BankOverride] = {}
    for entry in raw.get("banks", []):
        _only(entry, BANK_KEYS, "[[banks]]")
        code = _typed(entry, "code", str, "[[banks]]")
        if code in banks:
            raise ConfigError(f"[[banks]] code {code} appears twice")
        banks[code] = BankOverride(port=_typed(entry, "port", int, "[[banks]]"), faults=entry.get("faults", {}))
    codes = fleet.get("codes")
    if codes is not None and (not isinstance(codes, list) or not all(isinstance(c, str) for c in codes)):
        raise ConfigError("[fleet] codes must be a list of strings")
    if codes is not None and (not codes or len(set(codes)) != len(codes)):
        raise ConfigError("[fleet] codes must be a non-empty list of distinct codes")
    defaults_ = FleetSettings()
    settings = FleetSettings(
        count=_typed(fleet, "count", int, "[fleet]", defaults_.count),
        codes=tuple(codes) if codes is not None else None,
        host=_typed(fleet, "host", str, "[fleet]", defaults_.host),
        base_port=_typed(fleet, "base_port", int, "[fleet]", defaults_.base_port),
        admin_port=None if fleet.get("admin") is False else _typed(fleet, "admin_port", int, "[fleet]", 0),
        metrics_port=_typed(fleet, "metrics_port", int, "[fleet]", None),
        seed=_typed(population, "seed", int, "[population]", defaults_.seed),
        population_size=_typed(population, "size", int, "[population]", defaults_.population_size),
        default_faults=defaults.get("faults", {}),
        banks=banks,
        consent_keys=_consent_keys(fleet.get("consent_keys"), base),
    )
    if settings.count < 1 or settings.population_size < 1:
        raise ConfigError("[fleet] count and [population] size must be at least 1")
    settings.bank_configs()  # report bad codes and faults now, not at start-up
    return settings


def _consent_keys(table: object, base: Path) -> dict[str, Path] | None:
    if table is None:
        return None
    if not isinstance(table, Mapping) or not table or not all(isinstance(v, str) and v for v in table.values()):
        raise ConfigError('[fleet] consent_keys must be a table { "key id" = "public key file" }')
    return {str(key_id): base / path for key_id, path in table.items()}


def _only(table: object, allowed: frozenset[str], where: str) -> None:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}")


def _typed(table: Mapping[str, Any], key: str, kind: type, where: str, default: Any = None) -> Any:
    value = table.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{where} {key} must be {_KIND_NAMES.get(kind, kind.__name__)}")
    return value
