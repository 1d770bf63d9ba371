"""The hub's grpc.health.v1 service (issue 19): per-service statuses and a
stop that does not wait for health watchers.

Service names (docs/operations.md, "Health, per service"): "" and the API's
own service names say whether the replica answers calls (reads at least);
WRITES_HEALTH_SERVICE whether it can also store. hub.process.server decides the
statuses; this module serves them.
"""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]

from cardlookup.resource_names import WRITES_HEALTH_SERVICE as WRITES_HEALTH_SERVICE  # re-exported


class StoppingHealthServicer(health_aio.HealthServicer):
    """grpc's asyncio health servicer whose Watch streams end once the hub
    stops, after saying NOT_SERVING: an open health watch (every client
    channel keeps one) would otherwise hold the server's stop until its
    grace runs out. Check and the statuses are the library's."""

    def __init__(self) -> None:
        super().__init__()
        self._statuses: dict[str, health_pb2.HealthCheckResponse.ServingStatus] = {
            "": health_pb2.HealthCheckResponse.SERVING
        }
        self._changed = asyncio.Condition()
        self._stopped = False

    async def set(self, service: str, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        await super().set(service, status)
        if not self._stopped:
            await self._publish(service, status)

    async def enter_graceful_shutdown(self) -> None:
        await super().enter_graceful_shutdown()
        self._stopped = True
        for service in list(self._statuses):
            await self._publish(service, health_pb2.HealthCheckResponse.NOT_SERVING)

    async def _publish(self, service: str, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        async with self._changed:
            self._statuses[service] = status
            self._changed.notify_all()

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext) -> None:
        last = None
        while True:
            async with self._changed:
                status = self._statuses.get(request.service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
                if status == last and not self._stopped:
                    await self._changed.wait()
                    continue
            if status != last:
                await context.write(health_pb2.HealthCheckResponse(status=status))
                last = status
            if self._stopped:
                return
