"""Reports only the user can open (issue 12, R10, R14): the key pair behind
the payment password, and the three moments it matters.

- Setting the password (EnrollUser): a key pair is derived from it and its
  public half stored. Enrolling again with the same password keeps the key;
  with another password (a reset: the user no longer knows the old one) a
  new key with the next epoch replaces it, and every report sealed under the
  old epoch becomes unreadable for good; GetReport then says so
  (REPORT_SEALED_TO_OLD_PASSWORD).
- A bank's answer arriving (issue 17): the engine's own sealer
  (hub.reports.sealing) seals it to the user's public key with HPKE, and READY
  bundles the sealed answers; nothing the hub holds can open them. The
  report hook (`seal_report`) remains for users whose answers were
  envelope-sealed (no key at all when they arrived).
- The device's report key (issue 17, EnrollUser `report_public_key`,
  ReplaceReportKey): when registered, answers are sealed to it instead and
  GetReport hands the bundle over unopened (`device_report`).
- Opening (GetReport) and changing the password (ChangePaymentPassword):
  the private key is derived in memory from the password the request
  carries, used, and dropped. A change opens every live report with the old
  key and seals it to the new one, atomically with the new password hash.

The argon2id cost is R10's (hub.identity.passwords.DEFAULT_PARAMETERS); each
derivation runs off the event loop.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable

import argon2
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cardlookup.clock import Clock
from hub.core.logging import get_logger
from hub.identity import validation
from hub.identity.errors import RuleViolation, rfc3339
from hub.identity.passwords import DEFAULT_PARAMETERS, PasswordGate, PasswordHasher
from hub.identity.users import UserDirectory
from hub.keys.crypto import KeyedHash, Sealed
from hub.keys.user_sealing import (
    DEVICE,
    UserKeyRecord,
    derive_private_key_async,
    epoch_of,
    hpke_kind,
    is_hpke_sealed,
    is_user_sealed,
    new_salt,
    open_with,
    public_bytes,
    reseal,
    seal_to,
)
from hub.reports.contexts import report_context
from hub.store.device_keys import DeviceKeyStore
from hub.store.user_keys import UserKeyStore

log = get_logger("hub.report_keys")

Opener = Callable[[Sealed, bytes], bytes]
"""Opens a user-sealed item given its associated data (in memory only)."""


class ReportKeys:
    def __init__(
        self,
        store: UserKeyStore,
        users: UserDirectory,
        gate: PasswordGate,
        hasher: PasswordHasher,
        keyed_hash: KeyedHash,
        clock: Clock,
        parameters: argon2.Parameters = DEFAULT_PARAMETERS,
        devices: DeviceKeyStore | None = None,
    ) -> None:
        self._store = store
        self._users = users
        self._gate = gate
        self._hasher = hasher
        self._hash = keyed_hash
        self._clock = clock
        self._parameters = parameters
        self._devices = devices

    # --- the device's report key (issue 17) ---

    async def set_device_key(self, user_id: str, public_key: bytes) -> int:
        """EnrollUser's `report_public_key`: from now on every answer of the
        user is sealed to it on arrival. Returns the key's epoch."""
        if self._devices is None:
            raise RuntimeError("no device key store")
        epoch = await self._devices.put(user_id, validation.report_public_key(public_key), self._clock.now())
        log.info("device_key_set", user_id=user_id, epoch=epoch)
        return epoch

    async def replace_device_key(self, user_id: str, password: str, public_key: bytes) -> int:
        """ReplaceReportKey: a new device, guarded by R10's payment-password
        check and lockout. Reports sealed to the old device stay its own."""
        validation.six_digits(password, "payment_password")
        validation.report_public_key(public_key)
        row = await self._users.row(user_id)
        _, refusal = await self._gate.check(user_id, row.password_hash, password)
        if refusal is not None:
            raise refusal
        return await self.set_device_key(user_id, public_key)

    async def device_report(self, query_id: str) -> bytes | None:
        """The bundle of a report sealed to the device (GetReport hands it
        over as is), or None if the report is not device-sealed."""
        sealed = await self._store.report(query_id)
        return sealed.ciphertext if sealed is not None and _to_device(sealed) else None

    def _pepper(self, user_id: str) -> bytes:
        return bytes.fromhex(self._hash.digest(user_id, "user_report_key"))

    async def _derive(self, user_id: str, password: str, salt: bytes) -> X25519PrivateKey:
        return await derive_private_key_async(password, salt, self._pepper(user_id), self._parameters)

    async def _new_key(self, user_id: str, password: str, epoch: int) -> UserKeyRecord:
        salt = new_salt()
        private = await self._derive(user_id, password, salt)
        return UserKeyRecord(user_id, epoch, public_bytes(private.public_key()), salt)

    async def _matches(self, key: UserKeyRecord, password: str) -> X25519PrivateKey | None:
        private = await self._derive(key.user_id, password, key.salt)
        return private if hmac.compare_digest(public_bytes(private.public_key()), key.public_key) else None

    # --- the password is set (EnrollUser) ---

    async def password_set(self, user_id: str, password: str) -> None:
        """Keeps the key when the password is the same; else a new epoch (a
        reset: reports sealed before it stay unreadable)."""
        current = await self._store.get(user_id)
        if current is not None and await self._matches(current, password) is not None:
            return
        epoch = current.epoch + 1 if current else 1
        key = await self._new_key(user_id, password, epoch)
        if await self._store.put(key, self._clock.now(), current.epoch if current else None):
            log.info("user_key_set", epoch=epoch)

    # --- READY: the engine's hook ---

    async def seal_report(self, user_id: str, plaintext: bytes, context: bytes) -> Sealed | None:
        """Seals to the user's public key; None if the user has no key yet (a
        user enrolled before this feature: the engine then keeps its own
        envelope until the user sets or confirms a password)."""
        key = await self._store.get(user_id)
        if key is None:
            return None
        return seal_to(key.public_key, key.epoch, plaintext, context)

    # --- GetReport ---

    async def check_readable(self, user_id: str, query_id: str) -> None:
        """Before the password is checked: a report sealed under an epoch
        older than the user's key can never be opened again."""
        sealed = await self._store.report(query_id)
        if sealed is None or not is_user_sealed(sealed) or _to_device(sealed):
            return
        key = await self._store.get(user_id)
        if key is None or epoch_of(sealed) != key.epoch:
            meta = {}
            when = await self._store.key_time(user_id)
            if when is not None:
                meta["password_reset_time"] = rfc3339(when)
            raise RuleViolation(
                "REPORT_SEALED_TO_OLD_PASSWORD",
                "the report was sealed to a payment password that has since been reset; it cannot be opened",
                meta,
            )

    async def opener(self, user_id: str, password: str) -> Opener:
        """After the password passed R10's check: the opener of the user's
        sealed items. A key that does not match the (correct) password means
        the password was reset and the key step did not complete: a new key
        is made from it, as at enrolment."""
        key = await self._store.get(user_id)
        private = await self._matches(key, password) if key else None
        if private is None:
            await self.password_set(user_id, password)
            key = await self._store.get(user_id)
            private = await self._matches(key, password) if key else None
        found = private

        def open_sealed(sealed: Sealed, context: bytes) -> bytes:
            if found is None:
                raise InvalidTag()
            return open_with(found, sealed, context)

        return open_sealed

    # --- ChangePaymentPassword ---

    async def change_password(self, user_id: str, old_password: str, new_password: str) -> int:
        """Checks the old password under R10's lockout, then re-wraps every
        live report to the key of the new password, atomically with the new
        password hash. Returns how many reports were re-wrapped."""
        validation.six_digits(old_password, "old_payment_password")
        validation.six_digits(new_password, "new_payment_password")
        row = await self._users.row(user_id)
        _, refusal = await self._gate.check(user_id, row.password_hash, old_password)
        if refusal is not None:
            raise refusal
        current = await self._store.get(user_id)
        epoch = current.epoch + 1 if current else 1
        # Three independent argon2id runs (old key, new key, new hash): at once.
        old_private, new_key, new_hash = await asyncio.gather(
            self._matches(current, old_password) if current else _none(),
            self._new_key(user_id, new_password, epoch),
            self._hasher.hash(new_password),
        )
        rewrapped: list[tuple[str, Sealed, Sealed]] = []
        if current is not None and old_private is not None:
            for query_id, sealed in await self._store.live_reports(user_id, self._clock.now()):
                if not is_user_sealed(sealed) or _to_device(sealed) or epoch_of(sealed) != current.epoch:
                    continue  # a report of an earlier reset stays unreadable; the device's stays its
                new = reseal(old_private, sealed, new_key.public_key, epoch, report_context(query_id))
                rewrapped.append((query_id, sealed, new))
        records: list[tuple[str, Sealed, Sealed]] = []
        if current is not None and old_private is not None:
            for query_id, sealed in await self._store.card_records(user_id):
                if not is_user_sealed(sealed) or _to_device(sealed) or epoch_of(sealed) != current.epoch:
                    continue
                context = b"cards:" + query_id.encode()  # hub.identity.new_cards.record_context
                records.append((query_id, sealed, reseal(old_private, sealed, new_key.public_key, epoch, context)))
        answers: list[tuple[str, str, Sealed, Sealed]] = []
        if current is not None and old_private is not None:
            # Issue 17: answers of running queries are sealed on arrival too.
            for query_id, bank_code, sealed in await self._store.live_answers(user_id):
                if not is_hpke_sealed(sealed) or _to_device(sealed) or epoch_of(sealed) != current.epoch:
                    continue
                new = reseal(old_private, sealed, new_key.public_key, epoch, b"")
                answers.append((query_id, bank_code, sealed, new))
        changed = await self._store.change_password(
            user_id,
            new_hash,
            new_key,
            current.epoch if current else None,
            rewrapped,
            self._clock.now(),
            records,
            answers,
        )
        if not changed:
            # Another change or enrolment won the race: HUB_UNAVAILABLE, the
            # user retries (with whichever password is now current).
            raise RuntimeError("the user's key changed during a password change")
        log.info("payment_password_changed", epoch=epoch, reports=len(rewrapped))
        return len(rewrapped)


async def _none() -> None:
    return None


def _to_device(sealed: Sealed) -> bool:
    return is_hpke_sealed(sealed) and hpke_kind(sealed) == DEVICE
