"""Checks of every refusal the other checks provoked: machine-readable
details, and no personal data echoed back. Run these last."""

from __future__ import annotations

import re

from bank_sim.conformance.probe import Probe
from bank_sim.conformance.results import Check, CheckFailed, CheckSkipped
from cardlookup.rpc_errors import BANK_DOMAIN

_REASON = re.compile(r"[A-Z][A-Z0-9_]*")


def _require_refusals(probe: Probe) -> None:
    if not probe.refusals:
        raise CheckSkipped("no refusal was observed to examine (did the refusal checks run?)")


async def error_info_present(probe: Probe) -> None:
    _require_refusals(probe)
    problems = []
    for refusal in probe.refusals:
        info = refusal.answer.error_info
        where = f"{refusal.situation} ({refusal.check})"
        if info is None:
            problems.append(f"{where}: {refusal.answer.code.name} without google.rpc.ErrorInfo")
        elif info.domain != BANK_DOMAIN:
            problems.append(f"{where}: ErrorInfo domain {info.domain!r}, expected {BANK_DOMAIN!r}")
        elif not _REASON.fullmatch(info.reason):
            problems.append(f"{where}: ErrorInfo reason {info.reason!r} is not UPPER_SNAKE_CASE")
    if problems:
        shown = problems[:4] + ([f"... and {len(problems) - 4} more"] if len(problems) > 4 else [])
        raise CheckFailed(
            "; ".join(shown) + ". Fix: end every refusal with a google.rpc.Status (same code and message) whose "
            "details hold one google.protobuf.Any of type.googleapis.com/google.rpc.ErrorInfo with domain "
            f"{BANK_DOMAIN!r} and the documented reason, serialized into the 'grpc-status-details-bin' trailer."
        )


async def no_personal_data(probe: Probe) -> None:
    _require_refusals(probe)
    subject = probe.target.subject
    secrets = (
        ("ID number", subject.id_number),
        ("name", subject.full_name),
        ("ID number", probe.target.unknown_id_number),
    )
    problems = []
    for refusal in probe.refusals:
        answer = refusal.answer
        texts = [answer.details]
        if (info := answer.error_info) is not None:
            texts += [info.reason, *info.metadata.keys(), *info.metadata.values()]
        for what, value in secrets:
            if any(value in text for text in texts):
                problems.append(f"{refusal.situation} ({refusal.check}): the error echoes the subject's {what}")
    if problems:
        raise CheckFailed(
            "; ".join(sorted(set(problems))[:4]) + ". Fix: error messages and ErrorInfo metadata must never carry "
            "names, ID numbers, phone or card numbers: the hub logs them."
        )


ERROR_CHECKS = (
    Check(
        "errors.error_info_present",
        f"Every refusal carries a google.rpc.ErrorInfo with domain {BANK_DOMAIN} and an UPPER_SNAKE reason.",
        error_info_present,
        since="1.0",
    ),
    Check(
        "errors.no_personal_data",
        "No refusal echoes the subject's name or ID number in its message or ErrorInfo.",
        no_personal_data,
        since="1.0",
    ),
)
