"""The one reason table (cardlookup.hub_reasons) against the contract and the
docs: every ErrorReason of error_reason.proto has one row with the status
code and the metadata its comment names, the docs table lists each row as
the table renders it, and the hub and the client derive their maps from it
(adding a reason is one row here, besides the proto)."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest

import client.errors
from cardlookup.hub.v1 import error_reason_pb2
from cardlookup.hub_reasons import BY_NAME, REASONS, REFUSED, RETRY_INFO, Category, Reason
from client.errors import BY_REASON, CATEGORIES, SENTENCES, CardLookupError
from hub.api.errors import FIELD_VIOLATION_REASONS, RETRY_INFO_REASONS, STATUS_OF_REASON

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "protos/cardlookup/hub/v1/error_reason.proto"
DOC = ROOT / "docs/app-backend.md"


def proto_reasons() -> dict[str, str]:
    """Each enum value of the proto -> the comment above it, as one line."""
    comments: list[str] = []
    found: dict[str, str] = {}
    in_enum = False
    for line in PROTO.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("enum ErrorReason"):
            in_enum, comments = True, []
        elif not in_enum:
            continue
        elif line.startswith("//"):
            comments.append(line.removeprefix("//").strip())
        elif match := re.fullmatch(r"([A-Z_0-9]+) = \d+;", line):
            found[match.group(1)] = " ".join(comments)
            comments = []
    found.pop("ERROR_REASON_UNSPECIFIED")
    return found


def test_every_reason_of_the_proto_has_one_row_in_its_order() -> None:
    in_proto = list(proto_reasons())
    assert [reason.name for reason in REASONS] == in_proto
    assert in_proto == [v.name for v in error_reason_pb2.ErrorReason.DESCRIPTOR.values if v.number]
    assert len(BY_NAME) == len(REASONS)


def test_status_code_and_metadata_are_those_the_proto_comment_names() -> None:
    for name, comment in proto_reasons().items():
        reason = BY_NAME[name]
        assert comment.split(".")[0] == reason.code.name, name
        named = set(re.findall(r'[Mm]etadata "(\w+)"', comment))
        assert named <= set(reason.metadata), (name, named)
        if reason.details == RETRY_INFO:
            assert "retry_time" in reason.metadata
        assert set(re.findall(r"\{(\w+)\}", reason.sentence)) <= set(reason.metadata), name


def test_the_docs_table_lists_each_row_as_the_table_renders_it() -> None:
    doc = DOC.read_text(encoding="utf-8")
    missing = [reason.doc_row() for reason in REASONS if reason.doc_row() not in doc.splitlines()]
    assert not missing, "docs/app-backend.md, 'Error reasons and what to do', lacks:\n" + "\n".join(missing)
    listed = re.findall(r"^\| `([A-Z_]+)` \| [A-Z_]+ \|", doc, re.M)
    assert sorted(listed) == sorted(BY_NAME)


def test_the_hub_and_the_client_derive_their_maps_from_the_table() -> None:
    assert {reason.name: reason.code for reason in REASONS} == STATUS_OF_REASON
    assert {"INVALID_FIELD"} == FIELD_VIOLATION_REASONS
    assert {"SMS_RATE_LIMITED", "COOLDOWN_ACTIVE"} == RETRY_INFO_REASONS
    assert {reason.name: reason.sentence for reason in REASONS} == SENTENCES
    bases = {base.__name__: base for base in CATEGORIES}
    for reason in REASONS:
        cls = BY_REASON[reason.name]
        assert cls.__name__ == reason.class_name and cls.reason_name == reason.name
        assert cls.__mro__[1] is bases[reason.category], f"{cls.__name__} is not under {reason.category}"


def test_a_reason_added_to_the_table_gets_a_client_class_under_its_category(monkeypatch: pytest.MonkeyPatch) -> None:
    new = Reason("KEY_NOT_KNOWN", grpc.StatusCode.FAILED_PRECONDITION, REFUSED, (), "wait", "The key is not known.")
    monkeypatch.setattr(client.errors, "REASONS", (*REASONS, new))
    try:
        classes = client.errors._reason_classes()
        made = classes["KEY_NOT_KNOWN"]
        assert made.__name__ == "KeyNotKnown" and made.__module__ == "client.errors"
        assert issubclass(made, client.errors.Refused) and issubclass(made, CardLookupError)
        assert made(grpc.StatusCode.FAILED_PRECONDITION, "KEY_NOT_KNOWN", "m", {}).reason_name == "KEY_NOT_KNOWN"
        assert classes["COOLDOWN_ACTIVE"] is client.errors.CooldownActive  # the written classes are kept
    finally:
        vars(client.errors).pop("KeyNotKnown", None)


def test_categories_are_the_client_base_classes() -> None:
    assert [category.value for category in Category] == [base.__name__ for base in CATEGORIES]
