"""Plain-text tables of the results: one per bank count, then the curve."""

from __future__ import annotations

from bench.stats import PhaseResult

_HEAD = (
    f"{'':<14}{'queries/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'CPU ms/q':>10}{'bank CPU ms/q':>15}"
    f"{'done':>6}{'failed':>7}"
)


def _row(r: PhaseResult) -> str:
    return (
        f"{r.name:<14}{r.qps:>10.2f}{r.p50_ms:>10.1f}{r.p99_ms:>10.1f}{r.cpu_ms_per_query:>10.1f}"
        f"{r.bank_cpu_ms_per_query:>15.1f}{r.queries:>6}{r.failed:>7}"
    )


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def size_table(hub: PhaseResult, base: PhaseResult) -> str:
    ratios = (
        f"{'hub/baseline':<14}{ratio(hub.qps, base.qps):>9.2f}x{ratio(hub.p50_ms, base.p50_ms):>9.2f}x"
        f"{ratio(hub.p99_ms, base.p99_ms):>9.2f}x{ratio(hub.cpu_ms_per_query, base.cpu_ms_per_query):>9.2f}x"
        f"{ratio(hub.bank_cpu_ms_per_query, base.bank_cpu_ms_per_query):>14.2f}x"
    )
    title = f"== {hub.banks} banks, concurrency {hub.concurrency}"
    return "\n".join([title, _HEAD, _row(hub), _row(base), ratios])


def ratio_row(label: str, a: PhaseResult, b: PhaseResult) -> str:
    return (
        f"{label:<14}{ratio(a.qps, b.qps):>9.2f}x{ratio(a.p50_ms, b.p50_ms):>9.2f}x"
        f"{ratio(a.p99_ms, b.p99_ms):>9.2f}x{ratio(a.cpu_ms_per_query, b.cpu_ms_per_query):>9.2f}x"
        f"{ratio(a.bank_cpu_ms_per_query, b.bank_cpu_ms_per_query):>14.2f}x"
    )


def session_lines(session: PhaseResult, hub: PhaseResult, base: PhaseResult) -> str:
    """The hub over bank session streams (issue 16) beside the per-call hub
    and the baseline: its row, then its ratios to each."""
    return "\n".join([_row(session), ratio_row("session/base", session, base), ratio_row("session/hub", session, hub)])


CURVE_HEAD = (
    f"{'banks':>6}{'hub q/s':>9}{'base q/s':>10}{'q/s ratio':>10}{'hub p50':>9}{'base p50':>10}"
    f"{'hub p99':>9}{'base p99':>10}{'hub CPU ms/q':>13}{'base CPU ms/q':>14}{'hub CPU us/bank':>16}"
)


def curve_row(hub: PhaseResult, base: PhaseResult) -> str:
    return (
        f"{hub.banks:>6}{hub.qps:>9.2f}{base.qps:>10.2f}{ratio(hub.qps, base.qps):>9.2f}x"
        f"{hub.p50_ms:>9.0f}{base.p50_ms:>10.0f}{hub.p99_ms:>9.0f}{base.p99_ms:>10.0f}"
        f"{hub.cpu_ms_per_query:>13.1f}{base.cpu_ms_per_query:>14.1f}"
        f"{hub.cpu_ms_per_query * 1000 / hub.banks:>16.0f}"
    )


def curve_table(pairs: list[tuple[PhaseResult, PhaseResult]]) -> str:
    return "\n".join(
        ["== curve (latency in ms: create -> report ready; CPU per query)", CURVE_HEAD]
        + [curve_row(h, b) for h, b in pairs]
    )
