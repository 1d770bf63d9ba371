"""The bank conformance suite: checks a bank's CardDirectoryService endpoint
against every rule of the cardlookup.bank.v1 contract, over real mTLS.

    results = await run_conformance(ConformanceTarget(...))

or, against an older version of the bank guide, `run_conformance(target,
profile="1.0")` (bank_sim.conformance.versions); from a shell,
`cardlookup-conformance --help`. docs/bank-integration.md
explains each rule the checks name.
"""

from bank_sim.conformance.credentials import ClientIdentity, SigningKey
from bank_sim.conformance.results import CheckResult, Outcome
from bank_sim.conformance.runner import CHECKS, run_conformance
from bank_sim.conformance.target import ConformanceTarget, KnownSubject
from bank_sim.conformance.versions import CURRENT_GUIDE_VERSION, GUIDE_VERSIONS

__all__ = [
    "CHECKS",
    "CURRENT_GUIDE_VERSION",
    "GUIDE_VERSIONS",
    "CheckResult",
    "ClientIdentity",
    "ConformanceTarget",
    "KnownSubject",
    "Outcome",
    "SigningKey",
    "run_conformance",
]
