"""hub.toml: the documented example loads as documented, and every bad file
is refused with one line naming the key (ConfigError)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from cardlookup.pki import PkiPaths
from hub.core.config import ConfigError, HubConfig, Timings, TracingSettings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "hub.toml"


def example_dir(tmp_path: Path, pki: PkiPaths, text: str | None = None) -> Path:
    """The example file in a directory beside the PKI it names (`pki/`)."""
    (tmp_path / "pki").symlink_to(pki.root, target_is_directory=True)
    path = tmp_path / "hub.toml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8") if text is None else text, encoding="utf-8")
    return path


def test_the_documented_example_loads(tmp_path: Path, pki: PkiPaths) -> None:
    config = HubConfig.from_file(example_dir(tmp_path, pki), env={})
    assert config.listen == "127.0.0.1:50051" and config.health_listen == "127.0.0.1:50052"
    assert config.database == (tmp_path / "var" / "hub.db").resolve()
    assert config.sms_outbox == (tmp_path / "var" / "sms-outbox.jsonl").resolve()
    assert config.open_regions == {"310000", "530000"}
    assert config.allowed_clients == {"app-backend.cardlookup.internal"}
    assert config.api_tls.cert == pki.cert("hub-server").resolve()
    assert config.bank_tls.key == pki.key("hub-client").resolve()
    assert config.key_encryption_key == pki.key_encryption_key.resolve()
    assert config.face_provider_keys == {"face-provider-dev-1": pki.face_provider_public_key.resolve()}
    assert config.timings.report_window == dt.timedelta(hours=24)
    assert config.timings.attempt_timeout == dt.timedelta(seconds=20)
    b102, b103 = config.banks
    assert (b102.code, b102.address, b102.tls_name()) == ("102", "127.0.0.1:7100", "102.bank.cardlookup.internal")
    assert b102.display_name == "中国工商银行" and b102.max_concurrent == 32
    assert b103.server_name == "103.bank.cardlookup.internal" and b103.english_name == "Agricultural Bank of China"


def test_hub_engine_doc_shows_the_example_file_verbatim() -> None:
    doc = (ROOT / "docs" / "hub-engine.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", doc, flags=re.S)
    assert EXAMPLE.read_text(encoding="utf-8") in blocks


def test_documented_timing_defaults_are_the_code_defaults() -> None:
    doc = (ROOT / "docs" / "hub-engine.md").read_text(encoding="utf-8")
    table = doc.split("## Configuration keys", 1)[1]
    rows = dict(re.findall(r"^\| `(\w+)`[^|]*\| ([0-9.]+)", table, flags=re.M))
    timings = Timings()
    assert rows, "the timings table is gone"
    for name, documented in rows.items():
        value = getattr(timings, name)
        actual = value.total_seconds() if isinstance(value, dt.timedelta) else value
        assert float(documented) == float(actual), name


def test_environment_overrides(tmp_path: Path, pki: PkiPaths) -> None:
    env = {
        "CARDLOOKUP_HUB_LISTEN": "127.0.0.1:0",
        "CARDLOOKUP_HUB_HEALTH_LISTEN": "127.0.0.1:9",
        "CARDLOOKUP_HUB_DATABASE": "elsewhere.db",
    }
    config = HubConfig.from_file(example_dir(tmp_path, pki), env=env)
    assert (config.listen, config.health_listen) == ("127.0.0.1:0", "127.0.0.1:9")
    assert config.database == (tmp_path / "elsewhere.db").resolve()


def _edit(old: str, new: str) -> str:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text, old
    return text.replace(old, new, 1)


BAD = [
    (_edit("listen = ", "listn = "), "listn: unknown key"),
    (_edit("[api_tls]", "[api_tls]\ncrl = 'x'"), "api_tls.crl: unknown key"),
    (_edit('consent_key_id = "', 'consent_keyid = "'), "keys.consent_keyid: unknown key"),
    (_edit("report_window = 86400", "report_windw = 86400"), "timings.report_windw: unknown key"),
    (_edit('address = "127.0.0.1:7100"', 'adress = "127.0.0.1:7100"'), "banks[0].adress: unknown key"),
    (_edit("report_window = 86400", 'report_window = "1 day"'), "timings.report_window: must be a positive"),
    (_edit("report_window = 86400", "report_window = 0"), "timings.report_window: must be a positive"),
    (_edit("[timings]", "[timings]\nbreaker_failures = 2.5"), "timings.breaker_failures: must be an integer"),
    (_edit("[timings]", "[timings]\nretry_initial = 700"), "timings.retry_initial: must not exceed"),
    (_edit("[timings]", "[timings]\nabuse_counter_retention = 3600"), "timings.abuse_counter_retention: must be at"),
    (_edit("[timings]", "[timings]\nclosure_record_retention = 86400"), "timings.closure_record_retention: must be"),
    (
        _edit("attempt_timeout = 20", "attempt_timeout = 20\nlease_duration = 19"),
        "timings.lease_duration: must be at least",
    ),
    (
        _edit("attempt_timeout = 20", "attempt_timeout = 5\nlease_duration = 30\nnotice_claim = 29"),
        "timings.notice_claim: must be at least",
    ),
    (_edit("[timings]", "[tracing]\nenabled = 1\n[timings]"), "tracing.enabled: must be true or false"),
    (_edit("[timings]", "[tracing]\notlp_endpoint = 'collector:4317'\n[timings]"), "tracing.otlp_endpoint: must be"),
    (_edit("[timings]", "[tracing]\nsample_ratio = 2\n[timings]"), "tracing.sample_ratio: must be a number"),
    (_edit("[timings]", "[tracing]\nexporter = 'otlp'\n[timings]"), "tracing.exporter: unknown key"),
    (_edit("max_concurrent = 32", 'max_concurrent = "32"'), "banks[1].max_concurrent: must be an integer"),
    (_edit('code = "103"', 'code = "102"'), "banks[1].code: bank 102 is configured twice"),
    (_edit('code = "103"', 'code = "ABC"'), "banks[1].code: must be 3-6 digits"),
    (_edit('address = "127.0.0.1:7100"', 'address = "127.0.0.1"'), "banks[0].address: must be host:port"),
    (_edit('listen = "127.0.0.1:50051"', "listen = 50051"), "listen: must be a string"),
    (_edit('"310000", "530000"', '"310000", "999999"'), "open_regions: '999999' is not"),
    (_edit("kek.hex", "missing.hex"), "keys.key_encryption_key: no such file"),
    (_edit("pki/certs/hub-server.pem", "pki/nope.pem"), "api_tls.cert: no such file"),
    (_edit("[keys]\nconsent_signing_key", "[keys]\n#consent_signing_key"), "keys.consent_signing_key: missing"),
    (EXAMPLE.read_text(encoding="utf-8").split("# One entry per bank")[0], "banks: no [[banks]] configured"),
    ("listen = ", "not valid TOML"),
    ("", "keys: missing"),
]


@pytest.mark.parametrize(("text", "complaint"), BAD, ids=[c for _, c in BAD])
def test_bad_files_are_refused_naming_the_key(tmp_path: Path, pki: PkiPaths, text: str, complaint: str) -> None:
    path = example_dir(tmp_path, pki, text)
    with pytest.raises(ConfigError) as caught:
        HubConfig.from_file(path, env={})
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and complaint in message
    assert "\n" not in message


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        HubConfig.from_file(tmp_path / "absent.toml", env={})


def test_the_config_module_points_at_the_example() -> None:
    import hub.core.config

    assert "docs/examples/hub.toml" in (hub.core.config.__doc__ or "")


def test_to_toml_reads_back_to_an_equal_config(tmp_path: Path, pki: PkiPaths) -> None:
    config = HubConfig.dev(
        pki,
        {"102": "127.0.0.1:7102", "308": "127.0.0.1:7308"},
        tmp_path / "data",
        listen="127.0.0.1:0",
        health_listen="127.0.0.1:0",
        open_regions=frozenset({"310000", "530000"}),
        consent_text='说明 "quoted" \\ backslash',
        timings=Timings(retry_initial=dt.timedelta(milliseconds=50), breaker_failures=7, retry_multiplier=1.5),
        tracing=TracingSettings(True, "https://collector.internal:4317", "hub-eu", 0.25),
    )
    path = tmp_path / "hub.toml"
    path.write_text(config.to_toml(), encoding="utf-8")
    assert HubConfig.from_file(path, env={}) == config


def test_related_timings_at_their_documented_limits_are_accepted(tmp_path: Path, pki: PkiPaths) -> None:
    text = _edit("attempt_timeout = 20", "attempt_timeout = 20\nlease_duration = 20\nnotice_claim = 20")
    timings = HubConfig.from_file(example_dir(tmp_path, pki, text), env={}).timings
    assert timings.lease_duration == timings.notice_claim == timings.attempt_timeout == dt.timedelta(seconds=20)


def test_the_defaults_and_every_preset_obey_the_documented_relations() -> None:
    from bench import processes, soak_faults
    from devstack.replicastack import REPLICA_TIMINGS

    presets = {"defaults": Timings(), "replicas": REPLICA_TIMINGS, "soak": soak_faults.SOAK_TIMINGS}
    presets["bench"] = processes.HUB_TIMINGS
    for name, timings in presets.items():
        assert timings.problems() == [], name


def test_the_configuration_guide_states_the_relations_the_reader_enforces() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \|[^|]*\|(.*)\|$", doc, flags=re.M))
    assert "at least `attempt_timeout`" in rows["lease_duration"]
    assert "at least `lease_duration`" in rows["notice_claim"]
    assert "at most `retry_max`" in rows["retry_initial"]
