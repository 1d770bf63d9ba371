"""Request messages and resource names, built once for both clients.

The async (client.aio) and sync (client.sync) clients differ only in how
they call; what they send is built here, so the two can never drift apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cardlookup.hub.v1 import card_lookup_service_pb2 as svc
from cardlookup.hub.v1 import face_attestation_pb2 as face_pb
from cardlookup.hub.v1 import resources_pb2 as pb
from cardlookup.resource_names import query_name, report_name, user_name


def enroll_user(
    *,
    user_id: str,
    full_name: str,
    id_number: str,
    id_expiry_date: dt.date | None,
    region_code: str,
    phone_number: str,
    payment_password: str = "",
) -> svc.EnrollUserRequest:
    return svc.EnrollUserRequest(
        user_id=user_id,
        full_name=full_name,
        id_number=id_number,
        id_expiry_date=id_expiry_date.isoformat() if id_expiry_date else "",
        region_code=region_code,
        phone_number=phone_number,
        payment_password=payment_password,
    )


def create_query(
    *,
    user_id: str,
    request_id: str,
    verification_id: str,
    sms_code: str,
    face_attestation: face_pb.FaceAttestation | None,
    consent_text_version: str,
    bank_codes: Sequence[str],
) -> svc.CreateQueryRequest:
    return svc.CreateQueryRequest(
        user_id=user_id,
        request_id=request_id,
        verification_id=verification_id,
        sms_code=sms_code,
        face_attestation=face_attestation,
        consent_text_version=consent_text_version,
        bank_codes=list(bank_codes),
    )


def get_query(user_id: str, query_id: str) -> svc.GetQueryRequest:
    return svc.GetQueryRequest(name=query_name(user_id, query_id))


def watch_query(user_id: str, query_id: str, changes_only: bool = False) -> svc.WatchQueryRequest:
    view = svc.WATCH_VIEW_CHANGES if changes_only else svc.WATCH_VIEW_UNSPECIFIED
    return svc.WatchQueryRequest(name=query_name(user_id, query_id), view=view)


def apply_changes(current: pb.Query, changes: pb.Query) -> None:
    """Folds a WATCH_VIEW_CHANGES message into `current` (the first message's
    query, kept by the caller): the state and times, each changed outcome
    in place by bank_code, the report access events when sent."""
    current.state = changes.state
    for field in ("create_time", "report_due_time", "ready_time", "report_expire_time"):
        if changes.HasField(field):
            getattr(current, field).CopyFrom(getattr(changes, field))
    if changes.bank_outcomes:
        where = {o.bank_code: i for i, o in enumerate(current.bank_outcomes)}
        for outcome in changes.bank_outcomes:
            i = where.get(outcome.bank_code)
            if i is None:
                current.bank_outcomes.add().CopyFrom(outcome)
            else:
                current.bank_outcomes[i].CopyFrom(outcome)
    if changes.report_access_events:
        del current.report_access_events[:]
        current.report_access_events.extend(changes.report_access_events)


def list_queries(user_id: str, page_size: int, page_token: str) -> svc.ListQueriesRequest:
    return svc.ListQueriesRequest(parent=user_name(user_id), page_size=page_size, page_token=page_token)


def get_report(user_id: str, query_id: str, payment_password: str) -> svc.GetReportRequest:
    return svc.GetReportRequest(name=report_name(user_id, query_id), payment_password=payment_password)


def get_user(user_id: str) -> svc.GetUserRequest:
    return svc.GetUserRequest(user_id=user_id)


def list_banks(user_id: str) -> svc.ListBanksRequest:
    return svc.ListBanksRequest(user_id=user_id)


def start_verification(user_id: str) -> svc.StartVerificationRequest:
    return svc.StartVerificationRequest(user_id=user_id)


def change_payment_password(user_id: str, old_password: str, new_password: str) -> svc.ChangePaymentPasswordRequest:
    return svc.ChangePaymentPasswordRequest(
        user_id=user_id, old_payment_password=old_password, new_payment_password=new_password
    )


def delete_user(user_id: str, payment_password: str) -> svc.DeleteUserRequest:
    return svc.DeleteUserRequest(user_id=user_id, payment_password=payment_password)


def flag_card(
    user_id: str,
    query_id: str,
    payment_password: str,
    card_id: str,
    kind: pb.CardCaseKind,
    device_card: svc.DeviceSealedCard | None = None,
) -> svc.FlagCardRequest:
    """`device_card` (issue 17): the card as the device opened it, for a
    report sealed to the device (client.device_key.sealed_card)."""
    return svc.FlagCardRequest(
        name=query_name(user_id, query_id),
        payment_password=payment_password,
        card_id=card_id,
        kind=kind,
        device_card=device_card,
    )


def tracking_new_cards(request: svc.CreateQueryRequest) -> svc.CreateQueryRequest:
    """The same CreateQuery, opted in to "new cards since the last lookup"."""
    out = svc.CreateQueryRequest()
    out.CopyFrom(request)
    out.track_new_cards = True
    return out
