"""hub package."""

from hub.core.logging import quiet_grpc_core

# Before any hub module loads gRPC: gRPC core's plain-text lines would break
# the hub's one-JSON-object-per-line log (hub.core.logging).
quiet_grpc_core()
