"""Changing a logger's level at run time (the admin service's SetLogLevel).

A stand-in of one function until hub.logging (owned by the logging work of
issue 11 item 2) offers `set_level` itself; then this module can delegate or
go away.
"""

from __future__ import annotations

import logging

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def set_level(name: str, level: str) -> str:
    """Sets logger `name` (under "hub") to `level`; returns its previous
    effective level. ValueError for another logger or level."""
    if name != "hub" and not name.startswith("hub."):
        raise ValueError("only the hub's loggers (hub, hub.*) can be changed")
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}")
    logger = logging.getLogger(name)
    previous = logging.getLevelName(logger.getEffectiveLevel())
    logger.setLevel(level)
    return str(previous)
