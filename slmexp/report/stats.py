"""Statistics of the comparison: bootstrap CIs, the exact McNemar test, paired counts and mean ± std over seeds.

Why apart: these are plain functions of numbers, independent of the run record and of any output format, so they
can be checked against hand-computed values (tests/test_report.py) and reused by other reports. The RNG seed and
resample count are fixed here, which is what makes re-running a report byte-identical.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CI_LEVEL = 0.95


def bootstrap_ci(values: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, level: float = CI_LEVEL,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """Percentile bootstrap CI of the mean, resampling test examples with a fixed RNG so reports are reproducible.

    Args:
        values: per-example scores (0/1 for exact match, or seed-averaged scores).
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
