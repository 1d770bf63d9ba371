"""What the conformance suite is pointed at: a bank endpoint and the test
credentials and data the bank agreed to use for its conformance run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bank_sim.conformance.credentials import ClientIdentity, SigningKey
from bank_sim.conformance.impostor import cn_impostor_identity
from cardlookup.checksums import id_check_char
from cardlookup.clock import Clock, SystemClock
from cardlookup.pki import CONSENT_KEY_ID, PkiPaths, bank_server_name
from cardlookup.population import R13_TEST_CUSTOMER, Population

# A well-formed ID number no bank should hold: the birth date 1900-01-01 is
# before any living customer's. Banks with such a record can pass their own.
_UNKNOWN_FIRST17 = "11010119000101999"
DEFAULT_UNKNOWN_ID_NUMBER = _UNKNOWN_FIRST17 + id_check_char(_UNKNOWN_FIRST17)
DEFAULT_PRECEDENCE_NAME, DEFAULT_PRECEDENCE_ID_NUMBER = R13_TEST_CUSTOMER
"""The R13 test customer a bank creates for list.unlisted_reason_precedence
(docs/bank-integration.md, "The conformance suite")."""


@dataclass(frozen=True)
class KnownSubject:
    """A test customer the bank holds at least one listed card for."""

    full_name: str
    id_number: str
    expected_listed: int | None = None
    """How many cards the bank should list for this subject, if known."""


@dataclass(frozen=True)
class ConformanceTarget:
    """Everything the suite needs to exercise one bank endpoint."""

    address: str
    """host:port of the bank's CardDirectoryService."""
    bank_code: str
    """The bank category code the endpoint claims to be, e.g. "102"."""
    ca_cert: Path
    """The CA that issued the bank's server certificate and the hub's client certificate."""
    hub_client: ClientIdentity
    """The hub's client certificate (SAN hub-client.cardlookup.internal)."""
    consent_key: SigningKey
    """The (test) consent-signing key the bank trusts."""
    subject: KnownSubject
    untrusted_key: SigningKey | None = None
    """A key the bank must NOT trust; a fresh random key is used when absent."""
    other_client: ClientIdentity | None = None
    """A certificate from the same CA that is not the hub's (e.g. the app
    backend's): enables tls.caller_must_be_hub."""
    cn_impostor: ClientIdentity | None = None
    """A certificate from the same CA whose common name is the hub's name but
    whose DNS SAN is not: enables tls.caller_identity_from_san."""
    precedence_subject: KnownSubject = KnownSubject(DEFAULT_PRECEDENCE_NAME, DEFAULT_PRECEDENCE_ID_NUMBER)
    """The R13 test customer: two unlisted cards, one with all three R13
    conditions, one with no phone on file and card-not-present disabled."""
    server_name: str | None = None
    """The TLS name to verify the bank by; default <code>.bank.cardlookup.internal."""
    unknown_id_number: str = DEFAULT_UNKNOWN_ID_NUMBER
    """A valid ID number the bank holds no cards for."""
    timeout: float = 10.0
    """Seconds allowed for each call."""
    clock: Clock = field(default_factory=SystemClock)
    """The time consents are issued at; must agree with the bank's clock."""

    @property
    def expected_server_name(self) -> str:
        return self.server_name or bank_server_name(self.bank_code)


def dev_target(
    pki: PkiPaths, address: str, bank_code: str, subject: KnownSubject, **overrides: Any
) -> ConformanceTarget:
    """A target using the development PKI's files (cardlookup-pki): the hub's
    client certificate, the dev consent key, the app backend's certificate
    as the non-hub caller, and a CN-only impostor issued by its CA."""
    overrides.setdefault("cn_impostor", cn_impostor_identity(pki))
    return ConformanceTarget(
        address=address,
        bank_code=bank_code,
        ca_cert=pki.ca_cert,
        hub_client=ClientIdentity(pki.cert("hub-client"), pki.key("hub-client")),
        consent_key=SigningKey(pki.consent_signing_key, CONSENT_KEY_ID),
        subject=subject,
        other_client=ClientIdentity(pki.cert("app-backend"), pki.key("app-backend")),
        **overrides,
    )


def population_subject(population: Population, bank_code: str) -> KnownSubject:
    """The first person of a synthetic population with a listed card at the
    bank (the simulator's records), with the expected card count."""
    for person in population.people:
        listed = len(population.expected_answer(bank_code, person.id_number).listed)
        if listed:
            return KnownSubject(person.full_name, person.id_number, listed)
    raise LookupError(f"nobody in the population has a listed card at bank {bank_code}")
