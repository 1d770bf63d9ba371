"""Fixtures of the hub engine tests."""

from __future__ import annotations

import datetime as dt

import pytest

from cardlookup.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    """Shared by the fleet and the hub, started at the real time so that the
    consents the hub signs are valid for the banks."""
    return ManualClock(dt.datetime.now(dt.UTC))
