"""Parsing the resource names of the hub API (AIP-122): users/{user_id},
users/{user_id}/queries/{query_id}, .../report. The formatters live in
cardlookup.resource_names, shared with the client; they are re-exported here."""

from __future__ import annotations

from cardlookup.resource_names import query_name, report_name, user_name
from hub.identity import validation
from hub.identity.errors import invalid

__all__ = ["parse_query", "parse_user", "query_name", "report_name", "user_name"]


def parse_user(name: str, field: str = "parent") -> str:
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "users":
        raise invalid(field, f"{field} must be users/{{user_id}}")
    return validation.app_id(parts[1], field)


def parse_query(name: str, field: str = "name", report: bool = False) -> tuple[str, str]:
    """(user_id, query_id) of a query name, or of its report's name."""
    parts = name.split("/")
    want = 5 if report else 4
    if len(parts) != want or parts[0] != "users" or parts[2] != "queries" or (report and parts[4] != "report"):
        shape = "users/{user_id}/queries/{query_id}" + ("/report" if report else "")
        raise invalid(field, f"{field} must be {shape}")
    validation.app_id(parts[1], field)
    return parts[1], validation.query_id(parts[3])
