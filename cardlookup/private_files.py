"""Files private to their owner from the first byte (R14): mode 0600 is
given by the open() call that creates the file, never by a later chmod (a
reader could open it in between).

One helper for every file that holds secrets or personal data: generated
private keys (cardlookup.pki), the hub's SQLite database with its WAL and
shared-memory files (hub.store.db), the SMS outbox (hub.core.notify), reports and
logs written to files.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

PRIVATE_MODE = 0o600
DIRECTORY_MODE = 0o700
PUBLIC_MODE = 0o644
"""Certificates and public keys: anyone may read, only the owner writes,
whatever the umask (issue 17: under umask 000 a CA certificate that anyone
could swap would make the whole PKI anyone's)."""


def private_dir(path: Path | str) -> Path:
    """Creates `path` and every missing parent with mode 0700 (never the
    umask's default: `Path.mkdir(parents=True)` gives parents 0777 & ~umask).
    Directories that exist are left as they are."""
    path = Path(path)
    missing = []
    at = path
    while not at.exists():
        missing.append(at)
        if at.parent == at:
            break
        at = at.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIRECTORY_MODE)
        except FileExistsError:
            continue  # made meanwhile by another process: its own mode stands
        os.chmod(directory, DIRECTORY_MODE)  # mkdir's mode went through the umask
    return path


def write_public(path: Path | str, data: bytes) -> None:
    """Writes a public file atomically, mode 0644 from the first byte
    whatever the umask, in a 0700 directory if it has to make one."""
    path = Path(path)
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), PUBLIC_MODE)
    try:
        os.fchmod(fd, PUBLIC_MODE)  # the umask may have removed or (000) kept bits: exactly 0644
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _open(path: Path, flags: int) -> int:
    private_dir(path.parent)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), PRIVATE_MODE)
    try:
        # An existing file keeps its old mode through O_CREAT: tighten it.
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, PRIVATE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def ensure_private(path: Path | str) -> None:
    """Creates `path` empty with mode 0600 if it does not exist, or makes an
    existing one 0600 (before anything opens it for writing)."""
    os.close(_open(Path(path), os.O_WRONLY | os.O_CREAT))


@contextlib.contextmanager
def open_private_append(path: Path | str, encoding: str = "utf-8") -> Iterator[IO[str]]:
    """A text file opened for appending, created 0600."""
    fd = _open(Path(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    with os.fdopen(fd, "a", encoding=encoding) as f:
        yield f


def write_private(path: Path | str, data: bytes) -> None:
    """Writes `data` to `path` atomically (a temporary file renamed over it),
    the temporary created 0600 with O_EXCL so no one else's file is reused."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = _open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


__all__ = [
    "DIRECTORY_MODE",
    "PRIVATE_MODE",
    "PUBLIC_MODE",
    "ensure_private",
    "open_private_append",
    "private_dir",
    "write_private",
    "write_public",
]
