"""The unit layer's fixtures: a journey over the fake engine (journey_kit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cardlookup.pki import PkiPaths
from cardlookup.population import Person, Population
from tests.unit.journey_kit import JourneyKit, journey_kit


@pytest.fixture
async def kit(pki: PkiPaths, tmp_path: Path) -> AsyncIterator[JourneyKit]:
    made = await journey_kit(pki, tmp_path)
    try:
        yield made
    finally:
        await made.db.close()


@pytest.fixture
def person(kit: JourneyKit, population: Population) -> Person:
    """An eligible person (open region, valid ID) on the kit's date."""
    return population.eligible_people(kit.clock.now().date())[0]
