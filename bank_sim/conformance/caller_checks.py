"""The caller check on every bank service the bank offers (new in this
version of the guide): a certificate from the CA that is not the hub's must
be refused PERMISSION_DENIED / CALLER_NOT_HUB by every method of every
service of cardlookup.bank.v1 the bank serves, not only by ListCards. A
method the bank does not offer answers UNIMPLEMENTED and is passed over.

Each method is called with a request that would succeed for the hub (for
OpenCardCase: a case about a card the bank listed), so a bank that forgets
the check on one service opens a case for the app backend and fails here.
Other methods (the session stream, services added to the contract later)
get an empty request: the caller check comes before anything else."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from bank_sim.conformance.case_checks import case_request
from bank_sim.conformance.credentials import ClientIdentity
from bank_sim.conformance.probe import LIST_CARDS, Answer, Probe, Refusal
from bank_sim.conformance.refusals import refusal_problem
from bank_sim.conformance.results import Check, CheckFailed, CheckSkipped
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.bank.v1 import card_session_pb2 as session_pb
from cardlookup.pki import HUB_CLIENT_NAME
from cardlookup.rpc_errors import error_info_of

OPEN_CARD_CASE = "/cardlookup.bank.v1.CardCaseService/OpenCardCase"


def bank_methods() -> list[tuple[str, bool, bool]]:
    """(path, client streaming, server streaming) of every method of every
    service in the bank contract."""
    return [
        (f"/{service.full_name}/{method.name}", method.client_streaming, method.server_streaming)
        for contract in (bank_pb, session_pb)
        for service in contract.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


def _same(data: bytes) -> bytes:
    return data


async def _request_for(probe: Probe, path: str) -> bytes:
    if path == LIST_CARDS:
        return probe.valid_request().SerializeToString()
    if path == OPEN_CARD_CASE:
        answer, request = await probe.baseline()
        card_ref = answer.cards[0].card_ref if answer.ok and answer.cards else "conformance-card"
        return case_request(probe, request.query_id, card_ref).SerializeToString()
    return b""


async def call_method(
    probe: Probe, identity: ClientIdentity, path: str, client_streaming: bool, server_streaming: bool
) -> Answer:
    """One call of any bank method with raw bytes, as `identity`."""
    target = probe.target
    payload = await _request_for(probe, path)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=target.ca_cert.read_bytes(),
        private_key=identity.key.read_bytes(),
        certificate_chain=identity.cert.read_bytes(),
    )
    options = [("grpc.ssl_target_name_override", target.expected_server_name), ("grpc.enable_retries", 0)]
    raw: list[bytes] = []

    async def one() -> AsyncIterator[bytes]:
        # A stream other than for a listed method gets no message: it is
        # half-closed at once. Writing to a stream the bank refuses races its
        # status, and grpc.aio may then report INTERNAL without the details.
        if payload:
            yield payload

    async with grpc.aio.secure_channel(target.address, credentials, options=options) as channel:
        try:
            if client_streaming and server_streaming:
                bidi = channel.stream_stream(path, _same, _same)(one(), timeout=target.timeout)
                async for message in bidi:
                    raw.append(message)
            elif client_streaming:
                raw.append(await channel.stream_unary(path, _same, _same)(one(), timeout=target.timeout))
            elif server_streaming:
                async for message in channel.unary_stream(path, _same, _same)(payload, timeout=target.timeout):
                    raw.append(message)
            else:
                raw.append(await channel.unary_unary(path, _same, _same)(payload, timeout=target.timeout))
        except grpc.aio.AioRpcError as error:
            return Answer(error.code(), error.details() or "", error_info_of(error), tuple(raw), ())
    return Answer(grpc.StatusCode.OK, "", None, tuple(raw), ())


async def caller_must_be_hub_every_service(probe: Probe) -> None:
    other = probe.target.other_client
    if other is None:
        raise CheckSkipped("no second client certificate from the CA was given (--other-client-cert)")
    problems = []
    for path, client_streaming, server_streaming in bank_methods():
        answer = await call_method(probe, other, path, client_streaming, server_streaming)
        if answer.code == grpc.StatusCode.UNIMPLEMENTED:
            continue  # not offered
        if not answer.ok:
            probe.refusals.append(
                Refusal("tls.caller_must_be_hub_every_service", f"a non-hub caller of {path}", answer)
            )
        if answer.ok:
            problems.append(
                f"{path} answered a client certificate that is not the hub's ({len(answer.raw)} message(s))"
            )
            continue
        problem = refusal_problem(answer, grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_HUB")
        if problem is not None:
            problems.append(f"{path}: {problem}")
    if problems:
        raise CheckFailed(
            "; ".join(problems) + f". Fix: check the caller on every method of every bank service you serve, before "
            f"reading the request: serve only {HUB_CLIENT_NAME} (DNS SubjectAltName) and refuse anyone else with "
            "PERMISSION_DENIED and reason CALLER_NOT_HUB (one interceptor for all services does it)."
        )


CALLER_CHECKS = (
    Check(
        "tls.caller_must_be_hub_every_service",
        "Every bank service the bank offers (ListCards, OpenCardCase, ...) refuses a client certificate from "
        "the CA that is not the hub's: PERMISSION_DENIED, CALLER_NOT_HUB.",
        caller_must_be_hub_every_service,
        since="1.3",
    ),
)
