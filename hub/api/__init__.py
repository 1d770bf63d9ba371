"""The app-facing API of the hub (cardlookup.hub.v1.CardLookupService, R17).

`install(ctx)` is the hub's ServiceInstaller for it: runs the identity
migrations, builds the identity services over the engine, registers the
ready-SMS listener and the servicer. The caller check, request decoding,
error mapping and limits are the API interceptor's (hub.api.interceptors),
which the hub server is built with (hub.process.server).
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING

from cardlookup.hub.v1 import card_lookup_service_pb2_grpc as svc_grpc
from cardlookup.pki import load_ed25519_public
from hub.api.interceptors import SERVICE_NAME, ApiInterceptor
from hub.api.servicer import CardLookupServicer
from hub.core.notify import OutboxSmsSender, SmsSender
from hub.fanout.cases import CaseCaller
from hub.identity.card_cases import CardCaseDesk
from hub.identity.closure import AccountClosure
from hub.identity.face import FaceVerifier
from hub.identity.journey import Journey
from hub.identity.new_cards import NewCardTracker
from hub.identity.passwords import PasswordGate, PasswordHasher
from hub.identity.report_keys import ReportKeys
from hub.identity.users import UserDirectory
from hub.identity.verification import SmsVerifier
from hub.store.card_cases import CardCaseStore
from hub.store.card_records import CardRecordStore
from hub.store.device_keys import DeviceKeyStore
from hub.store.erasure import ErasureStore
from hub.store.identity import IdentityStore
from hub.store.user_keys import UserKeyStore
from hub.store.users import UserStore

if TYPE_CHECKING:
    from hub.core.config import HubConfig
    from hub.runtime.context import HubContext


async def install(ctx: HubContext, sender: SmsSender | None = None) -> None:
    config, timings = ctx.config, ctx.config.timings
    user_store, identity_store, key_store = UserStore(ctx.db), IdentityStore(ctx.db), UserKeyStore(ctx.db)
    await user_store.migrate()
    await identity_store.migrate()
    await key_store.migrate()
    if sender is None:
        sender = OutboxSmsSender(config.sms_outbox_path())
    sender_inner = sender
    sender = ctx.metrics.metered_sender(sender)
    # Issue 17: the pepper is a keyed hash under the hub's index key, or on the
    # HSM with [hsm] password_pepper_key_label: the database alone confirms no password.
    hasher = PasswordHasher(
        pepper=functools.partial(ctx.keys.keyed_hash.digest, purpose="payment_password_pepper"),
        hsm_pepper=ctx.keys.hsm_password_pepper,
    )
    face = FaceVerifier(
        {key_id: load_ed25519_public(path) for key_id, path in config.face_provider_keys.items()},
        timings.face_attestation_max_age,
    )
    # Issue 22: account closure, per-user data keys and retention limits.
    erasure_store = ErasureStore(ctx.db)
    await erasure_store.migrate()
    users = UserDirectory(config, ctx.keys, ctx.clock, user_store, hasher, erasure_store)
    gate = PasswordGate(user_store, hasher, ctx.clock, timings.password_max_failures, timings.password_lockout)
    # Issue 12: reports sealed to the user's payment-password key.
    device_store = DeviceKeyStore(ctx.db)  # issue 17: the device's report key
    await device_store.migrate()
    report_keys = ReportKeys(key_store, users, gate, hasher, ctx.keys.keyed_hash, ctx.clock, devices=device_store)
    users.on_password_set(report_keys.password_set)
    record_store = CardRecordStore(ctx.db)
    await record_store.migrate()
    new_cards = NewCardTracker(record_store, key_store, ctx.keys.keyed_hash, ctx.clock)
    ctx.engine.set_report_sealer(new_cards.recording(report_keys.seal_report))
    journey = Journey(
        config=config,
        clock=ctx.clock,
        engine=ctx.engine,
        users=users,
        store=identity_store,
        verifier=SmsVerifier(identity_store, ctx.keys.keyed_hash, sender, ctx.clock, timings),
        face=face,
        passwords=gate,
        sender=sender,
        keyed_hash=ctx.keys.keyed_hash,
        report_keys=report_keys,
        new_cards=new_cards,
    )
    ctx.engine.add_ready_listener(journey.notify_ready)
    # Issue 12: "not my card" cases at the banks.
    case_store, case_caller = CardCaseStore(ctx.db), CaseCaller(config)
    await case_store.migrate()
    cases = CardCaseDesk(
        config=config,
        clock=ctx.clock,
        journey=journey,
        users=users,
        store=case_store,
        caller=case_caller,
        signer=ctx.keys.consent_signer,
    )
    ctx.background.append(functools.partial(_close_on_stop, case_caller))
    closure = AccountClosure(
        timings=timings,
        clock=ctx.clock,
        users=users,
        passwords=gate,
        identity_store=identity_store,
        store=erasure_store,
        sms_outbox=config.sms_outbox_path() if isinstance(sender_inner, OutboxSmsSender) else None,
    )
    journey.on_closed_accounts(closure.closed_ready_time)
    ctx.background.append(closure.run_forever)
    servicer = CardLookupServicer(config, users, journey, report_keys, cases, case_store, new_cards, closure)
    svc_grpc.add_CardLookupServiceServicer_to_server(servicer, ctx.server)
    ctx.service_names.append(SERVICE_NAME)

    def reconfigure(new: HubConfig) -> list[str]:
        # Issue 11 item 3: the registry users choose from, and face-provider keys.
        face.replace_keys({key_id: load_ed25519_public(path) for key_id, path in new.face_provider_keys.items()})
        servicer.reconfigure(new)
        journey.reconfigure(new)
        closure.reconfigure(new.timings)
        cases.reconfigure(new)  # "not my card" follows reloads too (issue 19 item 4)
        case_caller.reconfigure(new)
        return [f"face_provider_keys: trusting {', '.join(sorted(new.face_provider_keys)) or 'none'}"]

    ctx.reloaders.append(reconfigure)


async def _close_on_stop(caller: CaseCaller) -> None:
    """Runs as a hub background task: waits until the hub cancels it on
    stop, then closes the case channels."""
    try:
        await asyncio.Event().wait()
    finally:
        await caller.close()


__all__ = ["SERVICE_NAME", "ApiInterceptor", "install"]
