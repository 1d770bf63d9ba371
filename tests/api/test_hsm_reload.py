"""Reloads with `[hsm]` configured (issue 24 item 1), against SoftHSM2.

`cardlookup-hub --config hub.toml` runs as an operator runs it, its consent
key and KEK on the token; the banks (bank_sim) trust three consent keys of
the token (the overlap). SIGHUP, then the admin Reload (`cardlookup-admin
reload`), each rotate the server certificate and the consent-signing key
without a restart: new connections get the new certificate, banks answer
consents signed with the new key. Before, every reload with `[hsm]` was
refused with UserAlreadyLoggedIn: the configuration file resolves the
module's path (a symlink on Debian) and the login table was keyed by the
path as written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from bank_sim.fleet import BankFleet, FleetConfig
from cardlookup.clock import SystemClock
from cardlookup.hub.v1 import resources_pb2 as hub_pb
from cardlookup.pki import PkiPaths, create_dev_pki
from cardlookup.population import Population
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from client.options import ClientOptions
from hub.admin import cli
from hub.core.config import HsmSettings, HubConfig, TlsFiles
from hub.keys.hsm import HsmSession, close_shared_sessions, shared_session
from tests.api.conftest import FAST
from tests.api.helpers import HubHarness
from tests.api.hsm_token import KEK_LABEL, MODULE, softhsm_token
from tests.api.test_rotation import health_check
from tests.hub.test_main import log_records

HUB = Path(sys.executable).parent / "cardlookup-hub"
BANKS = ["102", "103"]


def test_one_login_per_process_whatever_name_the_module_goes_by() -> None:
    """The same module by its symlink and by its real path is one library and
    one login: a session opened by one name does not refuse the other."""
    token = softhsm_token()
    real = dataclasses.replace(token, module=Path(os.path.realpath(MODULE)))
    assert real.module != token.module  # Debian installs the module behind a symlink
    held = HsmSession.open(token)  # logged in by the symlink's name
    try:
        close_shared_sessions()
        session = shared_session(real)  # the configuration file's (resolved) name
        assert session.kek(KEK_LABEL) is not None
        assert shared_session(real) is session  # reused, as by every reload
    finally:
        held.close()
        close_shared_sessions()


def token_consent_keys(count: int) -> list[tuple[str, str, object]]:
    """`count` new consent keys on the token: (label, key id, public key)."""
    session = HsmSession.open(softhsm_token(), rw=True)
    try:
        keys = []
        for _ in range(count):
            label = f"consent-{uuid.uuid4().hex[:8]}"
            keys.append((label, f"hub-consent-{label}", session.generate_consent_key(label)))
        return keys
    finally:
        session.close()


@pytest.fixture
async def trusting_fleet(
    pki: PkiPaths, population: Population
) -> AsyncIterator[tuple[BankFleet, list[tuple[str, str]]]]:
    """Banks on the wall clock (the hub runs in its own process) that trust
    three consent keys of the token; yields them and the keys' (label, id)."""
    keys = token_consent_keys(3)
    trusted = {key_id: public for _, key_id, public in keys}
    fleet = BankFleet(FleetConfig.default(pki, population, count=16, admin_port=None, trusted_consent_keys=trusted))  # type: ignore[arg-type]
    await fleet.start()
    try:
        yield fleet, [(label, key_id) for label, key_id, _ in keys]
    finally:
        await fleet.stop(grace=0)


async def events(log: Path, event: str, count: int, process: asyncio.subprocess.Process) -> list[dict[str, object]]:
    """The hub's log records up to its `count`-th `event`."""
    for _ in range(1200):
        records = log_records(log)
        if sum(1 for r in records if r.get("event") == event) >= count:
            return records
        assert process.returncode is None, records
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} {event} in {log_records(log)}")


async def journey(harness: HubHarness, target: str, ca: Path, pki: PkiPaths, index: int) -> None:
    """A new client trusting `ca` only: a user's lookup, every bank answering."""
    options = ClientOptions(target=target, ca=ca, cert=pki.cert("app-backend"), key=pki.key("app-backend"))
    async with AsyncCardLookupClient(options) as client:
        fresh = dataclasses.replace(harness, client=client)
        person = harness.population.eligible_people(harness.clock.now().date())[index]
        await fresh.enrol(person)
        ready = await fresh.ready_query(person, BANKS)
    assert {o.state for o in ready.bank_outcomes} == {hub_pb.BANK_OUTCOME_STATE_ANSWERED}


async def test_sighup_and_the_admin_reload_rotate_certificate_and_consent_key_with_hsm(
    pki: PkiPaths, population: Population, trusting_fleet: tuple[BankFleet, list[tuple[str, str]]], tmp_path: Path
) -> None:
    fleet, keys = trusting_fleet
    token = softhsm_token()
    ports = tmp_path / "hub.ports.json"  # both listen on port 0; the hub writes what it bound

    def config(step: int, api_tls: TlsFiles | None = None) -> HubConfig:
        label, key_id = keys[step]
        hsm = HsmSettings(
            MODULE, token.token_label, token.pin, consent_signing_key_label=label, key_encryption_key_label=KEK_LABEL
        )
        base = HubConfig.dev(
            pki,
            fleet.addresses,
            tmp_path,
            listen="127.0.0.1:0",
            admin_listen="127.0.0.1:0",
            timings=FAST,
            hsm=hsm,
            consent_key_id=key_id,
        )
        return dataclasses.replace(base, api_tls=api_tls) if api_tls else base

    path, log = tmp_path / "hub.toml", tmp_path / "hub.log"
    path.write_text(config(0).to_toml(), encoding="utf-8")
    with log.open("wb") as err:
        hub = await asyncio.create_subprocess_exec(
            str(HUB),
            "--config",
            str(path),
            "--port-file",
            str(ports),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
            env={**os.environ},
        )
    try:
        await events(log, "hub_serving", 1, hub)
        while not ports.exists():  # written whole, right after the start
            assert hub.returncode is None, log.read_text()
            await asyncio.sleep(0.02)
        bound = json.loads(ports.read_text())
        port, admin_port = bound["port"], bound["admin_port"]
        target = f"127.0.0.1:{port}"
        options = ClientOptions(
            target=f"127.0.0.1:{port}", ca=pki.ca_cert, cert=pki.cert("app-backend"), key=pki.key("app-backend")
        )
        async with AsyncCardLookupClient(options) as client:
            harness = HubHarness(
                client,
                None,  # type: ignore[arg-type]  # the hub is another process
                fleet,
                SystemClock(),  # type: ignore[arg-type]
                population,
                config(0).sms_outbox_path(),
                DevFaceProvider.from_file(pki.face_provider_key),
            )
            await journey(harness, target, pki.ca_cert, pki, 0)  # consents signed on the token, first key

            # SIGHUP: a server certificate of a new CA and the second consent key.
            second = create_dev_pki(tmp_path / "pki-2", [])
            bundle = tmp_path / "trusted-2.pem"
            bundle.write_bytes(pki.ca_cert.read_bytes() + second.ca_cert.read_bytes())
            api_2 = TlsFiles(bundle, second.cert("hub-server"), second.key("hub-server"))
            path.write_text(config(1, api_2).to_toml(), encoding="utf-8")
            hub.send_signal(signal.SIGHUP)
            records = await events(log, "hub_reloaded", 1, hub)
            assert not [r for r in records if r.get("event") == "reload_refused"], records
            changes = [str(r["change"]) for r in records if r.get("event") == "reload_applied"]
            assert any(c.startswith("api_tls:") for c in changes) and any(keys[1][1] in c for c in changes), changes
            assert await health_check(target, second.ca_cert, pki) == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError):
                await health_check(target, pki.ca_cert, pki)
            await journey(harness, target, second.ca_cert, pki, 1)  # banks verify the second key's consents

            # The admin Reload: a third CA's certificate and the third consent key.
            third = create_dev_pki(tmp_path / "pki-3", [])
            bundle_3 = tmp_path / "trusted-3.pem"
            bundle_3.write_bytes(pki.ca_cert.read_bytes() + third.ca_cert.read_bytes())
            api_3 = TlsFiles(bundle_3, third.cert("hub-server"), third.key("hub-server"))
            path.write_text(config(2, api_3).to_toml(), encoding="utf-8")
            argv = ["--target", f"127.0.0.1:{admin_port}", "--ca", str(second.ca_cert)]
            argv += ["--cert", str(pki.cert("operator")), "--key", str(pki.key("operator")), "reload"]
            await asyncio.to_thread(cli.main, argv)
            records = await events(log, "hub_reloaded", 2, hub)
            assert not [r for r in records if r.get("event") == "reload_refused"], records
            changes = [str(r["change"]) for r in records if r.get("event") == "reload_applied"]
            assert any(keys[2][1] in c for c in changes), changes
            assert await health_check(target, third.ca_cert, pki) == health_pb2.HealthCheckResponse.SERVING
            await journey(harness, target, third.ca_cert, pki, 2)  # the third key's consents
        hub.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(hub.wait(), 60) == 0
    finally:
        if hub.returncode is None:
            hub.kill()
            await hub.wait()
