"""The bank simulator's configuration file and fault-switch parsing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bank_sim.config_file import ConfigError, FleetSettings, load_settings
from bank_sim.faults import Faults, FaultsError, Misbehaviour
from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.population import DEFAULT_SEED

EXAMPLE = """
[population]
seed = 7
size = 30

[fleet]
count = 18
base_port = 7100
admin_port = 7099

[defaults.faults]
latency = 0.02

[[banks]]
code = "102"
port = 7302
faults = { error_rate = 0.2, error_code = "INTERNAL" }

[[banks]]
code = "5001"
[banks.faults]
misbehaviour = "SUMMARY_MISMATCH"
latency = 0
outages = [{ start = 2026-01-05T10:00:00Z, end = "2026-01-05T11:00:00+00:00" }]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "banks.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_means_the_16_banks_healthy_on_free_ports() -> None:
    settings = load_settings(None)
    banks = settings.bank_configs()
    assert tuple(b.code for b in banks) == DEFAULT_BANK_CODES
    assert all(b.port == 0 and b.faults == Faults() for b in banks)
    assert settings.admin_port == 0 and settings.seed == DEFAULT_SEED


def test_example_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, EXAMPLE))
    banks = {b.code: b for b in settings.bank_configs()}
    assert list(banks)[-2:] == ["5000", "5001"] and len(banks) == 18
    assert banks["102"].port == 7302  # explicit port wins over base_port + i
    assert banks["103"].port == 7101 and banks["5001"].port == 7117
    assert banks["102"].faults == Faults(latency=0.02, error_rate=0.2, error_code="INTERNAL")
    assert banks["103"].faults == Faults(latency=0.02)
    window = (dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC), dt.datetime(2026, 1, 5, 11, tzinfo=dt.UTC))
    assert banks["5001"].faults == Faults(misbehaviour=Misbehaviour.SUMMARY_MISMATCH, outages=(window,))
    assert settings.admin_port == 7099
    population = settings.population()
    assert population.seed == 7 and len(population.people) == 30
    # The synthetic banks hold cards in the population.
    assert any(population.cards_at("5001", p.id_number) for p in population.people)


def test_explicit_codes_and_no_admin(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[fleet]\ncodes = ["308", "5042"]\nadmin = false\n'))
    assert [b.code for b in settings.bank_configs()] == ["308", "5042"]
    assert settings.admin_port is None


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[fleet]\ncount = 3\ncolour = 1\n", "unknown key 'colour'"),
        ("[fleet]\ncount = 0\n", "at least 1"),
        ('[fleet]\ncount = "3"\n', "count must be an integer"),
        ('[fleet]\ncodes = ["102", "102"]\n', "distinct"),
        ('[fleet]\ncodes = ["999"]\n', "unknown bank code"),
        ('[[banks]]\ncode = "5000"\n', "not in the fleet"),
        ('[[banks]]\ncode = "102"\nfaults = { misbehaviour = "LYING" }\n', "misbehaviour"),
        ('[[banks]]\ncode = "102"\nfaults = { error_rate = 2 }\n', "error_rate"),
        ('[[banks]]\ncode = "102"\nfaults = { jitter = 2 }\n', "jitter"),
        ('[[banks]]\ncode = "102"\nfaults = { outages = [{ start = 2026-01-05T10:00:00Z }] }\n', "outages"),
        ("[fleet\n", "banks.toml"),
    ],
)
def test_bad_files_are_refused_with_a_pointer(tmp_path: Path, text: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        load_settings(write(tmp_path, text))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"latency": -1.0}, "latency"),
        ({"latency_jitter": float("nan")}, "latency_jitter"),
        ({"error_rate": 1.01}, "error_rate"),
        ({"error_code": "OK"}, "error_code"),
        ({"error_code": "NOPE"}, "error_code"),
        ({"break_after_cards": -1}, "break_after_cards"),
        ({"stall_after_cards": 1.5}, "stall_after_cards"),
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"misbehaviour": "FULL_CARD_NUMBER"}, "misbehaviour"),
        ({"outages": ((dt.datetime(2026, 1, 2, tzinfo=dt.UTC), dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),)}, "outages"),
        ({"outages": ((dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)),)}, "outages"),
    ],
)
def test_faults_refuse_nonsense(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(FaultsError) as caught:
        Faults(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_outage_window_is_half_open() -> None:
    start = dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC)
    faults = Faults(outages=((start, start + dt.timedelta(hours=1)),))
    assert not faults.in_outage(start - dt.timedelta(microseconds=1))
    assert faults.in_outage(start)
    assert not faults.in_outage(start + dt.timedelta(hours=1))
    assert Faults(down=True).in_outage(start)


def test_overrides_ignore_unset_flags() -> None:
    settings = FleetSettings(base_port=7000).with_overrides(base_port=None, seed=5)
    assert settings.base_port == 7000 and settings.seed == 5
