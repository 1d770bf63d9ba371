"""`cardlookup-population`: the synthetic population as JSON, for clients and
load tests written in any language.

    cardlookup-population                                  # every person (seed 20211220, 200 people)
    cardlookup-population --eligible --hub-config hub.toml # only people who may look up under that hub
    cardlookup-population --eligible --count 5000          # 5,000 eligible people (the population grows)
    cardlookup-population --eligible --expected            # each person's expected answer at each bank


Prints one JSON object: {"seed", "size", "on", "people": [...]}. Start the
simulated banks with the same seed and size (`cardlookup-banks --seed S
--population-size N`) so that they hold these people's cards. Each person has
what EnrollUser needs: user_id, full_name, id_number, id_expiry_date ("" for
a long-term document), region_code, phone_number, payment_password, and
`eligible` on the day `on` (R1: a valid ID document; R2: an open region).
R12 (one query at a time, the cooldown) depends on the hub's history, so a
load test uses each person once per 7 days.

With `--expected`, each person also has `expected`: for each bank of the
fleet (`--bank-count N`, default 16, the banks `cardlookup-banks --count N`
runs), what a correct bank answers and so what the hub's report holds for
that bank: masked cards, counts, unlisted counts with their reasons
(cardlookup.population_expected). `--hub-config` reads only the file's
`open_regions`: the banks need not be listed yet.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

from cardlookup.banks import bank_fleet
from cardlookup.hub_toml import open_regions_from_file
from cardlookup.population import DEFAULT_SEED, DEFAULT_SIZE, Person, Population
from cardlookup.population_expected import expected_json
from cardlookup.regions import DEFAULT_OPEN_REGIONS

CHINA_TZ = dt.timezone(dt.timedelta(hours=8))
MAX_SIZE = 5_000_000
"""Refuse to grow the population beyond this (a typo in --count)."""


def hub_open_regions(config: Path) -> frozenset[str]:
    """The open regions (R2) of a hub configuration file, validated by the
    function the hub's own loader uses (cardlookup.regions.parse_open_regions)
    so that the tool and the hub cannot disagree (only that key: a config
    whose banks are not listed yet will do)."""
    return open_regions_from_file(config)


def person_json(person: Person, eligible: bool) -> dict[str, object]:
    return {
        "user_id": person.user_id,
        "full_name": person.full_name,
        "id_number": person.id_number,
        "id_expiry_date": person.id_expiry.isoformat() if person.id_expiry else "",
        "region_code": person.region_code,
        "phone_number": person.phone,
        "payment_password": person.payment_password,
        "eligible": eligible,
    }


def select(
    seed: int,
    size: int | None,
    on: dt.date,
    open_regions: frozenset[str],
    eligible_only: bool,
    count: int | None,
    bank_count: int = 16,
    expected: bool = False,
) -> tuple[Population, list[dict[str, object]]]:
    """The people to print. With `eligible_only` and `count` but no `size`,
    the population grows (same seed: its first people never change) until it
    holds `count` eligible people."""
    grow = size is None and eligible_only and count is not None
    current = size or DEFAULT_SIZE
    while True:
        population = Population(seed=seed, size=current, banks=bank_fleet(bank_count))
        eligible = {p.id_number for p in population.eligible_people(on, open_regions)}
        chosen = [p for p in population.people if p.id_number in eligible or not eligible_only]
        if not grow or count is None or len(chosen) >= count:
            chosen = chosen[:count] if count is not None else chosen
            codes = tuple(b.code for b in bank_fleet(bank_count))
            people = [person_json(p, p.id_number in eligible) for p in chosen]
            if expected:
                for person, entry in zip(chosen, people, strict=True):
                    entry["expected"] = expected_json(population, person.id_number, codes)
            return population, people
        if current >= MAX_SIZE:
            raise ValueError(f"no population of at most {MAX_SIZE} people has {count} eligible people")
        current = min(MAX_SIZE, max(current + 1, int(current * count / max(1, len(chosen)) * 1.1)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="cardlookup-population", description="Print the synthetic population (or its eligible people) as JSON."
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"population seed (default {DEFAULT_SEED})")
    parser.add_argument("--size", type=int, help=f"people in the population (default {DEFAULT_SIZE}, or grown)")
    parser.add_argument("--eligible", action="store_true", help="only people who may look up (R1, R2) on --on")
    parser.add_argument("--hub-config", type=Path, help="take the open regions from this hub.toml")
    parser.add_argument("--on", type=dt.date.fromisoformat, help="the day, YYYY-MM-DD (default: today, Beijing)")
    parser.add_argument("--count", type=int, help="print at most N people; with --eligible, grow to N")
    parser.add_argument(
        "--expected", action="store_true", help="add each person's expected answer at each bank (masked cards, counts)"
    )
    parser.add_argument(
        "--bank-count", type=int, default=16, help="the fleet's banks, as cardlookup-banks --count (default 16)"
    )
    args = parser.parse_args(argv)
    if args.bank_count < 1:
        parser.error("--bank-count must be at least 1")
    if args.size is not None and args.size < 1:
        parser.error("--size must be at least 1")
    if args.count is not None and args.count < 1:
        parser.error("--count must be at least 1")
    on = args.on or dt.datetime.now(CHINA_TZ).date()
    try:
        regions = hub_open_regions(args.hub_config) if args.hub_config else DEFAULT_OPEN_REGIONS
        population, people = select(
            args.seed, args.size, on, regions, args.eligible, args.count, args.bank_count, args.expected
        )
    except ValueError as error:
        print(f"cardlookup-population: {error}", file=sys.stderr)
        sys.exit(2)
    try:
        json.dump(
            {"seed": population.seed, "size": population.size, "on": on.isoformat(), "people": people},
            sys.stdout,
            ensure_ascii=False,
            indent=1,
        )
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # `cardlookup-population | head`: the reader left; no traceback. Point
        # stdout at /dev/null so that the interpreter's final flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


if __name__ == "__main__":
    main()
