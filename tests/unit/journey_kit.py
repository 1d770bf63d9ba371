"""The journey (hub.identity.journey.Journey) over the fake engine, for the
unit layer: the real identity services (users, SMS verification, face
check, payment password) on an in-process SQLite file, an SMS sender that
keeps messages in a list, an injected ManualClock. No server, no port, no
subprocess: a journey test runs in milliseconds.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from pathlib import Path

from cardlookup.clock import ManualClock
from cardlookup.pki import PkiPaths, load_ed25519_public
from cardlookup.population import Person
from client.devface import DevFaceProvider
from hub.core.config import HubConfig
from hub.core.notify import SmsMessage
from hub.identity.face import Attestation, FaceVerifier
from hub.identity.journey import CreateRequest, Journey, QueryView
from hub.identity.passwords import PasswordGate, PasswordHasher
from hub.identity.users import Enrolment, UserDirectory
from hub.identity.verification import SmsVerifier
from hub.keys.crypto import HubKeys
from hub.store.db import Database, open_database
from hub.store.identity import IdentityStore
from hub.store.users import UserStore
from tests.unit.fake_engine import FakeEngine

BANKS = ("102", "103", "104")
"""The banks this journey's registry offers (nothing dials them)."""


@dataclass
class CapturedSms:
    messages: list[SmsMessage] = field(default_factory=list)

    async def send(self, message: SmsMessage) -> None:
        self.messages.append(message)

    def last_code(self, verification_id: str) -> str:
        return next(m.code for m in reversed(self.messages) if m.verification_id == verification_id)


@dataclass
class JourneyKit:
    journey: Journey
    engine: FakeEngine
    clock: ManualClock
    sms: CapturedSms
    config: HubConfig
    face: DevFaceProvider
    db: Database

    async def enrol(self, person: Person) -> None:
        fields = person.enrolment()
        expiry = fields.pop("id_expiry_date")
        users: UserDirectory = self.journey._users
        await users.enrol(Enrolment(**fields, id_expiry_date=expiry.isoformat() if expiry else ""))

    def request(
        self, user_id: str, verification_id: str, request_id: str, banks: tuple[str, ...] = BANKS
    ) -> CreateRequest:
        """A CreateQuery with the code the SMS carried and a matching face
        attestation, as an app would send it."""
        msg = self.face.attest(user_id, verification_id, self.clock.now())
        return CreateRequest(
            user_id=user_id,
            request_id=request_id,
            verification_id=verification_id,
            sms_code=self.sms.last_code(verification_id),
            face=Attestation(msg.claims, msg.signature, msg.key_id),
            consent_text_version=self.config.consent_text_version,
            bank_codes=banks,
        )

    async def create(self, user_id: str, request_id: str, banks: tuple[str, ...] = BANKS) -> QueryView:
        """StartVerification, then CreateQuery."""
        started, _ = await self.journey.start_verification(user_id)
        return await self.journey.create_query(self.request(user_id, started.verification_id, request_id, banks))


async def journey_kit(pki: PkiPaths, data_dir: Path, clock: ManualClock | None = None) -> JourneyKit:
    clock = clock or ManualClock(dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC))
    config = HubConfig.dev(pki, {code: "127.0.0.1:9" for code in BANKS}, data_dir)
    keys = HubKeys.load(config)
    db = await open_database(data_dir / "hub.db")
    user_store, identity_store = UserStore(db), IdentityStore(db)
    await user_store.migrate()
    await identity_store.migrate()
    hasher = PasswordHasher(pepper=functools.partial(keys.keyed_hash.digest, purpose="payment_password_pepper"))
    timings = config.timings
    sms = CapturedSms()
    engine = FakeEngine(clock, timings)
    face_keys = {key_id: load_ed25519_public(path) for key_id, path in config.face_provider_keys.items()}
    journey = Journey(
        config=config,
        clock=clock,
        engine=engine,
        users=UserDirectory(config, keys, clock, user_store, hasher),
        store=identity_store,
        verifier=SmsVerifier(identity_store, keys.keyed_hash, sms, clock, timings),
        face=FaceVerifier(face_keys, timings.face_attestation_max_age),
        passwords=PasswordGate(user_store, hasher, clock, timings.password_max_failures, timings.password_lockout),
        sender=sms,
        keyed_hash=keys.keyed_hash,
    )
    engine.add_ready_listener(journey.notify_ready)
    face = DevFaceProvider.from_file(pki.face_provider_key)
    return JourneyKit(journey, engine, clock, sms, config, face, db)
