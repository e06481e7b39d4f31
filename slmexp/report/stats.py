"""Statistics of the comparison: Wilson and bootstrap CIs, paired bootstrap CIs, exact McNemar, Holm, mean ± std.

Why apart: these are plain functions of numbers, independent of the run record and of any output format, so they
can be checked against published and hand-computed values (tests/test_report.py) and reused by other reports. The
RNG seed and resample count are fixed here, which is what makes re-running a report byte-identical.

Which interval for what:
- a proportion (a 0/1 score per example: exact_match, acc, ...) gets the Wilson score interval. A percentile
  bootstrap of a proportion collapses to [0, 0] at p = 0 (every resample is all zeros), which claims certainty a
  100-example test cannot give; Wilson stays honest at the edges (0/100 -> [0, 0.037]).
- a mean of non-binary per-example scores (field_f1, f1, ...) gets a percentile bootstrap over test examples.
- a difference against the baseline gets a paired bootstrap: the same resampled example ids for both rows, so the
  correlation between two models answering the same questions is kept (unpaired intervals would be far too wide).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from statistics import NormalDist
from typing import Any

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CI_LEVEL = 0.95


def wilson_ci(successes: float, n: int, level: float = CI_LEVEL) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (Wilson 1927; Newcombe 1998, method 3), never of zero width for n > 0.

    Same formula as statsmodels' `proportion_confint(method="wilson")`, kept dependency-free because statsmodels is
    not in the pinned stack. `successes` may be fractional: for a row averaged over seeds it is mean accuracy x n,
    which gives a conservative interval (a per-example mean in [0, 1] has variance <= p(1 - p)).

    Args:
        successes: correct answers (0 <= successes <= n).
        n: examples scored.
        level: coverage of the interval.

    Returns:
        (low, high) clipped to [0, 1], or None when n == 0.
    """
    if n <= 0:
        return None
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = min(1.0, max(0.0, successes / n))
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def is_binary(values: Iterable[float]) -> bool:
    """True when every per-example score is 0 or 1 (a proportion: Wilson applies)."""
    vals = list(values)
    return bool(vals) and all(v in (0.0, 1.0) for v in vals)


def bootstrap_ci(values: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, level: float = CI_LEVEL,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """Percentile bootstrap CI of the mean, resampling test examples with a fixed RNG so reports are reproducible.

    For non-binary per-example scores (F1-type metrics); proportions get `wilson_ci` instead.

    Args:
        values: per-example scores.
        resamples: bootstrap resamples.
        level: coverage of the interval.
        seed: seed of numpy's default_rng.

    Returns:
        (low, high), or None for an empty input.
    """
    import numpy as np

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2
    low, high = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


# A paired statistic: (row values, baseline values), each (resamples, n) -> (resamples,) statistic values.
PairedStat = Callable[[Any, Any], Any]


def _mean_diff(x: Any, y: Any) -> Any:
    return x.mean(axis=-1) - y.mean(axis=-1)


def _pct_of_mean(x: Any, y: Any) -> Any:
    return 100 * x.mean(axis=-1) / y.mean(axis=-1)


def _median_ratio(x: Any, y: Any) -> Any:
    import numpy as np

    return np.median(y, axis=-1) / np.median(x, axis=-1)


def _mean_ratio(x: Any, y: Any) -> Any:
    return x.mean(axis=-1) / y.mean(axis=-1)


# The statistics the table needs; `x` is the compared row, `y` the baseline.
ACCURACY_DELTA: PairedStat = _mean_diff     # accuracy - baseline accuracy
RETAINED_PCT: PairedStat = _pct_of_mean     # 100 x accuracy / baseline accuracy
SPEEDUP: PairedStat = _median_ratio         # baseline latency p50 / row latency p50
MEAN_RATIO: PairedStat = _mean_ratio        # row mean / baseline mean (cost ratio from per-request costs)


def paired_bootstrap_ci(x: Sequence[float], y: Sequence[float], stat: PairedStat,
                        resamples: int = BOOTSTRAP_RESAMPLES, level: float = CI_LEVEL,
                        seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """Percentile CI of `stat(x, y)` resampling example ids jointly: x[i] and y[i] are the same example's values.

    Resamples whose statistic is not finite (a baseline mean of 0 in a ratio) are dropped; if more than half the
    tail mass would be lost that way the CI is not defined and None is returned rather than a misleading interval.

    Args:
        x: per-example values of the compared row, aligned with `y` by example id.
        y: per-example values of the baseline.
        stat: one of ACCURACY_DELTA, RETAINED_PCT, SPEEDUP, MEAN_RATIO (or any vectorised paired statistic).
        resamples: bootstrap resamples.
        level: coverage of the interval.
        seed: seed of numpy's default_rng (fixed: byte-identical reports).

    Returns:
        (low, high), or None when the inputs are empty, differ in length, or the statistic is undefined.
    """
    import numpy as np

    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.size == 0 or xa.shape != ya.shape:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, xa.size, size=(resamples, xa.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.asarray(stat(xa[idx], ya[idx]), dtype=float)
    values = values[np.isfinite(values)]
    alpha = (1.0 - level) / 2
    if values.size < resamples * (1 - alpha):
        return None
    low, high = np.percentile(values, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: a binomial(b + c, 1/2) test on the discordant pairs.

    The exact form (not the chi-square approximation) because small models and small eval limits give few
    discordant pairs. p = min(1, 2 * P[X <= min(b, c)]), X ~ Bin(b + c, 1/2); p = 1 when there is no discordant pair.

    Args:
        b: pairs the row gets right and the baseline wrong.
        c: pairs the row gets wrong and the baseline right.

    Returns:
        The p-value.
    """
    n = b + c
    if n == 0:
        return 1.0
    try:
        from scipy.stats import binomtest
    except ImportError:
        tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
        return min(1.0, 2 * tail / 2**n)
    return float(min(1.0, binomtest(min(b, c), n, 0.5, alternative="two-sided").pvalue))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error rate) of the p-values of one table's comparisons.

    Why Holm: a table compares every arm with the same baseline, so with m arms the chance that some raw p < 0.05
    by luck grows with m; Holm controls it without Bonferroni's loss of power and without assumptions about the
    dependence between the tests. Sorted ascending, p_(j) becomes max_{i <= j} min(1, (m - i + 1) p_(i)).

    Args:
        pvalues: raw p-values, in any order.

    Returns:
        The adjusted p-values, in the input order.
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def paired_counts(row: dict[str, float], base: dict[str, float]) -> tuple[int, int, int] | None:
    """(n paired, b, c) over the ids both runs scored; None unless both are per-example 0/1 scores.

    Args:
        row: per-example score of the compared run, by example id.
        base: per-example score of the baseline run, by example id.

    Returns:
        (number of shared ids, row right & baseline wrong, row wrong & baseline right), or None.
    """
    ids = sorted(set(row) & set(base))
    if not ids or any(row[i] not in (0.0, 1.0) or base[i] not in (0.0, 1.0) for i in ids):
        return None
    b = sum(1 for i in ids if row[i] == 1.0 and base[i] == 0.0)
    c = sum(1 for i in ids if row[i] == 0.0 and base[i] == 1.0)
    return len(ids), b, c


def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof=1) of the measured values (None = not measured, skipped).

    Returns:
        (None, None) when nothing was measured; (mean, None) for a single value.
    """
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
    return mean, math.sqrt(var)
