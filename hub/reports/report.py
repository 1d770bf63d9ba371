"""Building the report of a query (R7, R13, R15, R16), and its encoding.

The report is assembled once, when every chosen bank's outcome is final,
from the validated masked answers. It holds per-bank sections (outcome,
debit/credit counts, unlisted counts by R13 reason), the masked cards and
the notices. `encode`/`decode` turn it into the bytes that are sealed at
rest; bank names are not stored (the API layer names banks from config).
Each card keeps the bank's `card_ref` (older encodings without it decode
with an empty one): "not my card" cases (issue 12) name the card with it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cardlookup import sealed_report
from hub.core.domain import BankProgress, BankSection, BankState, Notice, Report, ReportCard
from hub.fanout.validation import BankAnswer


def _notice(texts: tuple[str, str, str]) -> Notice:
    kind, text, english_text = texts
    return Notice(kind, text, english_text)  # type: ignore[arg-type]  # one of Notice's kinds


UNLISTED_REASON_TEXTS = sealed_report.UNLISTED_REASON_TEXTS
"""The notice texts live with the sealed report's assembly (a device
assembles its report from the same texts, issue 17)."""
SAFETY_NOTICE = _notice(sealed_report.SAFETY_TEXT)
UNRECOGNISED_NOTICE = _notice(sealed_report.UNRECOGNISED_TEXT)
CREDIT_REPORT_NOTICE = _notice(sealed_report.CREDIT_REPORT_TEXT)


def unlisted_notice(totals: dict[str, int]) -> Notice:
    """R13: some cards are not listed yet; the bank's records decide."""
    return _notice(sealed_report.unlisted_notice(totals))


@dataclass(frozen=True)
class BankOutcome:
    """A bank's final outcome and, if it answered, its validated answer."""

    progress: BankProgress
    answer: BankAnswer | None


def build_report(
    query_id: str, generate_time: dt.datetime, expire_time: dt.datetime, outcomes: Sequence[BankOutcome]
) -> Report:
    sections: list[BankSection] = []
    cards: list[ReportCard] = []
    totals: dict[str, int] = {}
    for outcome in outcomes:
        p, answer = outcome.progress, outcome.answer
        if p.state == BankState.PENDING:
            raise ValueError("a report needs every bank's outcome to be final")
        if p.state == BankState.ANSWERED and answer is not None:
            cards.extend(answer.cards)
            for reason, count in answer.unlisted.items():
                totals[reason] = totals.get(reason, 0) + count
            sections.append(
                BankSection(p.bank_code, p.state, "", answer.debit_count, answer.credit_count, dict(answer.unlisted))
            )
        else:
            sections.append(BankSection(p.bank_code, p.state, p.reason, 0, 0, {}))
    notices = [unlisted_notice(totals)] if totals else []
    notices += [SAFETY_NOTICE, UNRECOGNISED_NOTICE, CREDIT_REPORT_NOTICE]
    return Report(query_id, generate_time, expire_time, tuple(sections), tuple(cards), tuple(notices))


def encode_report(report: Report) -> bytes:
    data: dict[str, Any] = {
        "query_id": report.query_id,
        "generate_time": report.generate_time.isoformat(),
        "expire_time": report.expire_time.isoformat(),
        "banks": [
            [s.bank_code, s.state.value, s.reason, s.debit_count, s.credit_count, s.unlisted] for s in report.banks
        ],
        "cards": [[c.bank_code, c.kind, c.first_four, c.last_four, c.number_length, c.card_ref] for c in report.cards],
        "notices": [[n.kind, n.text, n.english_text] for n in report.notices],
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def decode_report(blob: bytes) -> Report:
    data = json.loads(blob)
    return Report(
        query_id=data["query_id"],
        generate_time=dt.datetime.fromisoformat(data["generate_time"]),
        expire_time=dt.datetime.fromisoformat(data["expire_time"]),
        banks=tuple(BankSection(b[0], BankState(b[1]), b[2], b[3], b[4], dict(b[5])) for b in data["banks"]),
        cards=tuple(ReportCard(*c[:6]) for c in data["cards"]),
        notices=tuple(Notice(n[0], n[1], n[2]) for n in data["notices"]),
    )


def encode_answer(answer: BankAnswer) -> bytes:
    """The at-rest form of one bank's validated answer, sealed until the
    report is built (so a restart does not ask the bank again)."""
    data = {
        "cards": [[c.kind, c.first_four, c.last_four, c.number_length, c.card_ref] for c in answer.cards],
        "unlisted": answer.unlisted,
    }
    return json.dumps(data, separators=(",", ":")).encode()


def decode_answer(bank_code: str, blob: bytes) -> BankAnswer:
    data = json.loads(blob)
    cards = tuple(ReportCard(bank_code, *c[:5]) for c in data["cards"])
    return BankAnswer(bank_code, cards, dict(data["unlisted"]))
