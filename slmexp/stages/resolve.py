"""The resolve stage: the model's files (a path, the Hub cache, a wheel's GGUF), or for an endpoint at most its
tokenizer; the record's `model` block and `provenance`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from slmexp.record import provenance
from slmexp.stages.validate import Plan


@dataclass
class Resolution:
    resolved: Any  # slmexp.models.Resolved, or None for an endpoint with no local copy
    model_block: dict[str, Any]
    provenance: dict[str, Any]


def _needs_weights(cfg: DictConfig, needs: str, trained: bool) -> bool:
    """Training, quantizers and the fidelity stage read the checkpoint; else a GGUF resolves to its tokenizer."""
    from slmexp import quantize

    return quantize.needs_weights(cfg, needs, trained) or bool((cfg.eval.get("fidelity") or {}).get("n_prompts"))


def run(cfg: DictConfig, plan: Plan) -> Resolution:
    from slmexp import models
    from slmexp.errors import ModelResolutionError

    resolved, why_not = None, "an API model: no local weights"
    if plan.remote and any(cfg.model.source.get(k) for k in ("path", "hub", "wheel")):
        try:  # only for the tokenizer (token counts) and the sha256: the endpoint is the model
            resolved = models.resolve(cfg.model, cfg.paths.cache_dir, weights=False)
        except ModelResolutionError as e:
            why_not = f"no local copy for its tokenizer ({e})"
    if plan.remote and resolved is None:
        block = {"name": str(cfg.model.name), "role": str(cfg.model.role), "params_b": cfg.model.get("params_b"),
                 "source": "endpoint", "note": why_not}
        prov = provenance(int(cfg.seed), plan.task.sha256, None)
    else:
        resolved = resolved or models.resolve(cfg.model, cfg.paths.cache_dir, weights=_needs_weights(
            cfg, plan.runtime_cls.needs, plan.needs_train))
        prov = provenance(int(cfg.seed), plan.task.sha256, resolved.sha256)
        block = models.describe(cfg.model, resolved)
    if plan.remote:
        block["endpoint"] = {"base_url": str(cfg.runtime.base_url), "model": str(cfg.runtime.model)}
    return Resolution(resolved=resolved, model_block=block, provenance=prov)
