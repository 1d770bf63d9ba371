"""The 16 -> 1,000 banks curve as a PNG (matplotlib, Agg backend: no display
needed): queries/s of the hub and of the bare fan-out, and the hub's CPU per
bank, against the number of banks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.stats import PhaseResult


def save_curve(pairs: Sequence[tuple[PhaseResult, PhaseResult]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    banks = [h.banks for h, _ in pairs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(banks, [h.qps for h, _ in pairs], "o-", label="hub")
    left.plot(banks, [b.qps for _, b in pairs], "s--", label="bare grpc.aio fan-out (baseline)")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("banks per query")
    left.set_ylabel("queries/s")
    left.set_title("throughput")
    left.legend()
    left.grid(True, which="both", alpha=0.3)
    right.plot(banks, [h.cpu_ms_per_query * 1000 / h.banks for h, _ in pairs], "o-", label="hub")
    right.plot(banks, [b.cpu_ms_per_query * 1000 / b.banks for _, b in pairs], "s--", label="baseline")
    right.set_xscale("log")
    right.set_xlabel("banks per query")
    right.set_ylabel("CPU µs per bank per query")
    right.set_title("CPU per bank")
    right.set_ylim(bottom=0)
    right.legend()
    right.grid(True, which="both", alpha=0.3)
    for axis in (left, right):
        axis.set_xticks(banks, [str(b) for b in banks])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
