"""One owner for reload (issue 19 item 4): every key docs/configuration.md
documents is changed in a reload, one at a time, on a running hub. The
reload's answer must say "applied" or "takes effect after a restart" as the
page's "What a reload applies" table says for that key; every applied key
must really reach the component that uses it, and a restart-only key must
not reach any (the running configuration keeps its value).

The keys come from the page's tables (the same ones
tests/hub/test_config_docs.py checks against the code's readers), so a new
key without a documented reload behaviour, or an applied key with no check
of its effect, fails here. The hub re-reads its file (HubServer.reload, what
SIGHUP and the admin Reload run; tests/hub/test_main.py sends the signal).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bank_sim.fleet import BankFleet, FleetConfig
from cardlookup.admin.v1 import admin_service_pb2 as admin_pb
from cardlookup.admin.v1 import admin_service_pb2_grpc as admin_grpc
from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from client.aio import AsyncCardLookupClient
from client.devface import DevFaceProvider
from hub.core.config import ConfigError, HsmSettings, HubConfig
from hub.process.server import HubServer
from hub.runtime.reload_diff import describe
from tests import stores
from tests.api.conftest import FAST, client_options
from tests.api.helpers import HubHarness, closure_of, started_from_file
from tests.api.test_admin import admin_channel
from tests.hub.test_config_docs import DOC, ROOT, section, tables


def documented_keys() -> list[str]:
    """Every hub.toml key of the page, as `section.key` (top-level keys bare)."""
    keys: list[str] = []
    for intro, rows in tables(section("## Hub (`hub.toml`)")).items():
        if intro.startswith("Top"):
            keys += [k for k in rows if not re.search(rf"`\[\[?{k}\]\]?`", DOC)]
            continue
        for name in re.findall(r"`\[\[?(\w+)\]\]?`", intro):
            keys += [f"{name}.{k}" for k in rows]
    return keys


def reload_table() -> dict[str, str]:
    """{key or `section.*`: "applied" | "restart"} from "What a reload applies"."""
    verdicts: dict[str, str] = {}
    for line in section("## What a reload applies (issue 19)").splitlines():
        if line.startswith("| `"):
            names, verdict = (c.strip() for c in line.strip("|").split("|")[:2])
            for name in re.findall(r"`([^`]+)`", names):
                verdicts[name] = re.split(r"[ :(]", verdict, maxsplit=1)[0]
    return verdicts


def verdict_of(key: str, table: dict[str, str]) -> str:
    return table.get(key) or table[key.split(".")[0] + ".*"]


def test_every_documented_key_has_one_documented_reload_behaviour() -> None:
    table = reload_table()
    keys = documented_keys()
    assert len(keys) > 60, keys  # the page's tables were found
    for key in keys:
        assert verdict_of(key, table) in {"applied", "restart"}, key
    listed = {k for k in table if not k.endswith(".*")}
    assert listed <= set(keys), listed - set(keys)  # no stale names


# -- changing one key -----------------------------------------------------------


def _copy(path: Path, tmp: Path, name: str) -> Path:
    """The same file under a new path: a reload sees the setting changed."""
    target = tmp / f"{name}{path.suffix}"
    shutil.copy2(path, target)  # keeps the 0600 of key files
    return target


def _private_file(path: Path, content: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    return path


def _new_ed25519() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _nudged(value: Any) -> list[Any]:
    if isinstance(value, dt.timedelta):
        return [value + dt.timedelta(seconds=1), value / 2]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1]
    if isinstance(value, float):
        return [value / 2, value + 0.5]
    return [f"{value}-2"]


def candidates(config: HubConfig, key: str, tmp: Path) -> list[HubConfig]:
    """Configurations that differ from `config` in `key` only (first valid wins)."""
    head, _, name = key.rpartition(".")
    step = tmp / key.replace(".", "-")
    step.mkdir()
    if head in ("api_tls", "bank_tls"):
        tls = getattr(config, head)
        files = dataclasses.replace(tls, **{name: _copy(getattr(tls, name), step, name)})
        return [dataclasses.replace(config, **{head: files})]
    if head == "keys":
        value = getattr(config, name)
        if name == "consent_signing_key":  # the same bytes elsewhere are no change: a new key
            return [dataclasses.replace(config, **{name: _private_file(step / "consent.pem", _new_ed25519())})]
        if name == "key_encryption_key":  # a new KEK, the old one kept to open what it sealed
            kek = _private_file(step / "kek.hex", os.urandom(32).hex().encode())
            return [
                dataclasses.replace(
                    config,
                    key_encryption_key=kek,
                    key_encryption_key_id=f"{config.key_encryption_key_id}-new",
                    previous_key_encryption_keys={
                        **config.previous_key_encryption_keys,
                        config.key_encryption_key_id: config.key_encryption_key,
                    },
                )
            ]
        if isinstance(value, Path):
            return [dataclasses.replace(config, **{name: _copy(value, step, name)})]
        if name == "previous_key_encryption_keys":
            retired = _copy(config.key_encryption_key, step, "kek")
            return [dataclasses.replace(config, **{name: {**value, "kek-retired-9": retired}})]
        if name == "face_provider_keys":
            return [dataclasses.replace(config, **{name: {**value, "face-9": next(iter(value.values()))}})]
        return [dataclasses.replace(config, **{name: f"{value}-2"})]
    if head == "timings":
        return [
            dataclasses.replace(config, timings=dataclasses.replace(config.timings, **{name: v}))
            for v in _nudged(getattr(config.timings, name))
        ]
    if head == "tracing":
        value = getattr(config.tracing, name)
        values = ["http://127.0.0.1:4318"] if name == "otlp_endpoint" else _nudged(value)
        return [dataclasses.replace(config, tracing=dataclasses.replace(config.tracing, **{name: v})) for v in values]
    if head == "banks":
        first = config.banks[0]
        if name == "code":
            added = dataclasses.replace(first, code="999")
            return [dataclasses.replace(config, banks=(*config.banks, added))]
        changed: dict[str, Any] = {
            "address": {"address": "127.0.0.1:9", "addresses": ("127.0.0.1:9",)},
            "addresses": {"addresses": (first.address, "127.0.0.1:8")},
            "balancing": {"balancing": "pick_first"},
            "server_name": {"server_name": "other.bank.cardlookup.internal"},
            "max_concurrent": {"max_concurrent": first.max_concurrent + 3},
            "session": {"session": "auto"},
            "display_name": {"display_name": "另一家银行"},
            "english_name": {"english_name": "Another Bank"},
        }[name]
        return [dataclasses.replace(config, banks=(dataclasses.replace(first, **changed), *config.banks[1:]))]
    value = getattr(config, name)
    special: dict[str, Callable[[], Any]] = {
        "database": lambda: step / "other.db",
        "sms_outbox": lambda: step / "other-outbox.jsonl",
        "open_regions": lambda: frozenset(sorted(value)[1:]),
        "allowed_clients": lambda: value | {"other-backend.cardlookup.internal"},
        "admin_clients": lambda: frozenset({"nobody.cardlookup.internal"}),
    }
    if name in special:
        return [dataclasses.replace(config, **{name: special[name]()})]
    if name.endswith("listen"):
        return [dataclasses.replace(config, **{name: "127.0.0.1:9"})]
    return [dataclasses.replace(config, **{name: f"{value} (2)"})]


def value_of(config: HubConfig, key: str) -> Any:
    head, _, name = key.rpartition(".")
    if head == "banks":
        return [getattr(b, name) for b in config.banks]
    if head == "keys":
        return getattr(config, name)
    return getattr(getattr(config, head), name) if head else getattr(config, name)


# -- what "took effect" means, per applied key ----------------------------------

Probe = Callable[["Reloading", HubConfig], Awaitable[None]]


@dataclasses.dataclass
class Reloading:
    hub: HubHarness
    pki: PkiPaths
    user_id: str

    @property
    def server(self) -> HubServer:
        return self.hub.server

    @property
    def client(self) -> AsyncCardLookupClient:
        return self.hub.client


async def _banks_listed(r: Reloading, new: HubConfig) -> None:
    listed = await r.client.list_banks(r.user_id)
    assert listed.consent_text_version == new.consent_text_version
    assert listed.consent_text == new.consent_text
    assert [(b.bank_code, b.display_name, b.english_name) for b in listed.banks] == [
        (b.code, b.display_name, b.english_name) for b in new.banks
    ]


async def _admin_refuses(r: Reloading, new: HubConfig) -> None:
    async with admin_channel(r.pki, r.server.admin_port, "operator") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await admin_grpc.AdminServiceStub(channel).GetBankHealth(admin_pb.GetBankHealthRequest(), timeout=30)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def _lane_follows(r: Reloading, new: HubConfig) -> None:
    endpoint = new.banks[0]
    lane = r.server.fanout.lane(endpoint.code)  # made before the reloads
    assert lane.endpoint == endpoint
    dials = r.server.fanout.channels.dials
    lane.stub  # noqa: B018 - the channel for the lane's (new) endpoint
    assert r.server.fanout.channels.dials >= dials
    for _ in range(endpoint.max_concurrent):  # calls started now wait on the new limit
        assert not lane.limit.locked()
        await lane.limit.acquire()
    assert lane.limit.locked()
    for _ in range(endpoint.max_concurrent):
        lane.limit.release()
    assert r.server.fanout.channels.session(endpoint).max_concurrent == endpoint.max_concurrent


def _engine_reads(name: str) -> Probe:
    async def probe(r: Reloading, new: HubConfig) -> None:
        # The engine reads its configuration when it creates a query, a
        # report or a notice claim (QueryEngine.reconfigure).
        assert getattr(r.server.engine._config.timings, name) == getattr(new.timings, name)

    return probe


def _sweeper_reads(name: str) -> Probe:
    async def probe(r: Reloading, new: HubConfig) -> None:
        closure = closure_of(r.hub)
        assert getattr(closure._timings, name) == getattr(new.timings, name)  # read at each sweep
        if name == "sweep_interval":
            assert r.server.config.timings.sweep_interval == new.timings.sweep_interval  # the report sweeper's

    return probe


PROBES: dict[str, Probe] = {
    "consent_text_version": _banks_listed,
    "consent_text": _banks_listed,
    "admin_clients": _admin_refuses,
    "banks.code": _banks_listed,
    "banks.display_name": _banks_listed,
    "banks.english_name": _banks_listed,
    **{
        f"banks.{k}": _lane_follows
        for k in ("address", "addresses", "balancing", "server_name", "max_concurrent", "session")
    },
    **{f"timings.{k}": _engine_reads(k) for k in ("report_window", "report_retention", "cooldown", "notice_claim")},
    **{
        f"timings.{k}": _sweeper_reads(k)
        for k in (
            "sweep_interval",
            "lookup_history_retention",
            "access_event_retention",
            "card_case_retention",
            "card_record_retention",
            "abuse_counter_retention",
            "closure_record_retention",
            "sms_outbox_retention",
        )
    },
}
"""Applied keys whose effect this module checks on the running hub."""

_ROTATION = "tests/api/test_rotation.py::test_"
_KEK = _ROTATION + "reports_sealed_before_and_after_a_kek_rotation_both_open"
PROVEN_BY = {
    "api_tls.*": _ROTATION + "server_certificate_rotation_keeps_connected_clients_and_serves_the_new_one",
    "bank_tls.*": _ROTATION + "bank_channels_redial_with_a_rotated_client_certificate",
    "keys.consent_signing_key": _ROTATION + "consent_and_face_keys_rotate",
    "keys.consent_key_id": _ROTATION + "consent_and_face_keys_rotate",
    "keys.face_provider_keys": _ROTATION + "consent_and_face_keys_rotate",
    "keys.key_encryption_key": _KEK,
    "keys.key_encryption_key_id": _KEK,
    "keys.previous_key_encryption_keys": _KEK,
    "hsm.*": "tests/api/test_hsm.py",  # reloads with [hsm]: issue 24 item 1
}
"""Applied keys whose effect needs new certificates, sealed data or a token:
the end-to-end rotation tests named here prove it (they must exist)."""


def test_every_applied_key_has_a_check_of_its_effect() -> None:
    table = reload_table()
    for key in documented_keys():
        if verdict_of(key, table) != "applied":
            continue
        where = PROVEN_BY.get(key) or PROVEN_BY.get(key.split(".")[0] + ".*")
        assert key in PROBES or where is not None, f"{key}: applied at a reload, but nothing checks its effect"
        if key not in PROBES and where is not None:
            path, _, name = where.partition("::")
            assert (ROOT / path).is_file(), where
            assert not name or f"def {name}(" in (ROOT / path).read_text(encoding="utf-8"), where


@pytest.fixture
async def reloading(
    pki: PkiPaths, population: Population, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[Reloading]:
    fleet = BankFleet(FleetConfig.default(pki, population, count=3, clock=clock, admin_port=None))
    await fleet.start()
    config = HubConfig.dev(
        pki,
        fleet.addresses,
        tmp_path,
        listen="127.0.0.1:0",
        admin_listen="127.0.0.1:0",
        timings=FAST,
        database=stores.database_for(tmp_path),
    )
    server = await started_from_file(config, tmp_path / "hub.toml", clock)
    try:
        async with AsyncCardLookupClient(client_options(pki, server.port)) as client:
            outbox = tmp_path / "sms-outbox.jsonl"
            hub = HubHarness(
                client, server, fleet, clock, population, outbox, DevFaceProvider.from_file(pki.face_provider_key)
            )
            user = await hub.enrol(hub.eligible())
            server.fanout.lane(config.banks[0].code)  # a lane that exists before the reloads
            yield Reloading(hub, pki, user.user_id)
    finally:
        await server.stop(grace=0)
        await fleet.stop(grace=0)


@pytest.mark.both_stores  # max_concurrent once applied on PostgreSQL only (issue 19 item 4)
async def test_a_reload_of_each_documented_key_does_what_the_page_says(reloading: Reloading, tmp_path: Path) -> None:
    table = reload_table()
    server = reloading.server
    assert server.config_path is not None
    steps = tmp_path / "steps"
    steps.mkdir()
    for key in documented_keys():
        verdict = verdict_of(key, table)
        if key.startswith("hsm."):
            continue  # needs a token: checked below through the same comparison
        refusals = []
        for new in candidates(server.config, key, steps):
            server.config_path.write_text(new.to_toml(), encoding="utf-8")
            try:
                new = HubConfig.from_file(server.config_path)
                break
            except ConfigError as error:
                refusals.append(str(error))
        else:
            pytest.fail(f"{key}: no valid changed value: {refusals}")
        before = value_of(server.config, key)
        answer = await server.reload()
        assert answer, f"{key}: the reload saw no change"
        restart = [line for line in answer if line.endswith("takes effect after a restart")]
        if verdict == "applied":
            assert not restart, (key, answer)
            if key in PROBES:
                await PROBES[key](reloading, new)
        else:
            assert restart == answer, (key, answer)
            # ... and it really waits for the restart: the configuration the
            # components get keeps the running value (none applies it in part).
            assert value_of(server.config, key) == before != value_of(new, key), key
    # [hsm]: the reload's comparison (hub.runtime.reload_diff.describe) without a token.
    base = dataclasses.replace(server.config, hsm=HsmSettings(Path("libsofthsm2.so"), "cardlookup", "1234", "sign"))
    for key in (k for k in documented_keys() if k.startswith("hsm.")):
        name = key.split(".", 1)[1]
        changed = dataclasses.replace(base, hsm=dataclasses.replace(base.hsm, **{name: f"{getattr(base.hsm, name)}2"}))  # type: ignore[arg-type]
        applied, restart = describe(base, changed, {}, {})
        assert (applied and not restart) if verdict_of(key, table) == "applied" else (restart and not applied), key
