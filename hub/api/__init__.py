"""The app-facing API of the hub (cardlookup.hub.v1.CardLookupService, R17).

`install(ctx)` is the hub's ServiceInstaller for it: runs the identity
migrations, builds the identity services over the engine, registers the
ready-SMS listener and the servicer. The caller check, request decoding,
error mapping and limits are the API interceptor's (hub.api.interceptors),
which the hub server is built with (hub.server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cardlookup.hub.v1 import card_lookup_service_pb2_grpc as svc_grpc
from cardlookup.pki import load_ed25519_public
from hub.api.interceptors import SERVICE_NAME, ApiInterceptor
from hub.api.servicer import CardLookupServicer
from hub.identity.face import FaceVerifier
from hub.identity.journey import Journey
from hub.identity.passwords import PasswordGate, PasswordHasher
from hub.identity.users import UserDirectory
from hub.identity.verification import SmsVerifier
from hub.notify import OutboxSmsSender, SmsSender
from hub.store.identity import IdentityStore
from hub.store.users import UserStore

if TYPE_CHECKING:
    from hub.config import HubConfig
    from hub.server import HubContext


async def install(ctx: HubContext, sender: SmsSender | None = None) -> None:
    config, timings = ctx.config, ctx.config.timings
    user_store, identity_store = UserStore(ctx.db), IdentityStore(ctx.db)
    await user_store.migrate()
    await identity_store.migrate()
    if sender is None:
        sender = OutboxSmsSender(config.sms_outbox_path())
    sender = ctx.metrics.metered_sender(sender)
    hasher = PasswordHasher()
    face = FaceVerifier(
        {key_id: load_ed25519_public(path) for key_id, path in config.face_provider_keys.items()},
        timings.face_attestation_max_age,
    )
    users = UserDirectory(config, ctx.keys, ctx.clock, user_store, hasher)
    journey = Journey(
        config=config,
        clock=ctx.clock,
        engine=ctx.engine,
        users=users,
        store=identity_store,
        verifier=SmsVerifier(identity_store, ctx.keys.keyed_hash, sender, ctx.clock, timings),
        face=face,
        passwords=PasswordGate(user_store, hasher, ctx.clock, timings.password_max_failures, timings.password_lockout),
        sender=sender,
        keyed_hash=ctx.keys.keyed_hash,
    )
    ctx.engine.add_ready_listener(journey.notify_ready)
    servicer = CardLookupServicer(config, users, journey)
    svc_grpc.add_CardLookupServiceServicer_to_server(servicer, ctx.server)
    ctx.service_names.append(SERVICE_NAME)

    def reconfigure(new: HubConfig) -> list[str]:
        # Issue 11 item 3: the registry users choose from, and face-provider keys.
        face.replace_keys({key_id: load_ed25519_public(path) for key_id, path in new.face_provider_keys.items()})
        servicer.reconfigure(new)
        journey.reconfigure(new)
        return [f"face_provider_keys: trusting {', '.join(sorted(new.face_provider_keys)) or 'none'}"]

    ctx.reloaders.append(reconfigure)


__all__ = ["SERVICE_NAME", "ApiInterceptor", "install"]
