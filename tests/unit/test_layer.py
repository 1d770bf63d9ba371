"""The unit layer itself: its guard refuses what does not belong in it, and
every module it lists outside tests/unit exists."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import grpc
import pytest

from tests.conftest import UNIT_MODULES

TESTS = Path(__file__).resolve().parents[1]


def test_a_unit_test_may_start_no_process_server_channel_or_socket() -> None:
    with pytest.raises(AssertionError, match="unit-layer"):
        subprocess.run(["true"], check=False)
    with socket.socket() as s, pytest.raises(AssertionError, match="unit-layer"):
        s.bind(("127.0.0.1", 0))
    with pytest.raises(AssertionError, match="unit-layer"):
        grpc.aio.server()
    with pytest.raises(AssertionError, match="unit-layer"):
        grpc.aio.insecure_channel("127.0.0.1:9")


def test_every_listed_unit_module_exists() -> None:
    assert sorted(m for m in UNIT_MODULES if not (TESTS / m).is_file()) == []
