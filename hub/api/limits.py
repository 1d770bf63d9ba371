"""The hub API's message-size limits, in each direction (R17 hardening).

Requests: the hub decodes at most MAX_REQUEST_BYTES of one request message
itself and refuses a larger one with RESOURCE_EXHAUSTED, reason
MESSAGE_TOO_LARGE, metadata "limit". gRPC core buffers a message before the
hub sees it, so core keeps a hard ceiling above that (CORE_RECEIVE_CEILING):
only a message beyond the ceiling is refused by core itself, with
RESOURCE_EXHAUSTED and no ErrorInfo (the hub cannot add one there). No valid
request comes near either limit: the largest, a CreateQuery naming 1,000
banks, is about 20 KB.

Responses: a response larger than MAX_RESPONSE_BYTES is not sent; the call
ends with RESOURCE_EXHAUSTED, reason RESPONSE_TOO_LARGE, metadata "limit"
(ask for a smaller page). It equals gRPC's default receive limit, so a
client with default channel options always receives what the hub sends.
"""

from __future__ import annotations

MAX_REQUEST_BYTES = 1024 * 1024
"""Largest request message the hub decodes (1 MiB)."""
CORE_RECEIVE_CEILING = 4 * 1024 * 1024
"""gRPC core's receive limit on the API port (grpc.max_receive_message_length):
above MAX_REQUEST_BYTES so that the hub, not core, refuses most oversized
requests, and with a reason."""
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""Largest response message the hub sends (gRPC's default client receive limit)."""

SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", CORE_RECEIVE_CEILING),
    ("grpc.max_send_message_length", MAX_RESPONSE_BYTES),
)
"""Channel options of the API server for these limits."""
