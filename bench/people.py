"""Who queries: distinct eligible people of the synthetic population (R12's
cooldown allows one query per user per 7 days, so every query needs its own
user), the same ones for the hub and the baseline so the banks stream the
same cards to both."""

from __future__ import annotations

import datetime as dt

from cardlookup.banks import bank_fleet
from cardlookup.population import Person, Population


def pick_people(population: Population, count: int, on: dt.date) -> list[Person]:
    """The first `count` eligible people (open region, valid ID), one per
    phone number: the bench finds each user's SMS code by phone."""
    seen: set[str] = set()
    chosen = []
    for p in population.eligible_people(on):
        if p.phone not in seen:
            seen.add(p.phone)
            chosen.append(p)
            if len(chosen) == count:
                break
    return chosen


def population_for(people: int, banks: int, on: dt.date) -> Population:
    """The smallest population (same seed, so its first people are always the
    same) with `people` eligible people; the bank fleet is started with this size."""
    size = max(200, int(people / 0.7) + 20)
    while True:
        population = Population(size=size, banks=bank_fleet(banks))
        if len(pick_people(population, people, on)) == people:
            return population
        size = int(size * 1.25)
