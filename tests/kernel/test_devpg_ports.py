"""The throwaway PostgreSQL needs its port ahead (cardlookup.devpg.free_port):
a port taken between the pick and the server's bind is retried on another."""

from __future__ import annotations

import socket

import pytest

from cardlookup import devpg


def test_a_port_taken_before_postgres_binds_it_is_retried_on_another(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as rival:
        rival.bind(("127.0.0.1", 0))
        rival.listen()
        taken = rival.getsockname()[1]
        picks = iter([taken])
        real = devpg.free_port
        monkeypatch.setattr(devpg, "free_port", lambda: next(picks, None) or real())
        pg = devpg.ThrowawayPostgres.start()
        try:
            assert pg.port != taken
            assert b"could not bind" in (pg.root / "server.log").read_bytes()  # the first try met the rival
            pg.create_database("reachable")  # and the server answers on the port it reports
        finally:
            pg.stop()
