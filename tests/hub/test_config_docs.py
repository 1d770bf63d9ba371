"""docs/configuration.md documents exactly the settings the code reads
(issue 11 item 6): every key of hub.toml and banks.toml, the fault
switches, the environment overrides, and the defaults that are plain
values; and the overrides work, with one-line errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest

from bank_sim import config_file as banks_file
from bank_sim.faults import Faults
from cardlookup.pki import PkiPaths
from hub.core import config as hub_config
from hub.core.config import ConfigError, HsmSettings, HubConfig, Timings

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")


def section(heading: str) -> str:
    return DOC.split(heading, 1)[1].split("\n## ", 1)[0]


def tables(text: str) -> dict[str, dict[str, str]]:
    """{line introducing a table: {first-column key: second column}}."""
    found: dict[str, dict[str, str]] = {}
    intro = ""
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            found.setdefault(intro, {})[cells[0].strip("`")] = cells[1]
        elif line.strip() and not line.startswith("|"):
            intro = line.strip()
    return found


def test_documented_hub_keys_are_the_config_readers_keys() -> None:
    docs = tables(section("## Hub (`hub.toml`)"))
    by_intro = {intro.split(" ")[0].rstrip(":"): keys for intro, keys in docs.items()}
    assert set(by_intro["Top"]) == hub_config._TOP_KEYS
    assert set(by_intro["`[api_tls]`"]) == hub_config._TLS_KEYS
    assert set(by_intro["`[keys]`"]) == hub_config._KEYS_KEYS
    assert set(by_intro["`[hsm]`"]) == hub_config._HSM_KEYS
    assert set(by_intro["`[timings]`"]) == {f.name for f in dataclasses.fields(Timings)}
    assert set(by_intro["`[[banks]]`"]) == hub_config._BANK_KEYS
    assert set(by_intro["`[tracing]`"]) == hub_config._TRACING_KEYS


def test_documented_hub_defaults_are_the_code_defaults() -> None:
    docs = tables(section("## Hub (`hub.toml`)"))
    timings = next(keys for intro, keys in docs.items() if intro.startswith("`[timings]`"))
    defaults = Timings()
    for name, documented in timings.items():
        value = getattr(defaults, name)
        number = value.total_seconds() if isinstance(value, dt.timedelta) else value
        assert float(documented.split(" ")[0]) == number, name
    top = next(keys for intro, keys in docs.items() if intro.startswith("Top"))
    fields = {f.name: f.default for f in dataclasses.fields(HubConfig)}
    for name in ("listen", "health_listen", "metrics_listen", "admin_listen"):
        literal = re.match(r"`([^`]*)`", top[name])
        assert literal is not None and literal.group(1).strip('"') == fields[name], name
    assert top["admin_clients"] == f'`["{next(iter(fields["admin_clients"]))}"]`'  # type: ignore[call-overload]
    keys = next(keys for intro, keys in docs.items() if intro.startswith("`[keys]`"))
    assert keys["consent_key_id"] == f"`{fields['consent_key_id']}`"
    assert keys["key_encryption_key_id"] == f"`{fields['key_encryption_key_id']}`"


def test_documented_simulator_keys_are_the_file_readers_keys() -> None:
    text = section("## Bank simulator (`banks.toml`)")
    docs = tables(text)
    files = next(keys for intro, keys in docs.items() if intro.startswith("Every key"))
    code = {f"population.{k}" for k in banks_file.POPULATION_KEYS}
    code |= {f"fleet.{k}" for k in banks_file.FLEET_KEYS}
    code |= {f"defaults.{k}" for k in banks_file.DEFAULTS_KEYS}
    code |= {f"banks.{k}" for k in banks_file.BANK_KEYS}
    assert set(files) == code
    assert {k.split(".")[0] for k in files} == banks_file.TOP_KEYS
    faults = next(keys for intro, keys in docs.items() if intro.startswith("Fault switches"))
    assert set(faults) == {f.name for f in dataclasses.fields(Faults)}
    settings = banks_file.FleetSettings()
    assert files["population.seed"] == str(settings.seed) and files["population.size"] == str(settings.population_size)
    assert files["fleet.count"] == str(settings.count)


def test_documented_environment_overrides_are_the_code_overrides() -> None:
    docs = tables(section("## Environment overrides"))
    rows = next(iter(docs.values()))
    code = dict(hub_config.ENV_OVERRIDES)
    code.update({name: f"fleet.{key}" for name, key in banks_file.ENV_OVERRIDES.items()})
    assert {k: v.strip("`") for k, v in rows.items()} == code


def test_hub_environment_overrides_apply_and_bad_ones_are_one_line(tmp_path: Path, pki: PkiPaths) -> None:
    config = HubConfig.dev(pki, {"102": "127.0.0.1:7100"}, tmp_path)
    path = tmp_path / "hub.toml"
    path.write_text(config.to_toml(), encoding="utf-8")
    env = {
        "CARDLOOKUP_HUB_LISTEN": "0.0.0.0:6000",
        "CARDLOOKUP_HUB_DATABASE": str(tmp_path / "other.db"),
        "CARDLOOKUP_HUB_METRICS_LISTEN": "127.0.0.1:9100",
        "CARDLOOKUP_HUB_ADMIN_LISTEN": "127.0.0.1:6001",
    }
    loaded = HubConfig.from_file(path, env=env)
    assert (loaded.listen, loaded.metrics_listen, loaded.admin_listen) == (
        "0.0.0.0:6000",
        "127.0.0.1:9100",
        "127.0.0.1:6001",
    )
    assert loaded.database == tmp_path / "other.db"
    assert HubConfig.from_file(path, env={}) == config  # the file alone round-trips
    with pytest.raises(ConfigError) as bad:
        HubConfig.from_file(path, env={"CARDLOOKUP_HUB_METRICS_LISTEN": "nowhere"})
    assert str(bad.value) == f"{path}: metrics_listen: must be host:port, not 'nowhere'"


def test_hsm_settings_take_the_pin_from_the_environment(tmp_path: Path, pki: PkiPaths) -> None:
    module = tmp_path / "libpkcs11.so"
    module.write_bytes(b"")
    config = HubConfig.dev(pki, {"102": "127.0.0.1:7100"}, tmp_path)
    text = config.to_toml().replace(
        "[timings]",
        f'[hsm]\nmodule = "{module}"\ntoken_label = "hub"\nconsent_signing_key_label = "consent"\n\n[timings]',
    )
    text = re.sub(r'consent_signing_key = "[^"]*"\n', "", text)  # the key lives in the HSM
    path = tmp_path / "hub.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as missing:
        HubConfig.from_file(path, env={})
    assert str(missing.value) == f"{path}: hsm.pin: missing (set it in the file or CARDLOOKUP_HUB_HSM_PIN)"
    loaded = HubConfig.from_file(path, env={"CARDLOOKUP_HUB_HSM_PIN": "4321"})
    assert loaded.hsm is not None and loaded.hsm.pin == "4321" and loaded.hsm.consent_signing_key_label == "consent"
    assert loaded.hsm.key_encryption_key_label == ""  # the KEK stays a file
    assert loaded.key_encryption_key == config.key_encryption_key


def test_previous_keks_on_the_token_round_trip_and_never_share_an_id(tmp_path: Path, pki: PkiPaths) -> None:
    """Issue 24: retired KEKs by token label beside the file-held ones; an id
    is listed once, and never as both current and previous."""
    module = tmp_path / "libpkcs11.so"
    module.write_bytes(b"")
    hsm = HsmSettings(
        module.resolve(),
        "hub",
        "1234",
        key_encryption_key_label="kek-3",
        previous_key_encryption_key_labels={"kek-2": "kek-2-label"},
    )
    config = HubConfig.dev(
        pki,
        {"102": "127.0.0.1:7100"},
        tmp_path,
        hsm=hsm,
        key_encryption_key_id="kek-3",
        previous_key_encryption_keys={"kek-1": pki.key_encryption_key},
    )
    path = tmp_path / "hub.toml"
    path.write_text(config.to_toml(), encoding="utf-8")
    loaded = HubConfig.from_file(path, env={})
    assert loaded.hsm is not None and loaded.hsm.previous_key_encryption_key_labels == {"kek-2": "kek-2-label"}
    assert loaded.previous_key_encryption_keys == {"kek-1": pki.key_encryption_key}
    for text, problem in (
        (config.to_toml().replace('"kek-2" = "kek-2-label"', '"kek-1" = "x"'), "'kek-1' is also in keys."),
        (config.to_toml().replace('"kek-2" = "kek-2-label"', '"kek-3" = "x"'), "'kek-3' is the current key's id"),
        (config.to_toml().replace('"kek-2" = "kek-2-label"', '"kek-2" = ""'), "must not be empty"),
    ):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as bad:
            HubConfig.from_file(path, env={})
        assert problem in str(bad.value) and "hsm.previous_key_encryption_key_labels" in str(bad.value)


def test_previous_keks_must_not_reuse_the_current_id(tmp_path: Path, pki: PkiPaths) -> None:
    config = HubConfig.dev(
        pki, {"102": "127.0.0.1:7100"}, tmp_path, previous_key_encryption_keys={"kek-dev-1": pki.key_encryption_key}
    )
    path = tmp_path / "hub.toml"
    path.write_text(config.to_toml(), encoding="utf-8")
    with pytest.raises(ConfigError) as clash:
        HubConfig.from_file(path, env={})
    assert str(clash.value) == f"{path}: keys.previous_key_encryption_keys: 'kek-dev-1' is the current key's id"


def test_simulator_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    assert banks_file.env_overrides({"CARDLOOKUP_BANKS_METRICS_PORT": "9200", "CARDLOOKUP_BANKS_HOST": "::1"}) == {
        "metrics_port": 9200,
        "host": "::1",
    }
    with pytest.raises(banks_file.ConfigError, match="CARDLOOKUP_BANKS_BASE_PORT must be a port number"):
        banks_file.env_overrides({"CARDLOOKUP_BANKS_BASE_PORT": "x"})
