"""A throwaway PostgreSQL server for tests, demos and benchmarks.

Starts Debian's `postgresql` binaries (`initdb`, `pg_ctl`) in a fresh
temporary directory, listening on a free loopback port only, and removes
everything on `stop()`. PostgreSQL refuses to run as root; when we are root
(CI is), the server runs as the `postgres` system user through `runuser`,
and the directory is handed to that user. Nothing needs to be running
before; `initdb` + start take about a second.

    with ThrowawayPostgres.start() as pg:
        url = pg.create_database("t1")   # postgresql://cardlookup@127.0.0.1:PORT/t1

`durable=False` turns fsync off: for tests, where the server's own crash
safety is not what is tested (a hub replica is killed, never the database).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER = "cardlookup"


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed."""


def find_bindir() -> Path:
    """The newest installed PostgreSQL server's bin directory."""
    env = os.environ.get("CARDLOOKUP_PG_BINDIR")
    candidates = [env] if env else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise PostgresUnavailable("PostgreSQL server binaries not found (apt-get install postgresql)")


def _version_key(path: str) -> int:
    try:
        return int(Path(path).parent.name)
    except ValueError:
        return 0


def free_port() -> int:
    """A loopback port free now. Only for PostgreSQL, which must be given its
    port on its command line (it cannot bind 0 and say which port it got):
    start it with ThrowawayPostgres.pg_ctl_start, which retries on another
    port when one was taken meanwhile. Other servers bind port 0."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ThrowawayPostgres:
    bindir: Path
    root: Path
    port: int
    _as_root: bool

    @classmethod
    def start(cls, *, durable: bool = False, max_connections: int = 200) -> ThrowawayPostgres:
        bindir = find_bindir()
        root = Path(tempfile.mkdtemp(prefix="cardlookup-pg-"))
        as_root = os.geteuid() == 0
        if as_root:
            shutil.chown(root, "postgres", "postgres")
        os.chmod(root, 0o700)
        pg = cls(bindir, root, 0, as_root)
        try:
            pg._run(
                "initdb", "-D", str(pg.data), "-U", USER, "-A", "trust", "-E", "UTF8", "--no-sync", "--locale=C.UTF-8"
            )
            opts = [
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={root}",
                f"-c max_connections={max_connections}",
                "-c shared_buffers=64MB",
            ]
            if not durable:
                opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
            pg.port = pg.pg_ctl_start(pg.data, root / "server.log", opts)
        except BaseException:
            pg.stop()
            raise
        return pg

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Creates an empty database; returns its URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name)
        return self.url(name)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pg_ctl_start(self, data: Path, log: Path, options: list[str], attempts: int = 5) -> int:
        """Starts the server of `data` on a free port; returns the port.
        PostgreSQL needs its port ahead (free_port): when another process took
        it before the server bound it, the start is tried on another one."""
        for attempt in range(attempts):
            port = free_port()
            seen = log.stat().st_size if log.exists() else 0
            command = " ".join([f"-p {port}", *options])
            try:
                self._run("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-o", command, "start")
                return port
            except subprocess.CalledProcessError:
                taken = log.exists() and b"could not bind" in log.read_bytes()[seen:]
                if not taken or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        for attempt in range(3):
            result = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root, check=False)
            if result.returncode == 0:
                return
            if attempt < 2 and tool == "createdb" and "is being accessed by other users" in result.stderr:
                time.sleep(0.1)  # template1 briefly busy while another database is created
                continue
            raise subprocess.CalledProcessError(result.returncode, cmd, result.stdout, result.stderr)


def main() -> None:
    """`python -m cardlookup.devpg`: runs a throwaway server until Ctrl-C."""
    with ThrowawayPostgres.start(durable=True) as pg:
        url = pg.create_database("cardlookup")
        print(url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
