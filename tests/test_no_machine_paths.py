"""Issue 18 item 4: no tracked file names an absolute path of a developer's
machine (a home directory, a workstation's checkout or virtualenv): a
reader on another machine could not run it. Commands in docs and scripts use
paths relative to the clone (`.venv/bin/python`, `pki/`, `var/`)."""

from __future__ import annotations

import re

from tests.test_repository import ROOT, tracked_files

# Character classes keep this file from matching its own patterns.
MACHINE_PATH = re.compile(
    rb"(?<![\w.])(?:/hom[e]/|/User[s]/|/wor[k]/|/roo[t]/|/var/folder[s]/|/mn[t]/[a-z]/)[A-Za-z0-9._-]"
    rb"|\b[A-Za-z]:\\\\?User[s]\\"
)


def machine_paths(data: bytes) -> list[str]:
    return [m.group(0).decode(errors="replace") for m in MACHINE_PATH.finditer(data)]


def test_the_pattern_finds_what_it_should() -> None:
    found = machine_paths(
        b"run /ho" + b"me/alice/venv/bin/python and /wo" + b"rk/venv/bin/x, C:" + b"\\Users\\bob\\x; /tmp/ok ./rel"
    )
    assert len(found) == 3, found
    assert machine_paths(b"`.venv/bin/python -m bench.fanout`, pki/ca.pem, /etc/ssl, /tmp/curve.json") == []


def test_no_tracked_file_holds_an_absolute_path_of_a_developers_machine() -> None:
    offenders = []
    for path in tracked_files():
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary (images, the released contract image)
            continue
        offenders += [f"{path.relative_to(ROOT)}: {hit}" for hit in machine_paths(data)]
    assert offenders == []
