"""The conformance suite catches a bank that gets the transport, the consent
or the errors wrong, and names exactly the broken rules.

The flawed bank here is a small grpc.aio servicer over the population, with
one switch per flaw; everything else about it is right (it passes the whole
suite with no flaw switched on).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import NoReturn

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bank_sim.conformance import ConformanceTarget, Outcome, run_conformance
from bank_sim.conformance.case_checks import CASE_CHECKS
from bank_sim.conformance.session_checks import SESSION_CHECKS
from bank_sim.conformance.target import dev_target, population_subject
from bank_sim.directory import is_name_shaped
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.bank.v1 import card_directory_pb2_grpc as bank_grpc
from cardlookup.checksums import is_valid_id_number
from cardlookup.consent import ConsentError, verify_consent
from cardlookup.pki import CONSENT_KEY_ID, HUB_CLIENT_NAME, PkiPaths, load_ed25519_public
from cardlookup.population import Population
from cardlookup.rpc_errors import BANK_DOMAIN, abort
from cardlookup.tls import peer_names

CODE = "105"
_QUERY_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TYPES = {"debit": bank_pb.CARD_TYPE_DEBIT, "credit": bank_pb.CARD_TYPE_CREDIT}


@dataclass(frozen=True)
class Flaws:
    client_cert_optional: bool = False
    any_caller: bool = False
    wildcard_cert: bool = False
    skip_consent: bool = False
    bare_errors: bool = False
    echo_subject: bool = False
    not_found_for_unknown: bool = False


class FlawedBank(bank_grpc.CardDirectoryServiceServicer):
    def __init__(self, flaws: Flaws, population: Population, pki: PkiPaths) -> None:
        self._flaws = flaws
        self._population = population
        self._keys = {CONSENT_KEY_ID: load_ed25519_public(pki.consent_public_key)}

    async def _refuse(
        self, context: grpc.aio.ServicerContext, code: grpc.StatusCode, reason: str, message: str, id_number: str
    ) -> NoReturn:
        if self._flaws.echo_subject:
            message = f"{message} (subject {id_number})"
        if self._flaws.bare_errors:
            await context.abort(code, message)
        await abort(context, code, reason, message, BANK_DOMAIN)

    async def ListCards(
        self, request: bank_pb.ListCardsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bank_pb.ListCardsResponse]:
        subject = request.subject
        if not self._flaws.any_caller and HUB_CLIENT_NAME not in peer_names(context):
            await self._refuse(context, grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_HUB", "hub only", "")
        if (
            not _QUERY_ID.fullmatch(request.query_id)
            or not subject.full_name
            or not is_name_shaped(subject.full_name)
            or not is_valid_id_number(subject.id_number)
            or not request.HasField("consent")
        ):
            await self._refuse(
                context, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST", "malformed", subject.id_number
            )
        if not self._flaws.skip_consent:
            try:
                verify_consent(
                    request.consent,
                    self._keys,
                    bank_code=CODE,
                    query_id=request.query_id,
                    id_number=subject.id_number,
                    full_name=subject.full_name,
                    now=dt.datetime.now(dt.UTC),
                )
            except ConsentError as error:
                await self._refuse(
                    context, grpc.StatusCode.PERMISSION_DENIED, error.reason, error.detail, subject.id_number
                )
        expected = self._population.expected_answer(CODE, subject.id_number)
        if self._flaws.not_found_for_unknown and not expected.listed and not expected.unlisted:
            await self._refuse(context, grpc.StatusCode.NOT_FOUND, "NO_SUCH_CUSTOMER", "unknown", "")
        for card in expected.listed:
            yield bank_pb.ListCardsResponse(
                card=bank_pb.MaskedCard(
                    card_type=_TYPES[card.kind],
                    first_four=card.first_four,
                    last_four=card.last_four,
                    number_length=len(card.number),
                    card_ref=card.card_ref,
                )
            )
        summary = bank_pb.ListCardsSummary(
            listed_card_count=len(expected.listed),
            debit_card_count=expected.debit_count,
            credit_card_count=expected.credit_count,
        )
        for reason, count in sorted(expected.unlisted.items()):
            summary.unlisted.add(reason=bank_pb.UnlistedReason.Value(f"UNLISTED_REASON_{reason}"), card_count=count)
        yield bank_pb.ListCardsResponse(summary=summary)


def _wildcard_cert(pki: PkiPaths) -> tuple[bytes, bytes]:
    """A certificate from the real CA valid for every bank's name: the flaw
    tls.server_name_binds_bank exists to catch."""
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "any bank")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.bank.cardlookup.internal")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


async def _serve(flaws: Flaws, pki: PkiPaths, population: Population) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    bank_grpc.add_CardDirectoryServiceServicer_to_server(FlawedBank(flaws, population, pki), server)
    if flaws.wildcard_cert:
        cert, key = _wildcard_cert(pki)
    else:
        cert, key = pki.bank_cert(CODE).read_bytes(), pki.bank_key(CODE).read_bytes()
    credentials = grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=pki.ca_cert.read_bytes(), require_client_auth=not flaws.client_cert_optional
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def flawed_bank(
    request: pytest.FixtureRequest, pki: PkiPaths, population: Population
) -> AsyncIterator[ConformanceTarget]:
    server, address = await _serve(request.param, pki, population)
    try:
        yield dev_target(pki, address, CODE, population_subject(population, CODE), timeout=5.0)
    finally:
        await server.stop(0)


ALL_CONSENT_REFUSALS = {
    "cases.list_refuses_case_scope",
    "consent.unknown_key_refused",
    "consent.signature_invalid_refused",
    "consent.malformed_refused",
    "consent.scope_invalid_refused",
    "consent.wrong_bank_refused",
    "consent.wrong_query_refused",
    "consent.subject_mismatch_refused",
    "consent.not_yet_valid_refused",
    "consent.expired_refused",
}


@pytest.mark.parametrize(
    ("flawed_bank", "expected"),
    [
        pytest.param(Flaws(), set(), id="no-flaw"),
        pytest.param(
            Flaws(client_cert_optional=True, any_caller=True),
            {
                "tls.client_cert_required",
                "tls.client_cert_from_ca_required",
                "tls.caller_must_be_hub",
                "tls.caller_must_be_hub_every_service",
                "tls.caller_identity_from_san",
            },
            id="anyone-may-call",
        ),
        pytest.param(
            Flaws(any_caller=True),
            {"tls.caller_must_be_hub", "tls.caller_must_be_hub_every_service", "tls.caller_identity_from_san"},
            id="any-client-of-the-ca",
        ),
        pytest.param(Flaws(wildcard_cert=True), {"tls.server_name_binds_bank"}, id="wildcard-cert"),
        pytest.param(Flaws(skip_consent=True), ALL_CONSENT_REFUSALS, id="no-consent-check"),
        pytest.param(Flaws(echo_subject=True), {"errors.no_personal_data"}, id="echoes-id-number"),
        pytest.param(Flaws(not_found_for_unknown=True), {"list.unknown_subject_empty"}, id="not-found"),
        pytest.param(
            Flaws(bare_errors=True),
            {
                *ALL_CONSENT_REFUSALS,
                "tls.caller_must_be_hub",
                "tls.caller_must_be_hub_every_service",
                "tls.caller_identity_from_san",
                "request.malformed_refused",
                "request.trailing_newline_refused",
                "errors.error_info_present",
            },
            id="no-error-info",
        ),
    ],
    indirect=["flawed_bank"],
)
async def test_the_suite_names_exactly_the_broken_rules(flawed_bank: ConformanceTarget, expected: set[str]) -> None:
    results = await run_conformance(flawed_bank)
    failed = {r.name: r.explanation for r in results if r.outcome is Outcome.FAIL}
    assert set(failed) == expected, failed
    # This bank offers no CardCaseService and no session stream: only the
    # optional case checks and the session group skip.
    skipped = {r.name for r in results if r.outcome is Outcome.SKIP}
    optional = {c.name for c in CASE_CHECKS if c.description.startswith("Optional")}
    assert skipped == optional | {c.name for c in SESSION_CHECKS}
    for explanation in failed.values():
        assert "Fix:" in explanation


@pytest.mark.parametrize("flawed_bank", [Flaws(bare_errors=True)], indirect=True)
async def test_a_refusal_without_error_info_is_explained(flawed_bank: ConformanceTarget) -> None:
    results = {r.name: r for r in await run_conformance(flawed_bank, only=("consent.expired_refused", "errors"))}
    assert "carries no google.rpc.ErrorInfo" in results["consent.expired_refused"].explanation
    assert "grpc-status-details-bin" in results["errors.error_info_present"].explanation
