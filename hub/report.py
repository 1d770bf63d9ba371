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

from hub.domain import BankProgress, BankSection, BankState, Notice, Report, ReportCard
from hub.validation import BankAnswer

UNLISTED_REASON_TEXTS: dict[str, tuple[str, str]] = {
    "NO_PHONE_ON_FILE": ("未在银行预留手机号", "no mobile phone number on file at the bank"),
    "ID_DOCUMENT_EXPIRED": ("银行登记的身份证件已过期", "the ID document on file at the bank has expired"),
    "CARD_NOT_PRESENT_DISABLED": ("已关闭非柜面业务", "card-not-present self-service is disabled"),
}

SAFETY_NOTICE = Notice(
    kind="SAFETY",
    text=(
        "查询结果仅供您本人查看。请勿向任何人透露短信验证码或查询结果；切勿在他人手机上进行查询；"
        "任何以贷款、退款、“账户升级”等名义要求您进行查询的，均为诈骗。"
    ),
    english_text=(
        "These results are for you alone. Never share the SMS code or the results with anyone; never run a "
        "lookup on someone else's phone; anyone who asks you to run a lookup (for a loan, a refund, an "
        '"account upgrade", ...) is a fraudster.'
    ),
)
UNRECOGNISED_NOTICE = Notice(
    kind="UNRECOGNISED_CARDS",
    text="如发现不认识或不再使用的银行卡，请及时到开户银行办理销户。",
    english_text="If you see a card you do not recognise or no longer use, close it at the bank that issued it.",
)
CREDIT_REPORT_NOTICE = Notice(
    kind="CREDIT_REPORT",
    text="本次查询与个人征信无关，不会影响您的个人信用报告。",
    english_text="This lookup is unrelated to credit reports and does not affect your credit report.",
)


def unlisted_notice(totals: dict[str, int]) -> Notice:
    """R13: some cards are not listed yet; the bank's records decide."""
    zh_parts = [f"{UNLISTED_REASON_TEXTS[r][0]}{n}张" for r, n in sorted(totals.items()) if r in UNLISTED_REASON_TEXTS]
    en_parts = [
        f"{n} with {UNLISTED_REASON_TEXTS[r][1]}" for r, n in sorted(totals.items()) if r in UNLISTED_REASON_TEXTS
    ]
    return Notice(
        kind="UNLISTED_CARDS",
        text=(
            "部分银行卡暂不支持展示（" + "，".join(zh_parts) + "）。"
            "未预留手机号、身份证件过期或已关闭非柜面业务的银行卡暂不在结果中列出，具体以银行记录为准。"
        ),
        english_text=(
            "Some cards are not listed yet (" + "; ".join(en_parts) + "). Cards with no phone number on file, "
            "an expired ID document, or card-not-present self-service disabled are not listed; the bank's "
            "own records are authoritative."
        ),
    )


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
