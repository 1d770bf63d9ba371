"""A PostgreSQL failover on one machine, for tests (issue 21).

`PrimaryStandby`: a throwaway primary (cardlookup.devpg) and a streaming
standby made from it with `pg_basebackup -R`, both run as the `postgres`
user when we are root. `kill_primary()` SIGKILLs the primary's postmaster;
`promote()` makes the standby a primary.

`Forwarder`: a loopback TCP forwarder playing the database's virtual
address. `move(port)` sends new connections to `port` and black-holes the
old ones: their bytes are read and dropped, nothing is answered, and no FIN
or RST is sent, which is what a client sees when the old primary's machine
vanishes and its address moves to the standby. With `delay`, it plays a
slow link: a connection reaches its target `delay` seconds after it was
accepted (the hub's fan-out tests put one in front of a bank).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess

from cardlookup.devpg import USER, ThrowawayPostgres


class PrimaryStandby:
    def __init__(self) -> None:
        self.primary = ThrowawayPostgres.start(durable=False)
        self.standby_port = 0  # pg_ctl_start picks it
        self.standby_data = self.primary.root / "standby"
        try:
            self._start_standby()
        except BaseException:
            self.stop()
            raise

    def _start_standby(self) -> None:
        pg = self.primary
        self.standby_data.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(self.standby_data, "postgres", "postgres")
        pg._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(pg.port), "-U", USER,
            "-D", str(self.standby_data), "-R", "-X", "stream", "--no-sync",
        )  # fmt: skip
        opts = [
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={pg.root}",
            "-c fsync=off",
            "-c hot_standby=on",
            "-c max_connections=200",
        ]
        self.standby_port = pg.pg_ctl_start(self.standby_data, pg.root / "standby.log", opts)

    def create_database(self, name: str) -> str:
        """Creates it on the primary (it streams to the standby); returns the
        database's name."""
        self.primary.create_database(name)
        return name

    def kill_primary(self) -> None:
        """SIGKILL to the primary's postmaster: no shutdown, no goodbye."""
        pid = int((self.primary.data / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, signal.SIGKILL)

    def promote(self) -> None:
        self.primary._run("pg_ctl", "-D", str(self.standby_data), "-w", "promote")

    def stop(self) -> None:
        if (self.standby_data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self.primary._run("pg_ctl", "-D", str(self.standby_data), "-m", "immediate", "-w", "stop")
        self.primary.stop()


class Forwarder:
    """Loopback TCP forwarder: 127.0.0.1:<port> -> 127.0.0.1:<target>."""

    def __init__(self, target: int, delay: float = 0.0) -> None:
        self.target = target
        self.delay = delay
        self.port = 0
        self._server: asyncio.Server | None = None
        self._routes: list[_Route] = []
        self._holed: list[_Route] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def move(self, target: int) -> int:
        """New connections go to `target`; every current one is black-holed.
        Returns how many were."""
        self.target = target
        old, self._routes = self._routes, []
        for route in old:
            route.black_hole()
        self._holed += old
        return len(old)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for route in self._routes + self._holed:
            route.close()
        self._routes, self._holed = [], []

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.sleep(self.delay)  # what the client sends meanwhile waits in the socket
        except asyncio.CancelledError:  # closed meanwhile
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        route = _Route(writer, up_writer)
        self._routes.append(route)
        await asyncio.gather(route.pump(reader, up_writer), route.pump(up_reader, writer))
        route.close()
        with contextlib.suppress(ValueError):
            self._routes.remove(route)


class _Route:
    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self._writers = (client, upstream)
        self.holed = False
        self._closed = asyncio.Event()

    async def pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await source.read(65536):
                if self.holed:
                    continue  # swallowed: the peer is gone, nothing comes back
                sink.write(data)
                await sink.drain()
        if self.holed:
            await self._closed.wait()  # the client's side stays open and silent
        with contextlib.suppress(OSError):
            sink.close()

    def black_hole(self) -> None:
        self.holed = True
        # The old server side is cut for good (the machine is gone); the
        # client's socket stays open: no FIN, no RST reaches it.
        self._writers[1].transport.abort()

    def close(self) -> None:
        self._closed.set()
        for w in self._writers:
            w.transport.abort()


def url(port: int, database: str) -> str:
    return f"postgresql://{USER}@127.0.0.1:{port}/{database}"
