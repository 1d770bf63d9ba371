"""The Node.js bank (tests/node_bank/server.js, @grpc/grpc-js) passes the
same conformance suite as the Python simulator: the bank contract and its
docs are enough to implement a bank in another gRPC stack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from bank_sim.conformance import CHECKS, ConformanceTarget, Outcome, run_conformance
from bank_sim.conformance.probe import Probe
from bank_sim.conformance.target import dev_target, population_subject
from cardlookup.bank.v1 import card_directory_pb2 as bank_pb
from cardlookup.pki import PkiPaths
from cardlookup.population import Population
from tests.node_bank.harness import NodeBank, write_bank_data

CODE = "308"


@pytest.fixture
async def node_bank(pki: PkiPaths, population: Population, tmp_path: Path) -> AsyncIterator[NodeBank]:
    bank = NodeBank(pki, CODE, write_bank_data(population, CODE, tmp_path / "cards.json"))
    async with bank:
        yield bank


@pytest.fixture
def target(pki: PkiPaths, population: Population, node_bank: NodeBank) -> ConformanceTarget:
    return dev_target(pki, node_bank.address, CODE, population_subject(population, CODE), timeout=5.0)


async def test_the_node_bank_passes_every_check(target: ConformanceTarget, node_bank: NodeBank) -> None:
    results = await run_conformance(target)
    assert [r.name for r in results] == [c.name for c in CHECKS]
    problems = [(r.name, r.outcome.value, r.explanation) for r in results if r.outcome is not Outcome.PASS]
    assert problems == [], node_bank.stderr_text()


async def test_the_node_bank_answers_the_population_ground_truth(
    target: ConformanceTarget, population: Population
) -> None:
    """Every listed card of a customer with several cards arrives masked and
    in order, and the summary counts the unlisted ones by reason."""
    person = max(population.people, key=lambda p: len(population.cards_at(CODE, p.id_number)))
    expected = population.expected_answer(CODE, person.id_number)
    probe = Probe.for_target(target)
    request = probe.request(
        qid := "0b6f6f7e-5f1c-4f57-9a0e-4f7e9e0b1c2d",
        probe.sign(probe.consent_fields(qid, id_number=person.id_number, full_name=person.full_name).payload()),
        id_number=person.id_number,
        full_name=person.full_name,
    )
    answer = await probe.call(request)
    assert answer.code == grpc.StatusCode.OK
    assert [(c.first_four, c.last_four, c.number_length, c.card_ref) for c in answer.cards] == [
        (c.first_four, c.last_four, len(c.number), c.card_ref) for c in expected.listed
    ]
    (summary,) = answer.summaries
    assert summary.listed_card_count == len(expected.listed)
    assert summary.debit_card_count == expected.debit_count
    assert summary.credit_card_count == expected.credit_count
    assert {bank_pb.UnlistedReason.Name(u.reason): u.card_count for u in summary.unlisted} == {
        f"UNLISTED_REASON_{r}": n for r, n in expected.unlisted.items()
    }


async def test_the_node_bank_stops_on_sigterm(pki: PkiPaths, population: Population, tmp_path: Path) -> None:
    bank = NodeBank(pki, CODE, write_bank_data(population, CODE, tmp_path / "cards.json"))
    async with bank:
        assert bank.returncode is None
    assert bank.returncode == 0
