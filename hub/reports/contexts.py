"""The associated data each sealed item of a query is bound to: an item
opened under another query's (or bank's) context fails to open.

Here, below the engine, so that everything that seals or opens these items
uses the one definition: the engine (hub.engine: the subject, each answer,
the report), the sealing on arrival (hub.reports.sealing: an answer the
envelope sealed across an upgrade), the report keys (hub.identity.report_keys)
and the admin's re-wrap (hub.admin.rewrap)."""

from __future__ import annotations


def subject_context(query_id: str) -> bytes:
    """The query's sealed subject (the person's identity the bank requests carry)."""
    return b"subject:" + query_id.encode()


def answer_context(query_id: str, bank_code: str) -> bytes:
    """A bank's answer sealed with the hub's envelope."""
    return f"answer:{query_id}:{bank_code}".encode()


def report_context(query_id: str) -> bytes:
    """The query's report (envelope- or user-sealed)."""
    return b"report:" + query_id.encode()
