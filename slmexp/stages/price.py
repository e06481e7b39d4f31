"""The price stage: $ per 1k requests and per correct answer from the measured speed (hardware $/h) or the
endpoint's token prices (slmexp.cost), or None when the job has no cost profile."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig


def run(cost_cfg: DictConfig | None, runtime_cfg: DictConfig, primary_metric: str, speed: dict[str, Any],
        values: dict[str, Any]) -> dict[str, Any] | None:
    """The record's `cost` block from the `cost` and `runtime` nodes and the measured speed and metric values."""
    if cost_cfg is None:
        return None
    from slmexp.cost import compute

    return compute(cost_cfg, runtime_cfg, speed, values.get(primary_metric))
