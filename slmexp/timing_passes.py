"""Repeated timing: r passes of the same timed requests, each in its own seeded shuffled order, and what may be said
about their spread.

Why: one pass of 10-20 requests measures the spread *within* that pass only. The same arm's latency moved 10-30%
between two runs of one machine (docs/results.md), so a speed figure needs the spread *between* passes too: a CI
over passes, and a flag when the passes disagree more than the machine's usual drift (`eval.bench.max_pass_spread`).
A shuffled order per pass keeps a slow stretch of the machine from always landing on the same prompts.

What the record keeps (`speed.passes`, slmexp.record_types.measure.Passes): each pass's p50/p95 latency and TTFT,
the t-interval over the passes' p50s (log scale, around their geometric mean; with r = 3 passes it has 2 degrees
of freedom: t = 4.30, a wide interval that says how little three passes pin down), and the relative spread
(max - min) / median of the passes' latency p50s. The headline percentiles (`speed.latency_ms`, `speed.ttft_ms`)
are pooled over every timed request of every pass; docs/measurement.md says why. Used by slmexp.bench
(generation), slmexp.decoding.choice (label scoring) and slmexp.paired_timing (the t-interval).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

HEADLINE = ("latency_ms / ttft_ms (and every other percentile of speed) are pooled over the timed requests of all "
            "passes; per_pass holds each pass's own, latency_p50_ms / ttft_p50_ms the t-interval over the passes' p50")
DEFAULT_PASSES = 3  # eval.bench.passes when a config does not say
DEFAULT_MAX_SPREAD = 0.2  # eval.bench.max_pass_spread when a config does not say


@dataclass
class PassRun:
    """The timed requests of every pass, in the order they ran: each `time_one` result plus `index` (position in the
    timed prompts) and `pass_number` (1-based); `walls_s` is each pass's wall time."""

    results: list[dict[str, Any]] = field(default_factory=list)
    walls_s: list[float] = field(default_factory=list)
    seed: int | None = None

    @property
    def wall_s(self) -> float:
        return sum(self.walls_s)

    def of_pass(self, number: int) -> list[dict[str, Any]]:
        return [r for r in self.results if r["pass_number"] == number]


def pass_orders(n: int, passes: int, seed: int | None) -> list[list[int]]:
    """The order of the `n` timed prompts in each pass: a permutation per pass from one numpy generator seeded with
    `seed` (the job's seed: the same job times the same orders), or the given order when `seed` is None."""
    import numpy as np

    if seed is None:
        return [list(range(n)) for _ in range(passes)]
    rng = np.random.default_rng(seed)
    return [[int(i) for i in rng.permutation(n)] for _ in range(passes)]


def run_passes(time_one: Callable[[int], dict[str, Any]], n: int, passes: int, seed: int | None) -> PassRun:
    """Call `time_one(index)` for every timed prompt, `passes` times, each pass in its `pass_orders` order."""
    run = PassRun(seed=seed)
    for number, order in enumerate(pass_orders(n, passes, seed), start=1):
        t0 = time.perf_counter()
        for i in order:
            run.results.append({**time_one(i), "index": i, "pass_number": number})
        run.walls_s.append(time.perf_counter() - t0)
    return run


def percentiles_ms(values_s: Sequence[float]) -> dict[str, float | None]:
    """p50 and p95 of per-request seconds, in ms (3 decimals); None when nothing was measured."""
    import numpy as np

    if not values_s:
        return {"p50": None, "p95": None}
    arr = np.asarray(values_s, dtype=float) * 1000
    return {"p50": round(float(np.percentile(arr, 50)), 3), "p95": round(float(np.percentile(arr, 95)), 3)}


def t_interval(values: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Geometric mean of a few repeated positive measurements (passes' p50s, speed-ups) and the Student-t interval
    of it, computed on the log scale and mapped back.

    Why t and not a bootstrap: with 3 passes a bootstrap has 10 distinct resamples and its percentile interval is
    far too narrow; the t-interval widens honestly with few passes (t_{0.975, 2} = 4.30). Why the log scale: a
    latency or a ratio is positive and its noise multiplicative (a busy machine slows a pass by a factor); on the
    raw scale three passes as far apart as 100/100/300 ms give an interval below 0 ms. With one value there is no
    interval (null).
    """
    import math
    from statistics import mean, stdev

    vals = [float(v) for v in values if v is not None and v > 0]
    logs = [math.log(v) for v in vals]
    out: dict[str, Any] = {"n": len(vals), "geomean": round(math.exp(mean(logs)), 4) if vals else None,
                           "sd_log": None, "ci95_low": None, "ci95_high": None,
                           "method": f"t-interval over {len(vals)} passes, log scale"}
    if len(vals) >= 2:
        from scipy.stats import t

        sd = stdev(logs)
        half = float(t.ppf(0.5 + level / 2, len(vals) - 1)) * sd / len(vals) ** 0.5
        out.update(sd_log=round(sd, 4), ci95_low=round(math.exp(mean(logs) - half), 4),
                   ci95_high=round(math.exp(mean(logs) + half), 4),
                   method=f"t-interval over {len(vals)} passes ({len(vals) - 1} df), log scale")
    return out


def spread(values: Sequence[float]) -> float | None:
    """Relative spread (max - min) / median of the passes' figures; None with fewer than 2 or a median of 0."""
    from statistics import median

    vals = [float(v) for v in values if v is not None]
    if len(vals) < 2 or not median(vals):
        return None
    return round((max(vals) - min(vals)) / median(vals), 4)


def passes_block(run: PassRun, *, latency_key: str, ttft_key: str, max_spread: float | None) -> dict[str, Any]:
    """`speed.passes`: each pass's p50/p95 latency and TTFT, the t-interval over the passes' p50s, the spread of the
    passes' latency p50s and whether it exceeds `max_spread` (`unstable`; `flagged_pass`: the pass farthest from
    the median of the passes' p50s)."""
    from statistics import median

    numbers = sorted({r["pass_number"] for r in run.results}) or list(range(1, len(run.walls_s) + 1))
    per_pass = []
    for number in numbers:
        rows = run.of_pass(number)
        per_pass.append({"pass_number": number, "n_requests": len(rows), "wall_s": round(run.walls_s[number - 1], 3),
                         "latency_ms": percentiles_ms([r[latency_key] for r in rows]),
                         "ttft_ms": percentiles_ms([r[ttft_key] for r in rows])})
    p50s = [p["latency_ms"]["p50"] for p in per_pass if p["latency_ms"]["p50"] is not None]
    rel = spread(p50s)
    unstable = bool(rel is not None and max_spread is not None and rel > max_spread)
    flagged = None
    if unstable:
        mid = median(p50s)
        flagged = max(per_pass, key=lambda p: abs(p["latency_ms"]["p50"] - mid))["pass_number"]
    return {"n": len(per_pass), "order": "shuffled per pass" if run.seed is not None else "as given",
            "seed": run.seed, "headline": HEADLINE, "per_pass": per_pass,
            "latency_p50_ms": t_interval(p50s),
            "ttft_p50_ms": t_interval([p["ttft_ms"]["p50"] for p in per_pass if p["ttft_ms"]["p50"] is not None]),
            "spread": rel, "max_spread": max_spread, "unstable": unstable, "flagged_pass": flagged}
