"""Real-name users: enrolment (R1), eligibility by region and identity
document (R1, R2), and the sealed identity the engine sends to banks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cardlookup.clock import Clock
from hub.core.config import HubConfig
from hub.core.domain import Subject
from hub.identity import validation
from hub.identity.errors import RuleViolation
from hub.identity.passwords import PasswordHasher
from hub.keys.crypto import HubKeys, Sealed
from hub.store.erasure import ErasureStore
from hub.store.users import UserRow, UserStore

CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "CST")
"""Identity documents expire by the calendar date in China."""


@dataclass(frozen=True)
class Enrolment:
    user_id: str
    full_name: str
    id_number: str
    id_expiry_date: str
    region_code: str
    phone_number: str
    payment_password: str


@dataclass(frozen=True)
class UserView:
    """A user as the API shows them: no name, no ID number, masked phone."""

    user_id: str
    region_code: str
    masked_phone: str
    id_expiry: dt.date | None
    ineligible_reason: str
    """'' when the user may start a lookup now."""
    create_time: dt.datetime
    update_time: dt.datetime
    eligible_time: dt.datetime | None = None
    """With COOLDOWN_ACTIVE: when a new query is allowed (hub.identity.journey)."""


@dataclass(frozen=True)
class Identity:
    """The unsealed real-name data of one user."""

    subject: Subject
    phone: str


def _context(user_id: str) -> bytes:
    return f"user:{user_id}".encode()


def _key_context(user_id: str) -> bytes:
    return f"user-data-key:{user_id}".encode()


USER_KEYED = b"user-data-key/1"
"""identity_wrapped_key of a record encrypted under the user's data key
(nonce + AES-256-GCM in identity_ciphertext) instead of its own envelope."""


class UserDirectory:
    def __init__(
        self,
        config: HubConfig,
        keys: HubKeys,
        clock: Clock,
        store: UserStore,
        hasher: PasswordHasher,
        data_keys: ErasureStore | None = None,
    ) -> None:
        self._config = config
        self._keys = keys
        self._clock = clock
        self._store = store
        self._hasher = hasher
        self._password_set: Callable[[str, str], Awaitable[None]] | None = None
        self._data_keys = data_keys

    def on_password_set(self, hook: Callable[[str, str], Awaitable[None]]) -> None:
        """Issue 12: `hook(user_id, password)` runs after enrolment stored a
        payment password (hub.identity.report_keys derives the user's key)."""
        self._password_set = hook

    async def enrol(self, e: Enrolment) -> UserView:
        user_id = validation.app_id(e.user_id, "user_id")
        name = validation.full_name(e.full_name)
        id_number = validation.id_number(e.id_number)
        expiry = validation.expiry_date(e.id_expiry_date)
        region = validation.region_code(e.region_code)
        phone = validation.phone_number(e.phone_number)
        keep_password = not e.payment_password
        if keep_password:
            if await self._store.get(user_id) is None:
                raise RuleViolation(
                    "INVALID_FIELD", "payment_password is required at first enrolment", {"field": "payment_password"}
                )
            password_hash = ""
        else:
            password_hash = await self._hasher.hash(validation.six_digits(e.payment_password, "payment_password"))
        payload = json.dumps({"full_name": name, "id_number": id_number, "phone": phone}).encode()
        # Issue 22: an account closed between sealing and storing took the
        # data key with it; seal again under a new key. (Were it closed once
        # more during the retry, the identity would stay unreadable until the
        # next EnrollUser: `identity` says USER_NOT_FOUND meanwhile.)
        for _ in range(2):
            now = self._clock.now()
            sealed = await self._seal_identity(user_id, payload, now)
            row = await self._store.upsert(
                UserRow(
                    user_id=user_id,
                    id_hash=self._keys.keyed_hash.digest(id_number, "id_number"),
                    identity_wrapped_key=sealed.wrapped_key,
                    identity_ciphertext=sealed.ciphertext,
                    masked_phone=validation.mask_phone(phone),
                    region_code=region,
                    id_expiry=expiry,
                    password_hash=password_hash,
                    password_failures=0,
                    password_locked_until=None,
                    create_time=now,
                    update_time=now,
                ),
                keep_password=keep_password,
            )
            if self._data_keys is None or await self._data_keys.data_key(user_id) is not None:
                break
        if not keep_password and self._password_set is not None:
            await self._password_set(user_id, e.payment_password)
        return self._view(row)

    async def get(self, user_id: str) -> UserView:
        return self._view(await self.row(user_id))

    async def row(self, user_id: str) -> UserRow:
        validation.app_id(user_id, "user_id")
        row = await self._store.get(user_id)
        if row is None:
            raise RuleViolation("USER_NOT_FOUND", "no such user is enrolled")
        if row.identity_wrapped_key == USER_KEYED and self._data_keys is not None:
            row = dataclasses.replace(row, data_key=await self._data_keys.data_key(user_id))
        return row

    async def _seal_identity(self, user_id: str, payload: bytes, now: dt.datetime) -> Sealed:
        """Issue 22, crypto-shredding: under the user's own data key (kept
        sealed under the KEK in user_data_keys) when there is a key store;
        closing the account deletes that key."""
        if self._data_keys is None:
            return self._keys.envelope.seal(payload, _context(user_id))
        candidate = self._keys.envelope.seal(os.urandom(32), _key_context(user_id))
        data_key = self._keys.envelope.open(
            await self._data_keys.ensure_data_key(user_id, candidate, now), _key_context(user_id)
        )
        nonce = os.urandom(12)
        return Sealed(USER_KEYED, nonce + AESGCM(data_key).encrypt(nonce, payload, _context(user_id)))

    async def require_eligible(self, user_id: str) -> UserRow:
        """The user's row if they may start a lookup now (R1, R2), else the
        refusal."""
        row = await self.row(user_id)
        problem = self.eligibility_problem(row)
        if problem is not None:
            raise problem
        return row

    def eligibility_problem(self, row: UserRow) -> RuleViolation | None:
        if row.region_code not in self._config.open_regions:
            return RuleViolation(
                "REGION_NOT_OPEN", "the service is not open in the user's region yet", {"region_code": row.region_code}
            )
        today = self._clock.now().astimezone(CHINA_TZ).date()
        if row.id_expiry is not None and row.id_expiry < today:
            return RuleViolation(
                "ID_DOCUMENT_EXPIRED",
                "the user's identity document has expired; update it in the app first",
                {"id_expiry_date": row.id_expiry.isoformat()},
            )
        return None

    def identity(self, row: UserRow) -> Identity:
        if row.identity_wrapped_key == USER_KEYED:
            if row.data_key is None:  # the key is gone: the account was closed
                raise RuleViolation("USER_NOT_FOUND", "no such user is enrolled")
            data_key = self._keys.envelope.open(row.data_key, _key_context(row.user_id))
            nonce, ciphertext = row.identity_ciphertext[:12], row.identity_ciphertext[12:]
            raw = AESGCM(data_key).decrypt(nonce, ciphertext, _context(row.user_id))
        else:
            raw = self._keys.envelope.open(
                Sealed(row.identity_wrapped_key, row.identity_ciphertext), _context(row.user_id)
            )
        data = json.loads(raw)
        return Identity(Subject(full_name=data["full_name"], id_number=data["id_number"]), data["phone"])

    async def same_person_user_ids(self, row: UserRow) -> list[str]:
        """Every app account enrolled with this user's ID number (the
        cooldown is per person, not per account)."""
        return await self._store.user_ids_with_id_hash(row.id_hash)

    def _view(self, row: UserRow) -> UserView:
        problem = self.eligibility_problem(row)
        return UserView(
            user_id=row.user_id,
            region_code=row.region_code,
            masked_phone=row.masked_phone,
            id_expiry=row.id_expiry,
            ineligible_reason=problem.reason if problem else "",
            create_time=row.create_time,
            update_time=row.update_time,
        )
