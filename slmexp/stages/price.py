"""The price stage: $ per 1k requests and per correct answer from the measured speed (hardware $/h) or the
endpoint's token prices (slmexp.cost), or None when the job has no cost profile."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig


def run(cfg: DictConfig, speed: dict[str, Any], values: dict[str, Any]) -> dict[str, Any] | None:
    if cfg.get("cost") is None:
        return None
    from slmexp.cost import compute

    return compute(cfg.cost, cfg.runtime, speed, values.get(str(cfg.task.primary_metric)))
