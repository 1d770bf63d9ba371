"""W3C trace context from the app backend to the hub (issue 19 item 5).

When the app backend uses OpenTelemetry and calls the hub inside one of its
spans, every call carries that span's `traceparent` (and `tracestate`) as
gRPC metadata: the hub's span for the call becomes its child, and the
trace goes on to every bank call (docs/operations.md, "Tracing"). Without a
current span (or without OpenTelemetry configured) nothing is added. Uses
the OpenTelemetry API's global propagator (W3C trace context by default).
"""

from __future__ import annotations

from opentelemetry import propagate


def trace_metadata() -> tuple[tuple[str, str], ...]:
    """The current trace context as gRPC metadata; empty outside a span."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())
