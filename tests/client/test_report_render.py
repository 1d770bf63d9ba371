"""The report as a person reads it in an 80-column terminal: every notice
(R13, R16, ...) is shown whole, wrapped, never cut short with "…"."""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Console

from cardlookup.hub.v1 import resources_pb2 as pb
from client.render import report_view
from hub.reports.report import CREDIT_REPORT_NOTICE, SAFETY_NOTICE, UNRECOGNISED_NOTICE, unlisted_notice


def _squeezed(text: str) -> str:
    return "".join(text.split())


def test_every_notice_is_whole_at_80_columns() -> None:
    notices = [
        unlisted_notice({"NO_PHONE_ON_FILE": 2, "ID_DOCUMENT_EXPIRED": 1}),
        SAFETY_NOTICE,
        UNRECOGNISED_NOTICE,
        CREDIT_REPORT_NOTICE,
    ]
    report = pb.Report()
    for notice in notices:
        report.notices.add(text=notice.text, english_text=notice.english_text)
    console = Console(width=80, record=True, color_system=None)
    console.print(report_view(report))
    shown = console.export_text()
    assert "…" not in shown
    assert max(cell_len(line) for line in shown.splitlines()) <= 80
    body = _squeezed(shown.replace("•", ""))
    for notice in notices:
        # Wrapping may only add line breaks and indentation, never drop text.
        assert _squeezed(notice.text) in body
        assert _squeezed(notice.english_text) in body
