"""Paired alternating timing: the speed-up of arm A over arm B measured side by side, A/B/A/B, in one process.

Why: a speed-up from two jobs divides a figure taken at one moment by a figure taken at another. On the 2-core
machine the same arm's latency moved 10-30% between two runs (docs/results.md), so a ratio across moments carries
the machine's drift, which no CI within one job covers. Alternating the two arms' requests puts both under the same
drift and the same neighbours: a slow stretch slows an A request and the B request next to it alike, and cancels in
their ratio (llama.cpp's `llama-bench -r` and `compare-llama-bench.py` compare builds the same way).

The protocol (`alternate`): `warmup` untimed requests per arm, interleaved; then `passes` passes over the timed
prompts, each pass in its own order shuffled with `seed` (slmexp.timing_passes.pass_orders); each prompt is one
pair, sent to A and to B back to back, which of them goes first drawn per pair (seeded, balanced: half the pairs
of a pass each way; `first_sides`), so neither arm always gets the warmer or the colder slot. Every request is
timed as the speed stage times one (slmexp.bench.time_request): streamed, one at a time, with the task's stop
strings and token budget.

Figures: `speedup` = the median over pairs of B's latency / A's latency (> 1: A is faster; B is the baseline). The
ratio is taken within each pair, where both requests saw the same moment of the machine, and the median keeps one
request hit by a spike from moving it; `ratio_of_p50` (B's p50 / A's p50, the report's estimator) is kept beside
it. Per pass the same median, the t-interval over the passes' values (3 passes: 2 df, a wide interval), their
spread, and a percentile bootstrap over pairs (slmexp.report.stats.paired_bootstrap_ci) for the spread within the
run. Used by benchmarks/paired_speedup.py; a sweep can call `alternate` with two loaded runtimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DEFINITION = ("speedup = median over pairs of B latency / A latency, each pair timed back to back (> 1: A is faster); "
              "B is the baseline")


def _warm_up(runtimes: dict[str, Any], prompts: Sequence[str], max_new_tokens: int,
             stop: Sequence[str] | None) -> None:
    from slmexp.bench import time_request

    for prompt in prompts:
        for rt in runtimes.values():
            time_request(rt, prompt, max_new_tokens, stop)


def _ratio(a_ms: Sequence[float], b_ms: Sequence[float]) -> float | None:
    from statistics import median

    return round(median(b_ms) / median(a_ms), 4) if a_ms and b_ms and median(a_ms) > 0 else None


def alternate(runtime_a: Any, runtime_b: Any, prompts: Sequence[str], *, max_new_tokens: int,
              stop: Sequence[str] | None = None, passes: int = 3, warmup: int = 1, seed: int = 0) -> dict[str, Any]:
    """Time `prompts` on both runtimes in alternating pairs and return the speed-up of A over B with its spread.

    Args:
        runtime_a, runtime_b: loaded runtimes (the Runtime Protocol's `stream`); B is the baseline.
        prompts: user turns; the first `warmup` are sent untimed to each runtime once, the rest are timed.
        max_new_tokens, stop: every request's token budget and stop strings (the task's).
        passes: passes over the timed prompts, each in its own seeded shuffled order.
        seed: seeds the pass orders and the draw of who goes first in each pair.

    Returns:
        {"speedup", "definition", "per_pass", "over_passes" (t-interval), "over_pairs" (paired bootstrap),
        "spread", "a"/"b" (latency p50/p95 ms over every pair), "pairs" (one row per pair), ...}.
    """
    from slmexp.bench import time_request
    from slmexp.timing_passes import run_passes

    runtimes = {"a": runtime_a, "b": runtime_b}
    _warm_up(runtimes, prompts[:warmup], max_new_tokens, stop)
    timed = list(prompts[warmup:]) if len(prompts) > warmup else list(prompts)
    firsts = iter(first_sides(len(timed), passes, seed))

    def pair(i: int) -> dict[str, Any]:
        first = next(firsts)
        got = {side: time_request(runtimes[side], timed[i], max_new_tokens, stop)
               for side in (first, "b" if first == "a" else "a")}
        return {"first": first, **{f"{s}_ms": round(got[s]["e2e_s"] * 1000, 3) for s in "ab"},
                **{f"{s}_ttft_ms": round(got[s]["ttft_s"] * 1000, 3) for s in "ab"}}

    run = run_passes(pair, len(timed), passes, seed)
    out = summarize(run.results, passes)
    out.update(warmup_requests=min(warmup, len(prompts)), seed=seed, max_new_tokens=max_new_tokens,
               stop=list(stop or []), wall_s=round(run.wall_s, 3))
    return out


def first_sides(n: int, passes: int, seed: int) -> list[str]:
    """Who goes first in each pair, in the order the pairs run: per pass, half the pairs "a" and half "b" (an odd
    pass's extra pair alternates between passes), shuffled with a generator apart from the pass orders'.

    Balanced, not a coin per pair: a drift within a pair (the second request a little slower) then cancels in every
    pass instead of on average, and a short run cannot draw A first in most pairs by chance.
    """
    import numpy as np

    rng = np.random.default_rng([seed, 1])
    out: list[str] = []
    for number in range(passes):
        sides = ["a", "b"] * (n // 2) + ([("a", "b")[number % 2]] if n % 2 else [])
        out += [sides[int(k)] for k in rng.permutation(len(sides))]
    return out


def _median_pair_ratio(x: Any, y: Any) -> Any:
    """The paired statistic of `alternate`: median over pairs of B / A (x = A's, y = B's latencies, same pairs)."""
    import numpy as np

    return np.median(y / x, axis=-1)


def summarize(pairs: list[dict[str, Any]], passes: int) -> dict[str, Any]:
    """The figures of `alternate` from its pairs ({"pass_number", "a_ms", "b_ms", "first", ...})."""
    from statistics import median

    from slmexp.report.stats import paired_bootstrap_ci
    from slmexp.timing_passes import percentiles_ms, spread, t_interval

    a_ms, b_ms = [p["a_ms"] for p in pairs], [p["b_ms"] for p in pairs]
    ratios = [b / a for a, b in zip(a_ms, b_ms, strict=True) if a > 0]
    per_pass = []
    for number in range(1, passes + 1):
        mine = [p for p in pairs if p["pass_number"] == number and p["a_ms"] > 0]
        per_pass.append({"pass_number": number, "pairs": len(mine), "a_latency_p50_ms": _p50([p["a_ms"] for p in mine]),
                         "b_latency_p50_ms": _p50([p["b_ms"] for p in mine]),
                         "speedup": round(median(p["b_ms"] / p["a_ms"] for p in mine), 4) if mine else None})
    by_pass = [p["speedup"] for p in per_pass if p["speedup"] is not None]
    boot = paired_bootstrap_ci(a_ms, b_ms, _median_pair_ratio) if pairs else None
    low, high = (round(boot[0], 4), round(boot[1], 4)) if boot else (None, None)
    return {
        "speedup": round(median(ratios), 4) if ratios else None, "definition": DEFINITION,
        "ratio_of_p50": _ratio(a_ms, b_ms),  # the report's speed-up estimator, for comparison
        "passes": passes, "n_pairs": len(pairs), "a_first": sum(p["first"] == "a" for p in pairs),
        "a": {"latency_ms": percentiles_ms([v / 1000 for v in a_ms])},
        "b": {"latency_ms": percentiles_ms([v / 1000 for v in b_ms])},
        "per_pass": per_pass, "over_passes": t_interval(by_pass), "spread": spread(by_pass),
        "over_pairs": {"ci95_low": low, "ci95_high": high, "method": f"percentile bootstrap over {len(pairs)} pairs "
                                                                   "(median pair ratio): the spread within one run"},
        "pairs": pairs,
    }


def _p50(values: Sequence[float]) -> float | None:
    from statistics import median

    return round(median(values), 3) if values else None
