"""Fixtures every test area shares: the development PKI and the population.

Area-specific fixtures (running banks, a running hub) live in the
conftest.py of tests/bank, tests/hub and tests/api.

The unit layer (`pytest -m unit`): every test under tests/unit and the
modules named in UNIT_MODULES carry the `unit` marker; they may start no
subprocess, gRPC server or channel and open no socket (the guard below
fails a test, or a function-scoped fixture, that does; SQLite files are
fine), so the layer runs in well under a minute.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.pki import PkiPaths, create_dev_pki
from cardlookup.population import Population
from tests import stores

UNIT_MODULES: frozenset[str] = frozenset(
    {
        "api/test_watch_conversion.py",
        "bank/test_config_file.py",
        "client/test_report_render.py",
        "hub/test_config_docs.py",
        "hub/test_config_file.py",
        "hub/test_data_inventory.py",
        "hub/test_doc_facts.py",
        "hub/test_fanout_policies.py",
        "hub/test_operations_doc.py",
        "hub/test_passwords.py",
        "hub/test_report_and_logging.py",
        "hub/test_user_sealing.py",
        "hub/test_validation.py",
        "kernel/test_checksums.py",
        "kernel/test_consent.py",
        "kernel/test_crypto.py",
        "kernel/test_kek_ids.py",
        "kernel/test_pki.py",
        "kernel/test_population.py",
        "kernel/test_private_files.py",
        "sealing/test_security_doc.py",
    }
)
"""Test modules outside tests/unit that belong to the unit layer (paths
relative to tests/): no subprocess, server, port or database server."""

_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        relative = item.path.relative_to(_TESTS).as_posix() if item.path.is_relative_to(_TESTS) else ""
        if relative.startswith("unit/") or relative in UNIT_MODULES:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def _unit_layer_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `unit` test that starts a process, a gRPC server or channel, or
    touches the network through `socket`, fails."""
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a unit-layer test started a subprocess or used the network; it belongs elsewhere")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr(socket.socket, "bind", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    for module in (grpc, grpc.aio):  # gRPC opens its sockets in C, not through `socket`
        for name in ("server", "secure_channel", "insecure_channel"):
            monkeypatch.setattr(module, name, refuse)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    """A development PKI for the 16 default banks, made once per test run."""
    return create_dev_pki(tmp_path_factory.mktemp("pki"), DEFAULT_BANK_CODES)


@pytest.fixture(scope="session")
def population() -> Population:
    """The default synthetic population (seeded): the tests' ground truth."""
    return Population()


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `both_stores` run on SQLite and on PostgreSQL (issue 8)."""
    if metafunc.definition.get_closest_marker("both_stores") is not None:
        metafunc.parametrize("store_backend", stores.BACKENDS, indirect=True)


@pytest.fixture(autouse=True)
def store_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The store engine of this test's hubs: a fresh PostgreSQL database per
    test for `postgresql`, the hub's own SQLite file otherwise."""
    backend = getattr(request, "param", "sqlite")
    stores.current = stores.new_database() if backend == "postgresql" else None
    try:
        yield backend
    finally:
        stores.current = None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stores.stop()
