"""Reading a hub configuration file (hub.toml) outside the hub: the file's
TOML, and the one key tools need before the rest of the file is usable.
The hub's loader (hub.core.config) reads the file through `read_toml` too and
validates `open_regions` with cardlookup.regions.parse_open_regions."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from cardlookup.regions import DEFAULT_OPEN_REGIONS, parse_open_regions


def read_toml(path: Path) -> dict[str, Any]:
    """The file's TOML; ValueError naming the file when it cannot be read."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"{path}: cannot read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None


def open_regions_from_file(path: Path) -> frozenset[str]:
    """Only the open regions (R2) of a hub.toml, validated exactly as the hub
    reads them, for tools that need them before the rest of the file is
    usable (e.g. `cardlookup-population --eligible --hub-config` before the
    banks are started and listed). ValueError naming the file and the key."""
    raw = read_toml(path)
    try:
        return parse_open_regions(raw.get("open_regions", sorted(DEFAULT_OPEN_REGIONS)))
    except ValueError as error:
        raise ValueError(f"{path}: open_regions: {error}") from None
