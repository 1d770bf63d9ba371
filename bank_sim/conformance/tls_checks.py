"""Checks of the transport: mutual TLS, the bank's name, who may call."""

from __future__ import annotations

import tempfile
from pathlib import Path

import grpc

from bank_sim.conformance.impostor import write_impostor_identity
from bank_sim.conformance.probe import Answer, Probe, Refusal
from bank_sim.conformance.refusals import refusal_problem
from bank_sim.conformance.results import Check, CheckFailed, CheckSkipped
from cardlookup.pki import HUB_CLIENT_NAME, bank_server_name


def _connection_failed(answer: Answer) -> bool:
    """True when the call never reached the bank's application code."""
    return answer.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and not answer.raw


async def _require_reachable(probe: Probe) -> None:
    answer, _ = await probe.baseline()
    if _connection_failed(answer):
        raise CheckSkipped("the bank cannot be reached with the hub's own credentials (see tls.handshake)")


def _refused_at_transport(answer: Answer) -> bool:
    """A connection refused during the TLS handshake, or a call refused by the
    application with PERMISSION_DENIED before any data."""
    if answer.raw:
        return False
    return answer.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.PERMISSION_DENIED)


async def handshake(probe: Probe) -> None:
    answer, _ = await probe.baseline()
    if not _connection_failed(answer):
        return
    target = probe.target
    raise CheckFailed(
        f"could not complete a call to {target.address} as {target.expected_server_name}: {answer.describe()}. "
        f"Fix: serve a certificate chaining to the CA you were given with DNS SubjectAltName "
        f"{target.expected_server_name}, request a client certificate and trust the same CA for it, and check "
        "the address and that the server speaks HTTP/2 gRPC over TLS 1.2 or 1.3."
    )


async def server_name_binds_bank(probe: Probe) -> None:
    await _require_reachable(probe)
    code = probe.target.bank_code
    other = bank_server_name("999" if code != "999" else "998")
    answer = await probe.call_as(probe.valid_request(), probe.target.hub_client, server_name=other)
    if _connection_failed(answer):
        return
    raise CheckFailed(
        f"the bank's certificate was accepted as {other!r}: {answer.describe()}. The hub binds each bank's "
        f"answer to its certificate name. Fix: serve a certificate naming only {probe.target.expected_server_name} "
        "(no wildcard, no other bank's name)."
    )


async def client_cert_required(probe: Probe) -> None:
    await _require_reachable(probe)
    answer = await probe.call_as(probe.valid_request(), None)
    if _refused_at_transport(answer):
        return
    raise CheckFailed(
        f"a caller with no client certificate got {answer.describe()}. Fix: require a client certificate "
        "during the TLS handshake (e.g. grpc ssl_server_credentials(require_client_auth=True), grpc-js "
        "ServerCredentials.createSsl(ca, keys, true))."
    )


async def client_cert_from_ca_required(probe: Probe) -> None:
    await _require_reachable(probe)
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        impostor = write_impostor_identity(Path(tmp))
        answer = await probe.call_as(probe.valid_request(), impostor)
    if _refused_at_transport(answer):
        return
    raise CheckFailed(
        f"a client certificate naming {HUB_CLIENT_NAME} but issued by an unknown CA got {answer.describe()}. "
        "Fix: trust only the hub's CA for client certificates and verify the chain in the TLS handshake."
    )


async def caller_must_be_hub(probe: Probe) -> None:
    other = probe.target.other_client
    if other is None:
        raise CheckSkipped("no second client certificate from the CA was given (--other-client-cert)")
    await _require_reachable(probe)
    answer = await probe.call_as(probe.valid_request(), other)
    if not answer.ok:
        probe.refusals.append(Refusal("tls.caller_must_be_hub", "a non-hub client certificate", answer))
    problem = refusal_problem(answer, grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_HUB")
    if problem is None:
        return
    raise CheckFailed(
        f"a client certificate from the CA that is not the hub's: {problem}. Fix: after the handshake, read the "
        f"client certificate's DNS SubjectAltNames and serve only {HUB_CLIENT_NAME}; refuse anyone else with "
        "PERMISSION_DENIED and reason CALLER_NOT_HUB."
    )


async def caller_identity_from_san(probe: Probe) -> None:
    impostor = probe.target.cn_impostor
    if impostor is None:
        raise CheckSkipped(
            "no certificate from the CA with the hub's name as common name only was given (--cn-impostor-cert)"
        )
    await _require_reachable(probe)
    answer = await probe.call_as(probe.valid_request(), impostor)
    if not answer.ok:
        probe.refusals.append(Refusal("tls.caller_identity_from_san", "a hub-named common name only", answer))
    problem = refusal_problem(answer, grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_HUB")
    if problem is None:
        return
    raise CheckFailed(
        f"a client certificate from the CA whose common name is {HUB_CLIENT_NAME} but whose DNS SubjectAltName is "
        f"not: {problem}. Fix: take the caller's identity from the certificate's DNS SubjectAltNames only, never "
        "from the subject common name."
    )


TLS_CHECKS = (
    Check(
        "tls.handshake",
        "The bank answers a call over mutual TLS made with the hub's client certificate and the bank's name.",
        handshake,
        since="1.0",
    ),
    Check(
        "tls.server_name_binds_bank",
        "The bank's certificate is valid for its own name <code>.bank.cardlookup.internal only.",
        server_name_binds_bank,
        since="1.0",
    ),
    Check(
        "tls.client_cert_required",
        "A caller without a client certificate is refused.",
        client_cert_required,
        since="1.0",
    ),
    Check(
        "tls.client_cert_from_ca_required",
        "A client certificate from another CA is refused, even when it names the hub.",
        client_cert_from_ca_required,
        since="1.0",
    ),
    Check(
        "tls.caller_must_be_hub",
        "A client certificate from the CA that is not the hub's is refused: PERMISSION_DENIED, CALLER_NOT_HUB.",
        caller_must_be_hub,
        since="1.0",
    ),
    Check(
        "tls.caller_identity_from_san",
        "A certificate from the CA with the hub's name as common name but not as DNS SAN is refused: "
        "PERMISSION_DENIED, CALLER_NOT_HUB.",
        caller_identity_from_san,
        since="1.1",
    ),
)
