"""Report aggregation and encoding; scrubbing of log lines."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging

import pytest

from hub.core.domain import BankProgress, BankState, ReportCard
from hub.core.logging import configure_logging, get_logger, scrub
from hub.fanout.validation import BankAnswer
from hub.reports.report import BankOutcome, build_report, decode_answer, decode_report, encode_answer, encode_report

NOW = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def outcomes() -> list[BankOutcome]:
    a = BankAnswer(
        "102",
        (ReportCard("102", "debit", "6222", "1234", 19), ReportCard("102", "credit", "6258", "9876", 16)),
        {"NO_PHONE_ON_FILE": 1},
    )
    b = BankAnswer(
        "308", (ReportCard("308", "debit", "6214", "5555", 16),), {"ID_DOCUMENT_EXPIRED": 2, "NO_PHONE_ON_FILE": 1}
    )
    return [
        BankOutcome(BankProgress("102", BankState.ANSWERED), a),
        BankOutcome(BankProgress("104", BankState.NOT_ANSWERED, "REPORT_WINDOW_CLOSED:UNAVAILABLE"), None),
        BankOutcome(BankProgress("308", BankState.ANSWERED), b),
        BankOutcome(BankProgress("105", BankState.REJECTED, "FULL_CARD_NUMBER"), None),
    ]


def test_report_aggregates_per_bank_and_totals_unlisted_cards() -> None:
    report = build_report("q1", NOW, NOW + dt.timedelta(days=7), outcomes())
    sections = {s.bank_code: s for s in report.banks}
    assert [s.bank_code for s in report.banks] == ["102", "104", "308", "105"]
    assert (sections["102"].debit_count, sections["102"].credit_count) == (1, 1)
    assert (sections["308"].debit_count, sections["308"].credit_count) == (1, 0)
    assert sections["104"].reason == "REPORT_WINDOW_CLOSED:UNAVAILABLE"
    assert (sections["105"].state, sections["105"].debit_count) == (BankState.REJECTED, 0)
    assert len(report.cards) == 3
    unlisted = report.notices[0]
    assert unlisted.kind == "UNLISTED_CARDS"
    assert "未在银行预留手机号2张" in unlisted.text and "银行记录为准" in unlisted.text
    assert "2 with no mobile phone number on file" in unlisted.english_text
    assert [n.kind for n in report.notices[1:]] == ["SAFETY", "UNRECOGNISED_CARDS", "CREDIT_REPORT"]
    assert "诈骗" in report.notices[1].text and "fraudster" in report.notices[1].english_text


def test_no_unlisted_notice_when_every_card_is_listed() -> None:
    report = build_report("q1", NOW, NOW, [BankOutcome(BankProgress("102", BankState.ANSWERED), BankAnswer("102", ()))])
    assert [n.kind for n in report.notices] == ["SAFETY", "UNRECOGNISED_CARDS", "CREDIT_REPORT"]


def test_a_report_needs_every_outcome_final() -> None:
    with pytest.raises(ValueError):
        build_report("q1", NOW, NOW, [BankOutcome(BankProgress("102", BankState.PENDING), None)])


def test_report_and_answer_encodings_round_trip() -> None:
    report = build_report("q1", NOW, NOW + dt.timedelta(days=7), outcomes())
    assert decode_report(encode_report(report)) == report
    answer = outcomes()[0].answer
    assert answer is not None
    assert decode_answer("102", encode_answer(answer)) == answer


def test_scrub_removes_numbers_and_names() -> None:
    line = "id 11010119900307123X phone 13812345678 card 6222 0212 3456 7890 name 张三 bank 102 query 3f2a-11"
    cleaned = scrub(line)
    for secret in ("11010119900307123X", "13812345678", "6222 0212 3456 7890", "张三"):
        assert secret not in cleaned
    assert "bank 102" in cleaned and "query 3f2a-11" in cleaned


def test_log_lines_are_json_and_scrubbed() -> None:
    out = io.StringIO()
    configure_logging("INFO", out)
    try:
        log = get_logger("hub.test")
        log.info("bank_final", bank="102", cards=3, note="李四 6222021234567890")
        log.debug("hidden")
        try:
            raise ValueError("110101199003071234")
        except ValueError:
            log.error("failed", exc_info=True, query_id="q1")
    finally:
        logging.getLogger("hub").handlers.clear()
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["event"] for x in lines] == ["bank_final", "failed"]
    assert lines[0]["bank"] == "102" and lines[0]["cards"] == 3
    assert "李四" not in out.getvalue() and "6222021234567890" not in out.getvalue()
    assert lines[1]["error_type"] == "ValueError" and "110101199003071234" not in out.getvalue()
