"""The associated data each sealed item of a query is bound to: an item
opened under another query's (or bank's) context fails to open."""

from __future__ import annotations


def subject_context(query_id: str) -> bytes:
    return b"subject:" + query_id.encode()


def answer_context(query_id: str, bank_code: str) -> bytes:
    return f"answer:{query_id}:{bank_code}".encode()


def report_context(query_id: str) -> bytes:
    return b"report:" + query_id.encode()
