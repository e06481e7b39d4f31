"""The number a sweeper optimises: a finished run's `optimized_metric`."""

from __future__ import annotations

from typing import Any

from slmexp.errors import ConfigError


def objective(record: dict[str, Any]) -> float | None:
    """The value of the run's `optimized_metric` (on the split it was evaluated on) for sweepers; None when the run
    recorded no metrics (it failed).

    Why not the primary metric: a sweep may optimise another recorded metric (`optimized_metric=strict_match`);
    a name the run did not record is a config error, not a silent fallback to something else.
    """
    metrics = record.get("metrics") or {}
    values = metrics.get("values") or {}
    if not values:
        return None
    name = (record.get("config") or {}).get("optimized_metric") or metrics.get("primary")
    if name not in values:
        recorded = ", ".join(k for k in values if not k.endswith("_stderr"))
        raise ConfigError("optimized_metric", f"{name!r} is not a metric this run recorded ({recorded})")
    return values[name]
