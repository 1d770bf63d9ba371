"""A client certificate that names the hub but comes from a CA no bank
trusts: what an attacker who copied the hub's name, not its key, holds."""

from __future__ import annotations

from pathlib import Path

from bank_sim.conformance.target import ClientIdentity
from cardlookup.pki import create_dev_pki


def write_impostor_identity(directory: Path) -> ClientIdentity:
    """Makes a throwaway PKI in `directory` (its own CA, no banks) and returns
    its hub-client identity: the hub's SAN, signed by a foreign CA."""
    foreign = create_dev_pki(directory / "foreign-pki", bank_codes=())
    return ClientIdentity(cert=foreign.cert("hub-client"), key=foreign.key("hub-client"))
