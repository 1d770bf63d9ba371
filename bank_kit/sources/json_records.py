"""An example data source: customers from a JSON file read once
(example_records.json shows the shape). The conditions are stored, so
`query_id` and `now` play no part; a closed card is left out."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from bank_kit.records import Card, Customer


class JsonRecords:
    name = "json"

    def __init__(self, customers: Mapping[str, Customer]) -> None:
        self._customers = dict(customers)

    @classmethod
    def open(cls, location: str) -> Self:
        raw = json.loads(Path(location).read_text(encoding="utf-8"))
        return cls(
            {
                id_number: Customer(
                    c["full_name"],
                    tuple(
                        Card(k["number"], k["kind"], frozenset(k.get("conditions", ())))
                        for k in c["cards"]
                        if k.get("status", "active") != "closed"
                    ),
                )
                for id_number, c in raw["customers"].items()
            }
        )

    def find(self, id_number: str, query_id: str, now: dt.datetime) -> Customer | None:
        return self._customers.get(id_number)

    @classmethod
    def example(cls, customers_json: Path, workdir: Path) -> Self:
        return cls.open(str(customers_json))
