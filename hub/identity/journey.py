"""The user's journey and its rules, in the order the hub applies them:
who may look up (R1, R2), which banks (R3), verification and authorization
before anything reaches a bank (R4), acceptance with the 24-hour promise
(R6), one query at a time and the 7-day cooldown (R12), the ready SMS (R9),
and report access with the payment password (R10), expiry (R11).

Plain domain code over the engine interface: no gRPC here. A query as the
user sees it (QueryView, the pages of ListQueries, R11's expired state) is
hub.identity.query_views; its names are re-exported here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cardlookup.clock import Clock
from hub.core.config import BankEndpoint, HubConfig
from hub.core.domain import NewQuery, QueryEvent, QueryRecord, QueryState, Report, ReportUnavailable
from hub.core.notify import SmsMessage, SmsSender, report_ready_text
from hub.identity import query_views, validation
from hub.identity.errors import RuleViolation, ceil_second, delay_until, duration_text, rfc3339
from hub.identity.face import Attestation, FaceVerifier
from hub.identity.new_cards import NewCardTracker
from hub.identity.passwords import PasswordGate
from hub.identity.query_views import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    QueryPage,
    QueryView,
    effective_state,
    expired,
)
from hub.identity.report_keys import ReportKeys
from hub.identity.users import CHINA_TZ, UserDirectory, UserView
from hub.identity.verification import SmsVerifier, StartedVerification
from hub.keys.crypto import KeyedHash, Sealed
from hub.store.identity import AccessEvent, IdentityStore
from hub.store.users import UserRow

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "BankChoice",
    "CreateRequest",
    "Journey",
    "QueryEngineApi",
    "QueryPage",
    "QueryView",
    "acceptance_notice",
]


class QueryEngineApi(Protocol):
    """What the journey needs of hub.engine.QueryEngine."""

    async def submit(self, new: NewQuery) -> QueryRecord: ...
    async def get(self, query_id: str) -> QueryRecord | None: ...
    async def list_for_user(
        self, user_id: str, limit: int, before: tuple[dt.datetime, str] | None = None
    ) -> list[QueryRecord]: ...
    async def latest_ready_time(self, user_id: str) -> dt.datetime | None: ...
    async def unfinished_for_user(self, user_id: str) -> QueryRecord | None: ...
    def watch(self, query_id: str) -> AsyncIterator[QueryEvent]: ...
    async def read_report(self, query_id: str, opener: Callable[[Sealed, bytes], bytes] | None = None) -> Report: ...
    def add_ready_listener(self, listener: Callable[[QueryRecord], Awaitable[None]]) -> None: ...


@dataclass(frozen=True)
class CreateRequest:
    user_id: str
    request_id: str
    verification_id: str
    sms_code: str
    face: Attestation | None
    consent_text_version: str
    bank_codes: tuple[str, ...]


@dataclass(frozen=True)
class BankChoice:
    banks: tuple[BankEndpoint, ...]
    consent_text_version: str
    consent_text: str


def acceptance_notice(due: dt.datetime) -> str:
    """R6: what the user is told when a query is accepted."""
    local = due.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")
    return (
        f"您的查询已受理，查询报告将在24小时内（北京时间{local}前）生成，生成后将以短信通知您，请留意。"
        f" Your query is accepted: the report will be ready within 24 hours (by {local} Beijing time);"
        " an SMS will tell you when it is."
    )


class Journey:
    def __init__(
        self,
        *,
        config: HubConfig,
        clock: Clock,
        engine: QueryEngineApi,
        users: UserDirectory,
        store: IdentityStore,
        verifier: SmsVerifier,
        face: FaceVerifier,
        passwords: PasswordGate,
        sender: SmsSender,
        keyed_hash: KeyedHash,
        report_keys: ReportKeys | None = None,
        new_cards: NewCardTracker | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._engine = engine
        self._users = users
        self._store = store
        self._verifier = verifier
        self._face = face
        self._passwords = passwords
        self._sender = sender
        self._hash = keyed_hash
        self._report_keys = report_keys
        self._new_cards = new_cards
        self._closed_ready_time: Callable[[str], Awaitable[dt.datetime | None]] | None = None

    def on_closed_accounts(self, closed_ready_time: Callable[[str], Awaitable[dt.datetime | None]]) -> None:
        """Issue 22: `closed_ready_time(person key)` gives the latest report
        time of the person's closed accounts (R12 spans a closure)."""
        self._closed_ready_time = closed_ready_time

    def reconfigure(self, config: HubConfig) -> None:
        """A reloaded configuration (the bank registry users choose from, R3)."""
        self._config = config

    # --- before a query ---

    async def list_banks(self, user_id: str) -> BankChoice:
        await self._users.require_eligible(user_id)
        return BankChoice(self._config.banks, self._config.consent_text_version, self._config.consent_text)

    async def get_user(self, user_id: str) -> UserView:
        """The user with their eligibility now: the enrolment rules (R1, R2)
        and, when those pass, one query at a time and the cooldown (R12), so
        that `eligible` is true exactly when CreateQuery would not refuse
        for the user's situation."""
        view = await self._users.get(user_id)
        if view.ineligible_reason:
            return view
        row = await self._users.row(user_id)
        problem, retry = await self._query_problem(user_id, await self._users.same_person_user_ids(row), row.id_hash)
        if problem is None:
            return view
        return dataclasses.replace(view, ineligible_reason=problem.reason, eligible_time=retry)

    async def start_verification(self, user_id: str) -> tuple[StartedVerification, str]:
        """Sends an SMS code; returns it with the masked phone it went to.

        Refuses, before any SMS is sent, a user who could not create a query
        now, with the reason CreateQuery would give (R1, R2, R12): a code
        they cannot use is a free SMS for an abuser. The rate limits are per
        person and per phone (hub.identity.verification)."""
        row = await self._users.require_eligible(user_id)
        problem, _ = await self._query_problem(user_id, await self._users.same_person_user_ids(row), row.id_hash)
        if problem is not None:
            raise problem
        phone = self._users.identity(row).phone
        return await self._verifier.start(row.user_id, phone, row.id_hash), row.masked_phone

    # --- creating a query ---

    async def create_query(self, req: CreateRequest) -> QueryView:
        """Creates (or, for a repeated request id, returns) the query, as the
        user sees it."""
        record = await self._create(req)
        return (await self._views([record]))[0]

    async def _create(self, req: CreateRequest) -> QueryRecord:
        user_id = validation.app_id(req.user_id, "user_id")
        request_id = validation.app_id(req.request_id, "request_id")
        validation.verification_id(req.verification_id)
        validation.six_digits(req.sms_code, "sms_code")
        validation.consent_text_version(req.consent_text_version)
        validation.bank_codes(req.bank_codes)
        fingerprint = self._fingerprint(req)
        # Keyed by the person, not the account: the one-query and cooldown
        # rules span every app account enrolled with the same ID number.
        person = (await self._users.row(user_id)).id_hash
        # Serialises CreateQuery per person in the database (every replica),
        # so two concurrent requests cannot both pass the one-query rule.
        async with self._store.person_lock(person):
            earlier = await self._store.get_request(user_id, request_id)
            if earlier is not None:
                if earlier.fingerprint != fingerprint:
                    raise RuleViolation("REQUEST_ID_REUSED", "this request id was used before with different content")
                return await self._replay(user_id, earlier.query_id, req)
            row = await self._users.require_eligible(user_id)
            if req.consent_text_version != self._config.consent_text_version:
                raise RuleViolation(
                    "CONSENT_VERSION_MISMATCH",
                    "the accepted authorization notice is not the current one",
                    {"current_version": self._config.consent_text_version},
                )
            for code in req.bank_codes:
                if self._config.bank(code) is None:
                    raise RuleViolation(
                        "BANK_NOT_AVAILABLE", "a chosen bank is not available to this user", {"bank_code": code}
                    )
            await self._check_one_at_a_time(user_id, await self._users.same_person_user_ids(row), row.id_hash)
            await self._verifier.require_pending(user_id, req.verification_id)
            self._face.verify(req.face, user_id=user_id, verification_id=req.verification_id, now=self._clock.now())
            query_id = str(uuid.uuid4())
            # Code check, single use and the request id commit together: from
            # here on, a retry finds the request and replays it.
            await self._verifier.consume(
                user_id, req.verification_id, req.sms_code, (request_id, fingerprint, query_id)
            )
            return await self._engine.submit(self._new_query(query_id, row, req))

    async def _replay(self, user_id: str, query_id: str, req: CreateRequest) -> QueryRecord:
        record = await self._engine.get(query_id)
        if record is not None:
            return record
        # The request was recorded but the hub stopped before the engine
        # stored the query: every rule had passed, so submit it now.
        return await self._engine.submit(self._new_query(query_id, await self._users.row(user_id), req))

    def _new_query(self, query_id: str, row: UserRow, req: CreateRequest) -> NewQuery:
        return NewQuery(
            query_id=query_id,
            user_id=row.user_id,
            subject=self._users.identity(row).subject,
            bank_codes=tuple(req.bank_codes),
            consent_text_version=req.consent_text_version,
        )

    async def _check_one_at_a_time(self, user_id: str, person_user_ids: Sequence[str], person_key: str) -> None:
        problem, _ = await self._query_problem(user_id, person_user_ids, person_key)
        if problem is not None:
            raise problem

    async def _query_problem(
        self, user_id: str, person_user_ids: Sequence[str], person_key: str = ""
    ) -> tuple[RuleViolation | None, dt.datetime | None]:
        """R12 for this person now: the refusal, if any, and for the cooldown
        the exact time it ends."""
        now = self._clock.now()
        latest: dt.datetime | None = None
        for uid in person_user_ids or [user_id]:
            unfinished = await self._engine.unfinished_for_user(uid)
            if unfinished is not None:
                meta = {"query_id": unfinished.query_id} if uid == user_id else {}
                return RuleViolation("QUERY_IN_PROGRESS", "another query of this user is not finished yet", meta), None
            ready = await self._engine.latest_ready_time(uid)
            if ready is not None and (latest is None or ready > latest):
                latest = ready
        if person_key and self._closed_ready_time is not None:
            # Issue 22: a closed account of the same person still counts.
            closed = await self._closed_ready_time(person_key)
            if closed is not None and (latest is None or closed > latest):
                latest = closed
        cooldown = self._config.timings.cooldown
        if latest is not None and now < latest + cooldown:
            retry = ceil_second(latest + cooldown)
            return RuleViolation(
                "COOLDOWN_ACTIVE",
                f"a new query is allowed {duration_text(cooldown)} after the latest report",
                {"retry_time": rfc3339(retry)},
                retry_delay=delay_until(retry, now),
            ), retry
        return None, None

    def _fingerprint(self, req: CreateRequest) -> str:
        face = req.face
        content = json.dumps(
            [
                req.verification_id,
                req.sms_code,
                face.claims.hex() if face else "",
                face.signature.hex() if face else "",
                face.key_id if face else "",
                req.consent_text_version,
                list(req.bank_codes),
            ]
        )
        return self._hash.digest(content, "create_query_request")

    # --- reading queries ---

    async def get_query(self, user_id: str, query_id: str) -> QueryView:
        record = await self._owned(user_id, query_id)
        return (await self._views([record]))[0]

    async def watch(self, user_id: str, query_id: str) -> AsyncIterator[tuple[QueryView, str]]:
        await self._users.row(user_id)
        access: tuple[AccessEvent, ...] | None = None
        try:
            async for event in self._engine.watch(query_id):
                if access is None and event.query.user_id != user_id:
                    # Ownership checked on the watch's own first snapshot: one
                    # read of the query, not two (the same answer as _owned's).
                    raise RuleViolation("QUERY_NOT_FOUND", "no such query for this user")
                if access is None or event.query.state in (QueryState.READY, QueryState.EXPIRED):
                    # Report access can only change once a report exists: read the
                    # events at the start and at the end, not once per bank.
                    view = (await self._views([event.query]))[0]
                    access = view.access_events
                else:
                    view = QueryView(event.query, effective_state(event.query, self._clock.now()), access)
                yield view, event.changed_bank_code or ""
        except KeyError:  # erased meanwhile (issue 22: the account was closed)
            raise RuleViolation("QUERY_NOT_FOUND", "no such query for this user") from None

    async def list_queries(self, user_id: str, page_size: int, page_token: str) -> QueryPage:
        await self._users.row(user_id)
        size = query_views.page_size(page_size)
        before = query_views.decode_token(page_token, user_id) if page_token else None
        records = await self._engine.list_for_user(user_id, size + 1, before)
        page, more = records[:size], len(records) > size
        token = query_views.encode_token(user_id, page[-1]) if more and page else ""
        return QueryPage(tuple(await self._views(page)), token)

    async def _owned(self, user_id: str, query_id: str) -> QueryRecord:
        await self._users.row(user_id)
        record = await self._engine.get(query_id)
        if record is None or record.user_id != user_id:
            raise RuleViolation("QUERY_NOT_FOUND", "no such query for this user")
        return record

    async def _views(self, records: Sequence[QueryRecord]) -> list[QueryView]:
        events = await self._store.access_events([r.query_id for r in records])
        now = self._clock.now()
        return [QueryView(r, effective_state(r, now), tuple(events[r.query_id])) for r in records]

    # --- the report (R10, R11) ---

    async def get_report(self, user_id: str, query_id: str, password: str) -> Report:
        validation.six_digits(password, "payment_password")
        row = await self._users.row(user_id)
        record = await self._owned(user_id, query_id)
        state = effective_state(record, self._clock.now())
        if state is QueryState.EXPIRED:
            raise expired(record.report_expire_time)
        if state is not QueryState.READY:
            raise RuleViolation("REPORT_NOT_READY", "the report is not ready yet", {"state": state.value})
        if self._report_keys is not None:
            await self._report_keys.check_readable(user_id, query_id)  # issue 12: after a reset, say so
        result, refusal = await self._passwords.check(user_id, row.password_hash, password)
        await self._store.add_access_event(query_id, self._clock.now(), result)
        if refusal is not None:
            raise refusal
        if self._report_keys is not None:
            bundle = await self._report_keys.device_report(query_id)
            if bundle is not None and record.ready_time and record.report_expire_time:
                # Issue 17: sealed to the device; the hub hands it over unopened.
                previous = await self._new_cards.previous_record(user_id, query_id) if self._new_cards else None
                return Report(
                    query_id, record.ready_time, record.report_expire_time, (), (), (), False, bundle, previous or b""
                )
        try:
            opener = await self._report_keys.opener(user_id, password) if self._report_keys else None
            report = await self._engine.read_report(query_id, opener)
            if self._new_cards is not None and opener is not None:
                report = await self._new_cards.annotate(user_id, report, opener)  # issue 12: new-card marks
            return report
        except ReportUnavailable as gone:
            if gone.state is QueryState.EXPIRED:
                raise expired(gone.expire_time) from None
            raise RuleViolation(
                "REPORT_NOT_READY", "the report is not ready yet", {"state": gone.state.value}
            ) from None

    # --- the ready SMS (R9) ---

    async def notify_ready(self, record: QueryRecord) -> None:
        """Engine ready listener. Idempotent per query: the engine re-runs it
        after a restart until it has succeeded once."""
        if await self._store.notice_sent(record.query_id):
            return
        row = await self._users.row(record.user_id)
        phone = self._users.identity(row).phone
        now = self._clock.now()
        await self._sender.send(SmsMessage(phone, "REPORT_READY", report_ready_text(), now))
        await self._store.mark_notice_sent(record.query_id, now)
