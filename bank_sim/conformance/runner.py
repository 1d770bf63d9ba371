"""Runs the checks, in order, against one bank endpoint."""

from __future__ import annotations

import logging

from bank_sim.conformance.caller_checks import CALLER_CHECKS
from bank_sim.conformance.case_checks import CASE_CHECKS
from bank_sim.conformance.consent_checks import CONSENT_CHECKS
from bank_sim.conformance.error_checks import ERROR_CHECKS
from bank_sim.conformance.list_checks import LIST_CHECKS
from bank_sim.conformance.probe import Probe
from bank_sim.conformance.request_checks import REQUEST_CHECKS
from bank_sim.conformance.results import Check, CheckFailed, CheckResult, CheckSkipped, Outcome
from bank_sim.conformance.session_checks import SESSION_CHECKS
from bank_sim.conformance.target import ConformanceTarget
from bank_sim.conformance.tls_checks import TLS_CHECKS
from bank_sim.conformance.versions import CURRENT_GUIDE_VERSION, in_profile

log = logging.getLogger(__name__)

# The errors.* checks read the refusals the others provoked: they come last.
CHECKS: tuple[Check, ...] = (
    TLS_CHECKS
    + CALLER_CHECKS
    + CONSENT_CHECKS
    + REQUEST_CHECKS
    + LIST_CHECKS
    + CASE_CHECKS
    + SESSION_CHECKS
    + ERROR_CHECKS
)


async def _run_one(check: Check, probe: Probe) -> CheckResult:
    try:
        await check.run(probe)
    except CheckFailed as failure:
        return CheckResult(check.name, check.description, Outcome.FAIL, str(failure), check.since)
    except CheckSkipped as skipped:
        return CheckResult(check.name, check.description, Outcome.SKIP, str(skipped), check.since)
    except Exception as error:  # a bank's answer must never crash the suite
        log.exception("check %s could not run", check.name)
        explanation = f"the check could not run: {error!r}"
        return CheckResult(check.name, check.description, Outcome.FAIL, explanation, check.since)
    return CheckResult(check.name, check.description, Outcome.PASS, since=check.since)


def _new_since(check: Check, profile: str) -> CheckResult:
    explanation = (
        f"new in guide {check.since}, after your profile {profile}: not part of your certification; see the "
        "changelog for banks in docs/bank-integration.md for what to do"
    )
    return CheckResult(check.name, check.description, Outcome.NEW, explanation, check.since)


async def run_conformance(
    target: ConformanceTarget, only: tuple[str, ...] = (), profile: str = CURRENT_GUIDE_VERSION
) -> list[CheckResult]:
    """Every check (or those named in `only`, by name or dotted prefix), in
    order. Checks of guide `profile` and earlier run; newer ones are listed,
    not run (Outcome.NEW), so that a bank certified against an older guide
    learns of new rules without failing them. Never raises for a
    misbehaving bank: failures are results."""
    probe = Probe.for_target(target)
    selected = [c for c in CHECKS if not only or any(c.name == o or c.name.startswith(o + ".") for o in only)]
    # A check that does not say its version (a test refuses that) runs always.
    return [
        await _run_one(check, probe)
        if in_profile(check.since or CURRENT_GUIDE_VERSION, profile)
        else _new_since(check, profile)
        for check in selected
    ]
