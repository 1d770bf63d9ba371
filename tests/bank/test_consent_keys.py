"""Simulated banks trust a configurable set of the hub's consent keys (issue
24 item 4), so a consent-key rotation overlap can be rehearsed on the
simulator: `--consent-key KEY_ID=PEM` (repeatable, the starter kit's form)
and `[fleet] consent_keys` in banks.toml. During an overlap consents signed
under either key are accepted; a key outside the set is refused
(PERMISSION_DENIED, CONSENT_UNKNOWN_KEY), as a real bank would."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bank_sim.config_file import ConfigError, load_settings
from bank_sim.fleet import BankFleet, FleetConfig
from bank_sim.main import parse_args, settings_from
from cardlookup.clock import SystemClock
from cardlookup.pki import CONSENT_KEY_ID, PkiPaths, load_ed25519_private
from cardlookup.population import Person, Population
from cardlookup.private_files import write_public
from cardlookup.rpc_errors import error_info_of
from tests.bank.caller import BankCaller, bank_caller
from tests.bank.test_cli import start_cli, stop_cli

NEW_ID = "hub-consent-2"


def public_file(key: Ed25519PrivateKey, path: Path) -> Path:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    write_public(path, pem)
    return path


def listed_person(population: Population, code: str) -> Person:
    return next(p for p in population.people if population.expected_answer(code, p.id_number).listed)


async def check_overlap(
    caller: BankCaller, code: str, person: Person, old: Ed25519PrivateKey, new: Ed25519PrivateKey
) -> None:
    """Consents under the old and the new key are answered; a third key is refused."""
    now = SystemClock().now()
    for signed_by in ((CONSENT_KEY_ID, old), (NEW_ID, new)):
        request = caller.request(code, person.full_name, person.id_number, now=now, signed_by=signed_by)
        assert (await caller.list_cards(code, request)).summary is not None, signed_by[0]
    stranger = caller.request(
        code, person.full_name, person.id_number, now=now, signed_by=("hub-consent-3", Ed25519PrivateKey.generate())
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await caller.list_cards(code, stranger)
    info = error_info_of(caught.value)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert info is not None and info.reason == "CONSENT_UNKNOWN_KEY"


async def test_the_flag_trusts_two_keys_during_an_overlap(
    pki: PkiPaths, population: Population, tmp_path: Path
) -> None:
    new = Ed25519PrivateKey.generate()
    new_pub = public_file(new, tmp_path / "consent-2.pub")
    out = tmp_path / "addresses.json"
    proc, ready = await start_cli(
        "--pki",
        str(pki.root),
        "--count",
        "1",
        "--no-admin",
        "--consent-key",
        f"{CONSENT_KEY_ID}={pki.consent_public_key}",
        "--consent-key",
        f"{NEW_ID}={new_pub}",
        "--addresses-out",
        str(out),
    )
    try:
        assert ready.startswith("bank_sim ready: 1 banks")
        addresses = json.loads(out.read_text())["banks"]
        code = next(iter(addresses))
        async with bank_caller(pki, addresses) as caller:
            old = load_ed25519_private(pki.consent_signing_key)
            await check_overlap(caller, code, listed_person(population, code), old, new)
    finally:
        assert "bank_sim stopped" in await stop_cli(proc)


async def test_the_fleet_file_trusts_its_consent_keys(pki: PkiPaths, population: Population, tmp_path: Path) -> None:
    new = Ed25519PrivateKey.generate()
    public_file(new, tmp_path / "consent-2.pub")
    config = tmp_path / "banks.toml"
    config.write_text(
        f'[fleet]\ncount = 1\nconsent_keys = {{ "{CONSENT_KEY_ID}" = "{pki.consent_public_key}", '
        f'"{NEW_ID}" = "consent-2.pub" }}\n',  # relative to the file
        encoding="utf-8",
    )
    settings = load_settings(config)
    fleet_config = FleetConfig(
        pki=pki,
        banks=settings.bank_configs(),
        population=population,
        admin_port=None,
        trusted_consent_keys=settings.trusted_consent_keys(),
    )
    async with BankFleet(fleet_config) as fleet, bank_caller(pki, fleet.addresses) as caller:
        code = next(iter(fleet.addresses))
        await check_overlap(
            caller, code, listed_person(population, code), load_ed25519_private(pki.consent_signing_key), new
        )


def test_flags_replace_the_files_keys_and_bad_entries_are_one_line(tmp_path: Path) -> None:
    config = tmp_path / "banks.toml"
    config.write_text('[fleet]\nconsent_keys = { "a" = "a.pub" }\n', encoding="utf-8")
    assert load_settings(config).consent_keys == {"a": tmp_path / "a.pub"}
    flagged = settings_from(parse_args(["--config", str(config), "--consent-key", "b=b.pub"]))
    assert flagged.consent_keys == {"b": Path("b.pub")}
    assert settings_from(parse_args([])).consent_keys is None  # the default: the PKI's key
    with pytest.raises(ConfigError, match="KEY_ID=PEM"):
        settings_from(parse_args(["--consent-key", "no-file"]))
    with pytest.raises(ConfigError, match=r"consent key a: .*a\.pub is not a readable Ed25519 public key"):
        load_settings(config).trusted_consent_keys()
    config.write_text("[fleet]\nconsent_keys = []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="consent_keys must be a table"):
        load_settings(config)
