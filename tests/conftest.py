"""Fixtures every test area shares: the development PKI and the population.

Area-specific fixtures (running banks, a running hub) live in the
conftest.py of tests/bank, tests/hub and tests/api.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.pki import PkiPaths, create_dev_pki
from cardlookup.population import Population
from tests import stores


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
