"""Domain values -> hub.v1 protos (and the one proto -> domain value the
API receives, the face attestation)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from cardlookup.banks import bank_by_code
from cardlookup.hub.v1 import face_attestation_pb2 as face_pb
from cardlookup.hub.v1 import resources_pb2 as pb
from hub.api import names
from hub.core.config import BankEndpoint, HubConfig
from hub.core.domain import BankProgress, BankState, QueryState, Report
from hub.identity.face import Attestation
from hub.identity.journey import QueryView, acceptance_notice
from hub.identity.users import UserView
from hub.store.card_cases import CardCase

_QUERY_STATE = {
    QueryState.ACCEPTED: pb.QUERY_STATE_ACCEPTED,
    QueryState.RUNNING: pb.QUERY_STATE_RUNNING,
    QueryState.READY: pb.QUERY_STATE_READY,
    QueryState.EXPIRED: pb.QUERY_STATE_EXPIRED,
}
_BANK_STATE = {
    BankState.PENDING: pb.BANK_OUTCOME_STATE_PENDING,
    BankState.ANSWERED: pb.BANK_OUTCOME_STATE_ANSWERED,
    BankState.NOT_ANSWERED: pb.BANK_OUTCOME_STATE_NOT_ANSWERED,
    BankState.REJECTED: pb.BANK_OUTCOME_STATE_REJECTED,
}
_ACCESS = {
    "VIEWED": pb.REPORT_ACCESS_RESULT_VIEWED,
    "WRONG_PASSWORD": pb.REPORT_ACCESS_RESULT_WRONG_PASSWORD,
    "LOCKED": pb.REPORT_ACCESS_RESULT_LOCKED,
}
_UNLISTED = {
    "NO_PHONE_ON_FILE": pb.UNLISTED_REASON_NO_PHONE_ON_FILE,
    "ID_DOCUMENT_EXPIRED": pb.UNLISTED_REASON_ID_DOCUMENT_EXPIRED,
    "CARD_NOT_PRESENT_DISABLED": pb.UNLISTED_REASON_CARD_NOT_PRESENT_DISABLED,
}
_CARD_TYPE = {"debit": pb.CARD_TYPE_DEBIT, "credit": pb.CARD_TYPE_CREDIT}
_NOTICE = {
    "UNLISTED_CARDS": pb.NOTICE_KIND_UNLISTED_CARDS,
    "SAFETY": pb.NOTICE_KIND_SAFETY,
    "UNRECOGNISED_CARDS": pb.NOTICE_KIND_UNRECOGNISED_CARDS,
    "CREDIT_REPORT": pb.NOTICE_KIND_CREDIT_REPORT,
}


def ts(when: dt.datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(when.astimezone(dt.UTC))
    return out


def display_name(config: HubConfig, code: str) -> str:
    endpoint = config.bank(code)
    if endpoint is not None:
        return endpoint.display_name
    info = bank_by_code(code)
    return info.display_name if info else code


def user(view: UserView) -> pb.User:
    out = pb.User(
        name=names.user_name(view.user_id),
        user_id=view.user_id,
        region_code=view.region_code,
        masked_phone=view.masked_phone,
        id_expiry_date=view.id_expiry.isoformat() if view.id_expiry else "",
        eligible=not view.ineligible_reason,
        ineligible_reason=view.ineligible_reason,
    )
    out.create_time.CopyFrom(ts(view.create_time))
    out.update_time.CopyFrom(ts(view.update_time))
    if view.eligible_time is not None:
        out.eligible_time.CopyFrom(ts(view.eligible_time))
    return out


def bank(endpoint: BankEndpoint) -> pb.Bank:
    return pb.Bank(bank_code=endpoint.code, display_name=endpoint.display_name, english_name=endpoint.english_name)


def query(config: HubConfig, view: QueryView, cases: Sequence[CardCase] = ()) -> pb.Query:
    out = pb.Query()
    _query_header(view, out)
    for b in view.record.banks:
        _bank_outcome(config, b, out.bank_outcomes.add())
    _access_events(view, out)
    for case in cases:
        card_case(config, case, out.card_cases.add())
    return out


_CASE_KIND = {
    "NOT_RECOGNISED": pb.CARD_CASE_KIND_NOT_RECOGNISED,
    "CLOSE_REQUESTED": pb.CARD_CASE_KIND_CLOSE_REQUESTED,
}
_CASE_STATUS = {
    "RECEIVED": pb.CARD_CASE_STATUS_RECEIVED,
    "CARD_SUSPENDED": pb.CARD_CASE_STATUS_CARD_SUSPENDED,
    "VISIT_BANK": pb.CARD_CASE_STATUS_VISIT_BANK,
}


def card_case(config: HubConfig, case: CardCase, out: pb.CardCase) -> pb.CardCase:
    """Issue 12: a "not my card" case as the history shows it (no digits)."""
    out.card_id = case.card_id
    out.bank_code = case.bank_code
    out.display_name = display_name(config, case.bank_code)
    out.kind = _CASE_KIND[case.kind]
    out.status = _CASE_STATUS[case.status]
    out.case_reference = case.case_reference
    out.next_step = case.next_step
    out.next_step_english = case.next_step_english
    out.open_time.CopyFrom(ts(case.open_time))
    return out


class WatchedQuery:
    """Converts the successive views of one watched query, re-converting only
    the bank whose outcome changed. A query of n banks sends n+1 messages;
    rebuilding all n outcomes for each would cost O(n^2) (the benchmark saw
    it dominate at 1,000 banks)."""

    def __init__(self, config: HubConfig, changes_only: bool = False) -> None:
        self._config = config
        self._changes_only = changes_only
        """WATCH_VIEW_CHANGES: after the first message, only what changed
        (issue 10: a 1,000-bank query streamed ~1,000 full snapshots)."""
        self._message: pb.Query | None = None
        self._position: dict[str, int] = {}
        self._access_count = 0

    def convert(self, view: QueryView, changed_bank_code: str) -> pb.Query:
        """The message for one event. An event without a changed bank is a
        whole snapshot (the first, or the engine catching up with a query
        that became READY meanwhile): converted whole in both views."""
        if self._changes_only and self._position and changed_bank_code:
            return self._changes(view, changed_bank_code)
        self._access_count = len(view.access_events)
        message = self._message
        if message is None or changed_bank_code not in self._position:
            message = self._message = query(self._config, view)
            self._position = {code: i for i, code in enumerate(view.record.bank_codes)}
            return message
        _query_header(view, message)
        i = self._position[changed_bank_code]
        outcome = message.bank_outcomes[i]
        outcome.Clear()
        _bank_outcome(self._config, view.record.banks[i], outcome)
        if len(message.report_access_events) != len(view.access_events):
            del message.report_access_events[:]
            _access_events(view, message)
        return message

    def _changes(self, view: QueryView, changed_bank_code: str) -> pb.Query:
        """A WATCH_VIEW_CHANGES message: the fields that can change (state,
        times) and the outcome that just became final; report access events
        only when they changed. O(1) in the number of banks."""
        r = view.record
        out = pb.Query(
            name=names.query_name(r.user_id, r.query_id), query_id=r.query_id, state=_QUERY_STATE[view.state]
        )
        out.create_time.CopyFrom(ts(r.create_time))
        out.report_due_time.CopyFrom(ts(r.report_due_time))
        if r.ready_time is not None:
            out.ready_time.CopyFrom(ts(r.ready_time))
        if r.report_expire_time is not None:
            out.report_expire_time.CopyFrom(ts(r.report_expire_time))
        i = self._position.get(changed_bank_code)
        if i is not None:
            _bank_outcome(self._config, r.banks[i], out.bank_outcomes.add())
        if len(view.access_events) != self._access_count:
            self._access_count = len(view.access_events)
            _access_events(view, out)
        return out


def _query_header(view: QueryView, out: pb.Query) -> None:
    """Every field of a Query except the per-bank outcomes and access events."""
    r = view.record
    out.name = names.query_name(r.user_id, r.query_id)
    out.query_id = r.query_id
    out.state = _QUERY_STATE[view.state]
    if not out.bank_codes:
        out.bank_codes.extend(r.bank_codes)
    out.consent_text_version = r.consent_text_version
    out.acceptance_notice = acceptance_notice(r.report_due_time)
    out.create_time.CopyFrom(ts(r.create_time))
    out.report_due_time.CopyFrom(ts(r.report_due_time))
    if r.ready_time is not None:
        out.ready_time.CopyFrom(ts(r.ready_time))
    if r.report_expire_time is not None:
        out.report_expire_time.CopyFrom(ts(r.report_expire_time))


def _bank_outcome(config: HubConfig, b: BankProgress, out: pb.BankOutcome) -> None:
    out.bank_code = b.bank_code
    out.display_name = display_name(config, b.bank_code)
    out.state = _BANK_STATE[b.state]
    out.reason = b.reason
    out.attempt_count = b.attempt_count
    out.card_count = b.card_count
    if b.finish_time is not None:
        out.finish_time.CopyFrom(ts(b.finish_time))


def _access_events(view: QueryView, out: pb.Query) -> None:
    for e in view.access_events:
        event = out.report_access_events.add(result=_ACCESS[e.result])
        event.time.CopyFrom(ts(e.time))


def report(config: HubConfig, user_id: str, rep: Report) -> pb.Report:
    out = pb.Report(name=names.report_name(user_id, rep.query_id))
    out.generate_time.CopyFrom(ts(rep.generate_time))
    out.expire_time.CopyFrom(ts(rep.expire_time))
    for s in rep.banks:
        summary = out.bank_summaries.add(
            bank_code=s.bank_code,
            display_name=display_name(config, s.bank_code),
            state=_BANK_STATE[s.state],
            reason=s.reason,
            debit_card_count=s.debit_count,
            credit_card_count=s.credit_count,
            unlisted_card_count=sum(s.unlisted.values()),
        )
        for reason, count in sorted(s.unlisted.items()):
            summary.unlisted.add(reason=_UNLISTED.get(reason, pb.UNLISTED_REASON_UNSPECIFIED), card_count=count)
    for i, c in enumerate(rep.cards, start=1):
        out.cards.add(
            card_id=str(i),  # issue 12: FlagCard names the card by its place in the report
            bank_code=c.bank_code,
            display_name=display_name(config, c.bank_code),
            card_type=_CARD_TYPE[c.kind],
            first_four=c.first_four,
            last_four=c.last_four,
            number_length=c.number_length,
            new_since_last_lookup=c.new_since_last_lookup,
        )
    out.new_cards_marked = rep.new_cards_marked
    for n in rep.notices:
        out.notices.add(kind=_NOTICE[n.kind], text=n.text, english_text=n.english_text)
    return out


def attestation(msg: face_pb.FaceAttestation, present: bool) -> Attestation | None:
    if not present:
        return None
    return Attestation(claims=msg.claims, signature=msg.signature, key_id=msg.key_id)
