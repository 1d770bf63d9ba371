"""The same journey with the asyncio client (docs/app-backend.md): create it
inside the running loop; `await`, `async for`, `async with`.

tests/client/test_docs_examples.py runs `look_up` against a real hub.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from cardlookup.hub.v1 import face_attestation_pb2 as face_pb
from cardlookup.hub.v1 import resources_pb2 as pb

# --- the code shown in docs/app-backend.md ---
from client.aio import AsyncCardLookupClient
from client.errors import CardLookupError, HubUnavailable, SmsCodeWrong
from client.options import ClientOptions


async def look_up(
    options: ClientOptions,
    user_id: str,
    bank_codes: list[str],
    read_sms_code: Callable[[], Awaitable[str]],
    face_check: Callable[[str], Awaitable[face_pb.FaceAttestation]],
    payment_password: str,
) -> pb.Report:
    async with AsyncCardLookupClient(options) as hub:
        banks = await hub.list_banks(user_id)
        started = await hub.start_verification(user_id)
        attestation = await face_check(started.verification_id)
        request_id = uuid.uuid4().hex
        while True:
            try:
                query = await hub.create_query(
                    user_id=user_id,
                    request_id=request_id,
                    verification_id=started.verification_id,
                    sms_code=await read_sms_code(),
                    face_attestation=attestation,
                    consent_text_version=banks.consent_text_version,
                    bank_codes=bank_codes,
                )
                break
            except SmsCodeWrong as e:  # the same request id: nothing was recorded
                print(e.sentence())  # "The SMS code is wrong; 4 attempts left."
        async for step in hub.watch_query(user_id, query.query_id):
            if step.query.state == pb.QUERY_STATE_READY:
                break
        try:
            return await hub.get_report(user_id, query.query_id, payment_password)
        except HubUnavailable:
            raise  # GetReport is never retried for you: each attempt counts (R10)
        except CardLookupError as e:
            print(e.reason, e.code.name, e.metadata)
            raise
