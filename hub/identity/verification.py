"""SMS verification before every query (R4): a 6-digit code to the
registered phone, kept only as a keyed hash, valid for a short time, a
limited number of wrong tries, usable once, sent at most once per resend
interval per account, person and phone, and at most a daily cap per
phone."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass

from cardlookup.clock import Clock
from hub.core.config import Timings
from hub.core.notify import SmsMessage, SmsSender, verification_text
from hub.identity.errors import RuleViolation, delay_until, rfc3339
from hub.keys.crypto import KeyedHash
from hub.store.identity import IdentityStore, NewVerification, RateLimited, SmsLimits


@dataclass(frozen=True)
class StartedVerification:
    verification_id: str
    expire_time: dt.datetime
    resend_time: dt.datetime


class SmsVerifier:
    def __init__(
        self, store: IdentityStore, keyed_hash: KeyedHash, sender: SmsSender, clock: Clock, timings: Timings
    ) -> None:
        self._store = store
        self._hash = keyed_hash
        self._sender = sender
        self._clock = clock
        self._timings = timings

    def code_hash(self, verification_id: str, code: str) -> str:
        return self._hash.digest(f"{verification_id}:{code}", "sms_code")

    async def start(self, user_id: str, phone: str, person_hash: str) -> StartedVerification:
        """Sends a code to `phone`. Rate limits (R4, anti-abuse): one code per
        resend interval per account, per person (`person_hash`, the ID
        number's keyed hash: a second account of the same person gets no
        second code) and per phone; at most `sms_daily_cap_per_phone` codes
        to one phone in any 24 hours."""
        now = self._clock.now()
        verification_id = str(uuid.uuid4())
        code = f"{secrets.randbelow(10**6):06d}"
        limited = await self._store.add_verification(
            NewVerification(
                verification_id=verification_id,
                user_id=user_id,
                code_hash=self.code_hash(verification_id, code),
                create_time=now,
                expire_time=now + self._timings.sms_code_ttl,
                person_hash=person_hash,
                phone_hash=self._hash.digest(phone, "sms_phone"),
            ),
            SmsLimits(self._timings.sms_resend_interval, self._timings.sms_daily_cap_per_phone),
        )
        if isinstance(limited, RateLimited):
            message = (
                "the daily number of SMS codes to this phone is used up"
                if limited.limit == "daily"
                else "an SMS code was sent too recently"
            )
            raise RuleViolation(
                "SMS_RATE_LIMITED",
                message,
                {"retry_time": rfc3339(limited.retry_time), "limit": limited.limit},
                retry_delay=delay_until(limited.retry_time, now),
            )
        await self._sender.send(
            SmsMessage(
                phone,
                "VERIFICATION_CODE",
                verification_text(code, self._timings.sms_code_ttl),
                now,
                verification_id=verification_id,
                code=code,
            )
        )
        return StartedVerification(
            verification_id, now + self._timings.sms_code_ttl, now + self._timings.sms_resend_interval
        )

    async def require_pending(self, user_id: str, verification_id: str) -> None:
        """Refuses early (before the face check) a verification that cannot
        succeed anyway."""
        row = await self._store.get_verification(verification_id)
        if row is None or row.user_id != user_id:
            raise RuleViolation("VERIFICATION_NOT_FOUND", "no such verification for this user")
        if row.used:
            raise RuleViolation("VERIFICATION_USED", "this verification was already used for a query")
        if row.failed_attempts >= self._timings.sms_max_attempts:
            raise RuleViolation("VERIFICATION_LOCKED", "too many wrong SMS codes; start a new verification")
        if row.expire_time <= self._clock.now():
            raise RuleViolation("VERIFICATION_EXPIRED", "the SMS code has expired; start a new verification")

    async def consume(self, user_id: str, verification_id: str, code: str, request: tuple[str, str, str]) -> None:
        """Uses the verification if `code` is right, recording `request`
        (request_id, fingerprint, query_id) in the same transaction."""
        outcome = await self._store.consume_code(
            user_id=user_id,
            verification_id=verification_id,
            code_hash=self.code_hash(verification_id, code),
            now=self._clock.now(),
            max_attempts=self._timings.sms_max_attempts,
            request=request,
        )
        match outcome.result:
            case "OK":
                return
            case "NOT_FOUND":
                raise RuleViolation("VERIFICATION_NOT_FOUND", "no such verification for this user")
            case "USED":
                raise RuleViolation("VERIFICATION_USED", "this verification was already used for a query")
            case "EXPIRED":
                raise RuleViolation("VERIFICATION_EXPIRED", "the SMS code has expired; start a new verification")
            case "LOCKED":
                raise RuleViolation("VERIFICATION_LOCKED", "too many wrong SMS codes; start a new verification")
            case "WRONG":
                raise RuleViolation(
                    "SMS_CODE_WRONG", "the SMS code is wrong", {"attempts_left": str(outcome.attempts_left)}
                )
