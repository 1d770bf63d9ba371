"""The optional card cases ("not my card"): CardCaseService.OpenCardCase,
step by step (docs/bank-integration.md, "Card cases (optional)"):

1. validate as for ListCards, plus `card_ref` and a known `kind`;
2. verify the consent: the ten steps with scope OPEN_CARD_CASE, then the
   consent's card_ref must be the request's (CONSENT_CARD_MISMATCH);
3. find the card among the subject's cards by card_ref (NOT_FOUND,
   CARD_NOT_FOUND otherwise);
4. open one case per (query_id, card_ref): a retry gets the same case.

`CaseBook` records the cases: in memory, and in a JSON-lines file when
given one (read back at start, so a retry after a restart gets its case).
Replace it with your case system; it holds no personal data (the query id,
the card_ref, the kind, the time). A conformance run opens real cases: run
it against a test environment.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from bank_kit.bank import Desk
from bank_kit.consent import CARD_REF, Refusal, abort, invalid
from bank_kit.contract import card_directory_pb2 as pb
from bank_kit.contract import card_directory_pb2_grpc as pb_grpc

NEXT_STEPS = {
    pb.CARD_CASE_KIND_NOT_RECOGNISED: (
        pb.CARD_CASE_STATUS_RECEIVED,
        "我行已受理您的案件。请于30日内携带本人有效身份证件到我行任一网点核实该卡。",
        "We have recorded your case. Please visit any of our branches with your identity document within 30 days.",
    ),
    pb.CARD_CASE_KIND_CLOSE_REQUESTED: (
        pb.CARD_CASE_STATUS_RECEIVED,
        "我行已受理您的销户申请。请携带本人有效身份证件到我行任一网点办理销户手续。",
        "We have recorded your request. Please visit any of our branches with your identity document to close it.",
    ),
}


@dataclass(frozen=True)
class OpenedCase:
    case_reference: str
    status: pb.CardCaseStatus
    kind: pb.CardCaseKind


class CaseBook:
    """One case per (query_id, card_ref)."""

    def __init__(self, bank_code: str, path: Path | None = None) -> None:
        self._bank_code = bank_code
        self._path = path
        self._lock = threading.Lock()
        self._cases: dict[tuple[str, str], OpenedCase] = {}
        if path is not None and path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                status = pb.CardCaseStatus.Value(row["status"])
                kind = pb.CardCaseKind.Value(row["kind"])
                self._cases[(row["query_id"], row["card_ref"])] = OpenedCase(row["case"], status, kind)  # type: ignore[arg-type]

    def open(self, query_id: str, card_ref: str, kind: pb.CardCaseKind, now: dt.datetime) -> OpenedCase:
        with self._lock:
            opened = self._cases.get((query_id, card_ref))
            if opened is not None:
                return opened
            digest = hashlib.sha256(f"{self._bank_code}\n{query_id}\n{card_ref}".encode()).hexdigest()
            opened = OpenedCase(f"C{self._bank_code}-{digest[:12].upper()}", NEXT_STEPS[kind][0], kind)
            if self._path is not None:
                row = {"time": now.isoformat(), "query_id": query_id, "card_ref": card_ref}
                row["kind"] = pb.CardCaseKind.Name(kind)
                row |= {"case": opened.case_reference, "status": pb.CardCaseStatus.Name(opened.status)}
                fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, (json.dumps(row) + "\n").encode())
                finally:
                    os.close(fd)
            self._cases[(query_id, card_ref)] = opened
            return opened


class CaseDesk(pb_grpc.CardCaseServiceServicer):
    def __init__(self, desk: Desk, book: CaseBook) -> None:
        self._desk = desk
        self._book = book

    def OpenCardCase(self, request: pb.OpenCardCaseRequest, context: grpc.ServicerContext) -> pb.OpenCardCaseResponse:
        desk = self._desk
        now = desk.now()
        try:
            if not CARD_REF.fullmatch(request.card_ref):
                raise invalid("card_ref", "card_ref must be 1 to 64 characters from [A-Za-z0-9_-]")
            if request.kind not in NEXT_STEPS:
                raise invalid("kind", "kind must be NOT_RECOGNISED or CLOSE_REQUESTED")
            desk.admit(
                "OpenCardCase", request.query_id, request.subject, request.consent, now, card_ref=request.card_ref
            )
            customer = desk.customer(request.subject, request.query_id, now)
            held = {desk.card_ref(c.number) for c in customer.cards} if customer is not None else set()
            if request.card_ref not in held:
                raise Refusal(grpc.StatusCode.NOT_FOUND, "CARD_NOT_FOUND", "no such card for this subject")
        except Refusal as refusal:
            abort(context, refusal)
        opened = self._book.open(request.query_id, request.card_ref, request.kind, now)
        _, zh, en = NEXT_STEPS[opened.kind]
        return pb.OpenCardCaseResponse(
            case_reference=opened.case_reference,
            status=opened.status,
            next_step=zh,
            next_step_english=en,
        )
