"""The figures of one measured phase (hub or baseline), computed the same way
for both so their ratio means something."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class PhaseResult:
    """One side of the comparison, over its measured phase only (warm-up excluded)."""

    name: str
    banks: int
    concurrency: int
    queries: int
    """Queries completed in the measured phase."""
    failed: int
    wall_s: float
    qps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_query: float
    """CPU (user + system) of the measured process: the hub, or the baseline client."""
    bank_cpu_ms_per_query: float
    """CPU of the bank fleet process over the same phase, per query."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PhaseResult:
        return cls(**raw)


def summarize(
    name: str,
    banks: int,
    concurrency: int,
    latencies_s: list[float],
    failed: int,
    wall_s: float,
    cpu_s: float,
    bank_cpu_s: float,
) -> PhaseResult:
    done = len(latencies_s)
    if done == 0:
        raise RuntimeError(f"{name}: no query completed ({failed} failed)")
    return PhaseResult(
        name=name,
        banks=banks,
        concurrency=concurrency,
        queries=done,
        failed=failed,
        wall_s=wall_s,
        qps=done / wall_s,
        p50_ms=percentile(latencies_s, 50) * 1000,
        p99_ms=percentile(latencies_s, 99) * 1000,
        cpu_ms_per_query=cpu_s * 1000 / done,
        bank_cpu_ms_per_query=bank_cpu_s * 1000 / done,
    )


def cpu_seconds(times: Any) -> float:
    """user + system of a psutil cpu_times() value (children excluded)."""
    return float(times.user + times.system)
