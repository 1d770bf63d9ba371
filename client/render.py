"""Rich renderings of hub resources for people: per-bank progress, the
report (summary per bank, then cards, then notices) and the history."""

from __future__ import annotations

import datetime as dt

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from cardlookup.hub.v1 import resources_pb2 as pb

CHINA_TZ = dt.timezone(dt.timedelta(hours=8))

_QUERY_STATE = {
    pb.QUERY_STATE_ACCEPTED: "accepted",
    pb.QUERY_STATE_RUNNING: "running",
    pb.QUERY_STATE_READY: "ready",
    pb.QUERY_STATE_EXPIRED: "expired",
}
_BANK_STATE = {
    pb.BANK_OUTCOME_STATE_PENDING: ("pending", "yellow"),
    pb.BANK_OUTCOME_STATE_ANSWERED: ("answered", "green"),
    pb.BANK_OUTCOME_STATE_NOT_ANSWERED: ("not answered", "red"),
    pb.BANK_OUTCOME_STATE_REJECTED: ("rejected", "red"),
}
_UNLISTED = {
    pb.UNLISTED_REASON_NO_PHONE_ON_FILE: "no phone on file",
    pb.UNLISTED_REASON_ID_DOCUMENT_EXPIRED: "ID expired at bank",
    pb.UNLISTED_REASON_CARD_NOT_PRESENT_DISABLED: "card-not-present disabled",
}
_ACCESS = {
    pb.REPORT_ACCESS_RESULT_VIEWED: "viewed",
    pb.REPORT_ACCESS_RESULT_WRONG_PASSWORD: "wrong password",
    pb.REPORT_ACCESS_RESULT_LOCKED: "refused (locked)",
}


def local_time(ts: object) -> str:
    when: dt.datetime = ts.ToDatetime(tzinfo=dt.UTC)  # type: ignore[attr-defined]
    return when.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


def query_state(state: pb.QueryState) -> str:
    return _QUERY_STATE.get(state, "unknown")


def progress_table(query: pb.Query) -> Table:
    done = sum(1 for o in query.bank_outcomes if o.state != pb.BANK_OUTCOME_STATE_PENDING)
    table = Table(title=f"Query {query.query_id}: {query_state(query.state)} ({done}/{len(query.bank_outcomes)} banks)")
    for column in ("Bank", "", "State", "Cards", "Attempts", "Reason"):
        table.add_column(column)
    for o in query.bank_outcomes:
        label, colour = _BANK_STATE.get(o.state, ("?", "white"))
        answered = o.state == pb.BANK_OUTCOME_STATE_ANSWERED
        table.add_row(
            o.bank_code,
            o.display_name,
            Text(label, style=colour),
            str(o.card_count) if answered else "",
            str(o.attempt_count),
            o.reason,
        )
    return table


def report_view(report: pb.Report) -> Group:
    summary = Table(title="Summary per bank (R7)")
    for column in ("Bank", "", "Debit", "Credit", "Not listed", "Status"):
        summary.add_column(column)
    for s in report.bank_summaries:
        label, colour = _BANK_STATE.get(s.state, ("?", "white"))
        unlisted = ", ".join(f"{u.card_count} {_UNLISTED.get(u.reason, '?')}" for u in s.unlisted)
        summary.add_row(
            s.bank_code,
            s.display_name,
            str(s.debit_card_count),
            str(s.credit_card_count),
            unlisted or "0",
            Text(label + (f" ({s.reason})" if s.reason else ""), style=colour),
        )
    cards = Table(title="Cards (masked: first 4 and last 4 digits; # for `not-mine`)")
    for column in ("#", "Bank", "Type", "Card number"):
        cards.add_column(column)
    for c in report.cards:
        kind = "debit 借记卡" if c.card_type == pb.CARD_TYPE_DEBIT else "credit 信用卡"
        middle = "*" * max(0, c.number_length - 8)
        new = " NEW 新增" if c.new_since_last_lookup else ""
        cards.add_row(c.card_id, c.display_name, kind, f"{c.first_four} {middle} {c.last_four}{new}")
    notices = Table.grid(padding=(0, 1))
    notices.add_column(no_wrap=True)
    notices.add_column()
    for n in report.notices:
        # Chinese has no spaces to break at: "fold" wraps it at any character
        # instead of cutting the notice short with "…" (R13, R16 must be read whole).
        notices.add_row("•", Text(f"{n.text}\n{n.english_text}", overflow="fold"))
    header = Text(
        f"Report generated {local_time(report.generate_time)}, deleted {local_time(report.expire_time)} (Beijing time)."
    )
    if report.new_cards_marked:
        header.append("\nCards marked NEW were not in your previous lookup (issue 12, opt-in).")
    return Group(header, summary, cards, notices)


def history_table(queries: list[pb.Query]) -> Table:
    # Fits 80 columns with the query id whole (it is copied into `report`/`watch`);
    # times in Beijing time: created, then when the report is deleted (R11).
    table = Table(title="Lookup history, newest first (Beijing time)", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("Query", no_wrap=True, min_width=36)
    table.add_column("State", no_wrap=True)
    table.add_column("Banks", no_wrap=True)
    table.add_column("Created, deleted", no_wrap=True)
    for q in queries:
        banks = ",".join(q.bank_codes) if len(q.bank_codes) <= 2 else f"{len(q.bank_codes)} banks"
        times = local_time(q.create_time)
        if q.HasField("report_expire_time"):
            times += "\n" + local_time(q.report_expire_time)
        table.add_row(q.query_id, query_state(q.state), banks, times)
    return table


def access_table(queries: list[pb.Query]) -> Table | None:
    """Every attempt to open a report (R10), or None when there was none."""
    table = Table(title="Report access (R10, Beijing time)", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("Query", no_wrap=True, min_width=36)
    table.add_column("Time", no_wrap=True)
    table.add_column("Result", no_wrap=True)
    for q in queries:
        for e in q.report_access_events:
            table.add_row(q.query_id, local_time(e.time), _ACCESS.get(e.result, "?"))
    return table if table.row_count else None


_CASE_STATUS = {
    pb.CARD_CASE_STATUS_RECEIVED: "received by the bank",
    pb.CARD_CASE_STATUS_CARD_SUSPENDED: "card suspended",
    pb.CARD_CASE_STATUS_VISIT_BANK: "visit the bank",
}
_CASE_KIND = {
    pb.CARD_CASE_KIND_NOT_RECOGNISED: "not mine",
    pb.CARD_CASE_KIND_CLOSE_REQUESTED: "close it",
}


def case_status(status: pb.CardCaseStatus) -> str:
    return _CASE_STATUS.get(status, "unknown")


def case_view(case: pb.CardCase) -> Text:
    """One "not my card" case (issue 12): reference, status, next step."""
    head = f"Card {case.card_id} at {case.display_name}"
    if case.masked_card:
        head += f" ({case.masked_card})"
    reference = f", case {case.case_reference}" if case.case_reference else ""
    return Text(f"{head}: {case_status(case.status)}{reference}.\n{case.next_step}\n{case.next_step_english}")


def cases_table(queries: list[pb.Query]) -> Table | None:
    """Every "not my card" case of the history, or None when there is none."""
    table = Table(title='"Not my card" cases (Beijing time)', box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("Query", no_wrap=True, min_width=36)
    table.add_column("#", no_wrap=True)
    table.add_column("Bank", no_wrap=True)
    table.add_column("Status, case")
    for q in queries:
        for c in q.card_cases:
            status = f"{_CASE_KIND.get(c.kind, '?')}: {case_status(c.status)}"
            if c.case_reference:
                status += f"\n{c.case_reference}"
            table.add_row(q.query_id, c.card_id, c.bank_code, status)
    return table if table.row_count else None
