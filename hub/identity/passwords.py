"""The payment password (支付密码, R10): argon2id hashes (memory-hard, so a
stolen table of 6-digit passwords is slow to brute-force), checked off the
event loop, with lockout after repeated failures."""

from __future__ import annotations

import asyncio
import datetime as dt

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cardlookup.clock import Clock
from hub.identity.errors import RuleViolation, rfc3339
from hub.store.users import AccessResult, UserStore

DEFAULT_PARAMETERS = argon2.profiles.RFC_9106_LOW_MEMORY
"""argon2id, t=3, m=64 MiB, p=4 (RFC 9106's second recommended option)."""


class PasswordHasher:
    def __init__(self, parameters: argon2.Parameters = DEFAULT_PARAMETERS) -> None:
        self._hasher = argon2.PasswordHasher.from_parameters(parameters)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def matches(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)


class PasswordGate:
    """Checks a payment password under the lockout rule. Returns the access
    result to record; raises PAYMENT_PASSWORD_WRONG / PASSWORD_LOCKED after
    the caller has recorded it (see `check`)."""

    def __init__(
        self, store: UserStore, hasher: PasswordHasher, clock: Clock, max_failures: int, lockout: dt.timedelta
    ) -> None:
        self._store = store
        self._hasher = hasher
        self._clock = clock
        self._max_failures = max_failures
        self._lockout = lockout

    async def check(self, user_id: str, password_hash: str, password: str) -> tuple[AccessResult, RuleViolation | None]:
        """(result, refusal): refusal is None when the password opened."""
        correct = await self._hasher.matches(password_hash, password)
        outcome = await self._store.record_password_attempt(
            user_id, correct, self._clock.now(), self._max_failures, self._lockout
        )
        if outcome.result == "VIEWED":
            return outcome.result, None
        if outcome.locked_until is not None:
            return outcome.result, RuleViolation(
                "PASSWORD_LOCKED",
                "the payment password is locked after repeated failures",
                {"unlock_time": rfc3339(outcome.locked_until)},
            )
        return outcome.result, RuleViolation(
            "PAYMENT_PASSWORD_WRONG", "the payment password is wrong", {"attempts_left": str(outcome.attempts_left)}
        )
