"""The payment password (支付密码, R10): argon2id hashes (memory-hard, so a
stolen table of 6-digit passwords is slow to brute-force), computed off the
event loop a bounded number at a time, with lockout after repeated failures.

Parameters (issue 10 item 2): argon2id, m = 19 MiB, t = 2, p = 1, OWASP's
Password Storage Cheat Sheet recommendation. Each hash holds 19 MiB while
it runs, and at most `concurrency` (default 2, one per core of the reference
machine) run at once, so hashing costs the hub at most 38 MiB however many
EnrollUser and GetReport calls arrive together. Version 1 used RFC 9106's
second profile (m = 64 MiB, t = 3, p = 4) with no bound: 20 concurrent
journeys peaked at about 460 MB. Hashes made with it keep verifying
(argon2 encodes its parameters in the hash) and are re-hashed with the
current parameters the next time the right password is given.

A call waits in a queue for a hashing slot. The wait is bounded by the
call's deadline (`hub.core.calls.deadline`, set by the API interceptor): a call
that cannot be served before its deadline is refused at once, UNAVAILABLE /
HUB_UNAVAILABLE ("busy, retry"), instead of hashing for a client that has
gone; a refused check counts no password attempt.

Pepper (issue 17): argon2id runs over HMAC-SHA256(hub key, password), not
over the password, with the hub's index key (hub.keys.crypto.KeyedHash, in the
HSM when `[hsm]` is configured). The database alone then confirms nothing:
without the key a thief cannot even start on the 10^6 six-digit passwords.
Such hashes are stored as `pep1:` + the argon2 hash; with `[hsm]
password_pepper_key_label` the HMAC runs on the HSM (the key never leaves
it) and hashes are stored as `pep2:` + the argon2 hash. A hash of an older
form (unpeppered, or `pep1:` once the HSM key is configured) keeps verifying
and is re-hashed with the current pepper the next time the right password
is given.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cardlookup.clock import Clock
from hub.core.calls import deadline
from hub.identity.errors import RuleViolation, rfc3339
from hub.store.users import AccessResult, UserStore

T = TypeVar("T")

DEFAULT_PARAMETERS = argon2.Parameters(
    type=argon2.Type.ID,
    version=19,
    salt_len=16,
    hash_len=32,
    time_cost=2,
    memory_cost=19 * 1024,
    parallelism=1,
)
"""argon2id, t=2, m=19 MiB (19,456 KiB), p=1: OWASP's recommendation. Memory
per hash in flight: 19 MiB."""

DEFAULT_CONCURRENCY = 2
"""Hashes computed at once (each holds its memory while it runs)."""

BUSY = "HUB_UNAVAILABLE"
PEPPERED = "pep1:"
"""Prefix of a hash peppered under the index key."""
HSM_PEPPERED = "pep2:"
"""Prefix of a hash peppered on the HSM."""
Pepper = Callable[[str], str]
"""password -> the keyed digest argon2 hashes in its place."""


def busy() -> RuleViolation:
    return RuleViolation(BUSY, "the hub is busy checking passwords; retry in a moment")


class PasswordHasher:
    """argon2id hashing, `concurrency` hashes at a time, queued callers
    bounded by their call's deadline. The running-average hash time it keeps
    is its own (nobody else reads or invalidates it)."""

    def __init__(
        self,
        parameters: argon2.Parameters = DEFAULT_PARAMETERS,
        concurrency: int = DEFAULT_CONCURRENCY,
        pepper: Pepper | None = None,
        hsm_pepper: Pepper | None = None,
    ):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._hasher = argon2.PasswordHasher.from_parameters(parameters)
        self._concurrency = concurrency
        self._peppers = {PEPPERED: pepper, HSM_PEPPERED: hsm_pepper}
        self._current = HSM_PEPPERED if hsm_pepper else PEPPERED if pepper else ""
        self._slots = asyncio.Semaphore(concurrency)
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix="argon2")
        self._queued = 0
        self.mean_s = 0.05
        """Running average of one hash's duration (to judge a deadline)."""
        self.peak_in_flight = 0
        """The most hashes that ever ran at once (for tests and metrics)."""
        self._in_flight = 0

    @property
    def concurrency(self) -> int:
        return self._concurrency

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        until = deadline()
        if until is not None:
            # Our hash ends after those queued ahead of us, `concurrency` at a time.
            expected = (self._queued // self._concurrency + 1) * self.mean_s
            if loop.time() + expected > until:
                raise busy()
        self._queued += 1
        try:
            if until is None:
                await self._slots.acquire()
            else:
                try:
                    async with asyncio.timeout_at(until - self.mean_s):
                        await self._slots.acquire()
                except TimeoutError:
                    raise busy() from None
        finally:
            self._queued -= 1
        self._in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        started = time.perf_counter()
        try:
            return await loop.run_in_executor(self._threads, fn)
        finally:
            self._in_flight -= 1
            self._slots.release()
            self.mean_s = 0.8 * self.mean_s + 0.2 * (time.perf_counter() - started)

    def _peppered(self, prefix: str, password: str) -> str | None:
        if not prefix:
            return password
        pepper = self._peppers.get(prefix)
        return pepper(password) if pepper is not None else None

    async def hash(self, password: str) -> str:
        peppered = self._peppered(self._current, password)
        assert peppered is not None
        return self._current + await self._run(lambda: self._hasher.hash(peppered))

    async def matches(self, password_hash: str, password: str) -> bool:
        prefix = next((p for p in (PEPPERED, HSM_PEPPERED) if password_hash.startswith(p)), "")
        secret = self._peppered(prefix, password)
        if secret is None:
            return False  # peppered with a key this hub does not hold
        stored = password_hash[len(prefix) :]

        def check() -> bool:
            try:
                return self._hasher.verify(stored, secret)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await self._run(check)

    def needs_rehash(self, password_hash: str) -> bool:
        """True for a hash made with other parameters (e.g. version 1's), or
        without the pepper when the hasher has one."""
        if self._current and not password_hash.startswith(self._current):
            return True
        try:
            return self._hasher.check_needs_rehash(password_hash.removeprefix(self._current))
        except InvalidHashError:
            return False


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
            await self._upgrade(user_id, password_hash, password)
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

    async def _upgrade(self, user_id: str, password_hash: str, password: str) -> None:
        """Re-hashes a password stored with older parameters, now that it is
        known to be right; best effort (busy: next time)."""
        if not self._hasher.needs_rehash(password_hash):
            return
        try:
            new_hash = await self._hasher.hash(password)
        except RuleViolation:
            return
        await self._store.replace_password_hash(user_id, password_hash, new_hash)
