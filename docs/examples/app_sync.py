"""The app backend's lookup journey with the blocking client (docs/app-backend.md).

Against a local stack (docs/hub-engine.md, "Running a hub"), as population user u220000134:

    cardlookup enrol --population-user u220000134
    python $REPO/docs/examples/app_sync.py --hub 127.0.0.1:50051 --pki pki \
        --outbox var/sms-outbox.jsonl --user-id u220000134 --banks 102,308

(--password defaults to the population user's payment password.)
tests/client/test_docs_examples.py runs `look_up` against a real hub.
"""

from __future__ import annotations

import argparse
import datetime as dt
import uuid
from collections.abc import Callable
from pathlib import Path

from cardlookup.hub.v1 import face_attestation_pb2 as face_pb
from cardlookup.hub.v1 import resources_pb2 as pb

# --- the code shown in docs/app-backend.md ---
from client.errors import CardLookupError, CooldownActive, PasswordLocked, UserMustAct
from client.options import ClientOptions
from client.requests import apply_changes
from client.sync import CardLookupClient


def look_up(
    options: ClientOptions,
    user_id: str,
    bank_codes: list[str],
    read_sms_code: Callable[[], str],  # the user types the code the SMS brought
    face_check: Callable[[str], face_pb.FaceAttestation],  # the provider's attestation for a verification id
    payment_password: str,
) -> pb.Report | None:
    with CardLookupClient(options) as hub:
        banks = hub.list_banks(user_id)  # show banks.consent_text; the user accepts it
        try:
            # Refused, before any SMS, when a query could not be created now
            # (the cooldown, a query in progress), with CreateQuery's reason.
            started = hub.start_verification(user_id)
            query = hub.create_query(
                user_id=user_id,
                request_id=uuid.uuid4().hex,  # keep it to retry this same request
                verification_id=started.verification_id,
                sms_code=read_sms_code(),
                face_attestation=face_check(started.verification_id),
                consent_text_version=banks.consent_text_version,
                bank_codes=bank_codes,
            )
        except CooldownActive as e:
            print(f"{e.sentence()} (retry_time {e.metadata['retry_time']})")
            return None
        except UserMustAct as e:  # e.g. a mistyped code or a stale notice: the sentence says what to do
            print(e.sentence())
            return None
        print(query.acceptance_notice)
        kept = None
        for step in hub.watch_query(user_id, query.query_id, changes_only=True):
            # The first message is the state so far; each next one, only the bank that finished.
            if kept is None:
                kept = step.query
            else:
                apply_changes(kept, step.query)
            done = sum(o.state != pb.BANK_OUTCOME_STATE_PENDING for o in kept.bank_outcomes)
            total = len(kept.bank_outcomes)
            print(f"{done}/{total} banks done; query {pb.QueryState.Name(kept.state)}")
        try:
            return hub.get_report(user_id, query.query_id, payment_password)
        except PasswordLocked as e:
            print(e.sentence())  # "... locked after repeated failures, until <Beijing time>."
            return None


# --- development wiring: the SMS outbox file and the development face provider ---


def main() -> None:
    from cardlookup.population import Population
    from client.devface import DevFaceProvider
    from hub.core.notify import read_outbox, verification_code_in

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    for flag in ("--hub", "--pki", "--outbox", "--user-id"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--banks", default="102,308")
    parser.add_argument("--password", help="payment password (default: the population user's)")
    a = parser.parse_args()
    password = a.password or Population().person(a.user_id).payment_password
    options = ClientOptions.from_pki(a.pki, a.hub)
    with CardLookupClient(options) as hub:
        phone_tail = hub.get_user(a.user_id).masked_phone[-4:]

    def read_sms_code() -> str:
        texts = [
            m["text"]
            for m in read_outbox(Path(a.outbox))
            if m["kind"] == "VERIFICATION_CODE" and m["phone"].endswith(phone_tail)
        ]
        code = verification_code_in(texts[-1]) if texts else None
        if code is None:
            raise SystemExit(f"no SMS code in {a.outbox}")
        return code

    face = DevFaceProvider.from_file(Path(a.pki) / "keys" / "face-provider.key")
    try:
        report = look_up(
            options,
            a.user_id,
            a.banks.split(","),
            read_sms_code,
            lambda verification_id: face.attest(a.user_id, verification_id, dt.datetime.now(dt.UTC)),
            password,
        )
    except CardLookupError as e:
        raise SystemExit(f"{e.reason}: {e.sentence()}") from None
    if report is not None:
        for s in report.bank_summaries:
            print(f"{s.bank_code} {s.display_name}: {s.debit_card_count} debit, {s.credit_card_count} credit")


if __name__ == "__main__":
    main()
