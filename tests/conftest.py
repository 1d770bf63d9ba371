"""Fixtures every test area shares: the development PKI and the population.

Area-specific fixtures (running banks, a running hub) live in the
conftest.py of tests/bank, tests/hub and tests/api.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cardlookup.banks import DEFAULT_BANK_CODES
from cardlookup.pki import PkiPaths, create_dev_pki
from cardlookup.population import Population


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
