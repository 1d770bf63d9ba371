"""Judging a refusal: the right status code, the right ErrorInfo reason, and
no data streamed before it."""

from __future__ import annotations

import grpc

from bank_sim.conformance.probe import Answer, Probe, Refusal
from bank_sim.conformance.results import CheckFailed
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb


def refusal_problem(answer: Answer, code: grpc.StatusCode, reason: str) -> str | None:
    """Why `answer` is not the refusal `code`/`reason`, or None if it is."""
    expected = f"expected status {code.name} with ErrorInfo reason {reason}"
    if answer.ok:
        return f"the bank answered OK ({len(answer.cards)} card(s)); {expected}"
    if answer.cards:
        return f"the bank streamed {len(answer.cards)} card(s) before refusing; refuse before reading any data"
    if answer.code != code:
        return f"got {answer.describe()}; {expected}"
    if answer.error_info is None:
        return (
            f"status {code.name} is right but carries no google.rpc.ErrorInfo; {expected} "
            "(see errors.error_info_present)"
        )
    if answer.error_info.reason != reason:
        return f"status {code.name} is right but the ErrorInfo reason is {answer.error_info.reason!r}; {expected}"
    return None


async def expect_refusals(
    probe: Probe,
    check: str,
    cases: list[tuple[str, bank_pb.ListCardsRequest]],
    code: grpc.StatusCode,
    reason: str,
    fix: str,
) -> None:
    """Sends each (situation, request) and requires the refusal; all cases are
    tried, and every miss is reported."""
    problems = []
    for situation, request in cases:
        answer = await probe.call(request)
        if not answer.ok:
            probe.refusals.append(Refusal(check, situation, answer))
        problem = refusal_problem(answer, code, reason)
        if problem is not None:
            problems.append(f"{situation}: {problem}.")
    if problems:
        raise CheckFailed(" ".join(problems) + f" Fix: {fix}")
