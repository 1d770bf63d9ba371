"""Resource names of the hub API (AIP-122), formatted in one place for the
hub, which serves them, and the client, which sends them back."""

from __future__ import annotations

WRITES_HEALTH_SERVICE = "cardlookup.hub.v1.writes"
"""The grpc.health.v1 service name under which a hub says whether it takes
writes: NOT_SERVING while its store refuses writes, while the API's service
name stays SERVING for reads (issue 19; docs/operations.md)."""


def user_name(user_id: str) -> str:
    return f"users/{user_id}"


def query_name(user_id: str, query_id: str) -> str:
    return f"users/{user_id}/queries/{query_id}"


def report_name(user_id: str, query_id: str) -> str:
    return f"{query_name(user_id, query_id)}/report"
