"""Addresses for tests that need a port nobody answers on.

`dead_address()` holds a bound, never listening socket for as long as the
`with` block runs: a connection to it is refused at once, and no other
server can take the port meanwhile (a port picked free and then closed
could be taken by the next test's server, which would then answer).
Servers under test bind port 0 and report the port they got instead.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator


@contextlib.contextmanager
def dead_address(host: str = "127.0.0.1") -> Iterator[str]:
    with socket.socket() as held:
        held.bind((host, 0))
        yield f"{host}:{held.getsockname()[1]}"
