"""The kit's test bench: the kit's own server (build_server) on a local
port, without TLS, over every data source in bank_kit/sources/ filled with
the test customers of example_records.json. The caller check and mutual TLS
need certificates: the conformance suite checks them (README.md, "Go-live
gate")."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from bank_kit.audit import AuditLog
from bank_kit.bank import Desk
from bank_kit.cases import CaseBook
from bank_kit.consent import ConsentVerifier, subject_digest
from bank_kit.contract import card_directory_pb2 as pb
from bank_kit.contract import card_directory_pb2_grpc as pb_grpc
from bank_kit.records import DataSource
from bank_kit.server import build_server
from bank_kit.sources import discover

EXAMPLE = Path(__file__).resolve().parents[1] / "example_records.json"
BANK_CODE = "999"
KEY_ID = "kit-test-key"
SIGNER = Ed25519PrivateKey.generate()
SECRET = b"kit-test-card-ref-secret"
SOURCES = discover()


def customers() -> dict[str, dict[str, Any]]:
    """The test customers, as the JSON file has them (the tests read every
    fact they check from here)."""
    data: dict[str, dict[str, Any]] = json.loads(EXAMPLE.read_text(encoding="utf-8"))["customers"]
    return data


@dataclass
class Clock:
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __call__(self) -> dt.datetime:
        return self.at


@dataclass
class Bench:
    source: DataSource
    clock: Clock
    channel: grpc.Channel
    audit_path: Path

    @property
    def cards(self) -> pb_grpc.CardDirectoryServiceStub:
        return pb_grpc.CardDirectoryServiceStub(self.channel)

    @property
    def cases(self) -> pb_grpc.CardCaseServiceStub:
        return pb_grpc.CardCaseServiceStub(self.channel)

    def consent(
        self,
        query_id: str,
        who: tuple[str, str],
        *,
        scope: int = pb.CONSENT_SCOPE_LIST_MASKED_CARDS,
        bank: str = BANK_CODE,
        card_ref: str = "",
        issued: dt.timedelta = dt.timedelta(minutes=-1),
        expires: dt.timedelta = dt.timedelta(hours=24),
        key_id: str = KEY_ID,
        edit: Callable[[pb.Consent], None] | None = None,
    ) -> pb.SignedConsent:
        name, id_number = who
        consent = pb.Consent(
            query_id=query_id,
            bank_code=bank,
            subject_digest=subject_digest(query_id, id_number, name),
            scope=scope,  # type: ignore[arg-type]
            consent_text_version="2022-03-01",
            card_ref=card_ref,
        )
        consent.issue_time.FromDatetime(self.clock.at + issued)
        consent.expire_time.FromDatetime(self.clock.at + expires)
        if edit is not None:
            edit(consent)
        payload = consent.SerializeToString()
        return pb.SignedConsent(consent=payload, signature=SIGNER.sign(payload), key_id=key_id)

    def list_request(self, who: tuple[str, str], query_id: str | None = None, **consent: Any) -> pb.ListCardsRequest:
        qid = query_id or str(uuid.uuid4())
        return pb.ListCardsRequest(
            query_id=qid,
            subject=pb.Subject(full_name=who[0], id_number=who[1]),
            consent=self.consent(qid, who, **consent),
        )

    def case_request(
        self, who: tuple[str, str], query_id: str, card_ref: str, consent_card: str | None = None, **consent: Any
    ) -> pb.OpenCardCaseRequest:
        consent.setdefault("scope", pb.CONSENT_SCOPE_OPEN_CARD_CASE)
        return pb.OpenCardCaseRequest(
            query_id=query_id,
            subject=pb.Subject(full_name=who[0], id_number=who[1]),
            card_ref=card_ref,
            kind=pb.CARD_CASE_KIND_NOT_RECOGNISED,
            consent=self.consent(query_id, who, card_ref=card_ref if consent_card is None else consent_card, **consent),
        )


def serve(desk: Desk, cases: CaseBook | None, max_concurrent: int = 8) -> tuple[grpc.Server, grpc.Channel, int]:
    running = build_server(desk, cases, max_concurrent, interceptors=())
    port = running.server.add_insecure_port("127.0.0.1:0")
    running.server.start()
    return running.server, grpc.insecure_channel(f"127.0.0.1:{port}"), max_concurrent


@pytest.fixture(params=sorted(SOURCES))
def bench(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bench]:
    workdir = tmp_path / "source"
    workdir.mkdir()
    source = SOURCES[request.param].example(EXAMPLE, workdir)
    clock = Clock()
    audit_path = tmp_path / "audit.jsonl"
    audit = AuditLog(audit_path)
    desk = Desk(ConsentVerifier(BANK_CODE, {KEY_ID: SIGNER.public_key()}), source, SECRET, clock, audit)
    server, channel, _ = serve(desk, CaseBook(BANK_CODE, tmp_path / "cases.jsonl"))
    try:
        yield Bench(source, clock, channel, audit_path)
    finally:
        channel.close()
        server.stop(None)
        audit.close()


def refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    """(code, ErrorInfo reason) of a refused call."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]  # the error is the call
    assert status is not None, "a refusal carries google.rpc.Status"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info.domain == "cardlookup.bank.v1"
    return caught.value.code(), info.reason
