"""What a service installer gets from the hub (HubServer.start builds it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from cardlookup.clock import Clock
from hub.core.config import HubConfig
from hub.engine import QueryEngine
from hub.keys.crypto import HubKeys
from hub.store.db import Database
from hub.telemetry.metrics import HubMetrics


@dataclass
class HubContext:
    """What an installer gets."""

    config: HubConfig
    clock: Clock
    db: Database
    keys: HubKeys
    engine: QueryEngine
    server: grpc.aio.Server
    service_names: list[str] = field(default_factory=list)
    """Full names of the services an installer added (reflection + health)."""
    background: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Long-running coroutines the hub runs and cancels on stop."""
    metrics: HubMetrics = field(default_factory=HubMetrics)
    """The process's metrics (hub.telemetry.metrics); installers wrap what they own."""
    reloaders: list[Callable[[HubConfig], list[str]]] = field(default_factory=list)
    """Called with the new configuration on every reload (SIGHUP, admin
    Reload); each applies what it owns and returns what changed."""


ServiceInstaller = Callable[[HubContext], Awaitable[None]]
