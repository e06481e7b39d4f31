"""The validate stage: every config error at once (slmexp.schema), the runtime's pre-flight (an endpoint that does
not answer), then the task's data files, the decoding constraints and their token budget. Nothing here loads a
model or sends a request that costs money."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from omegaconf import DictConfig, OmegaConf


@dataclass
class Plan:
    """What validation learnt that the later stages need."""

    task: Any  # slmexp.tasks.Task
    runtime_cls: type
    needs_train: bool
    n_bench: int  # warm-up + timed requests of the speed stage (0 = no speed stage)
    constraints: Any  # decoding=constrained: each prompt's answer space (slmexp.decoding), else None
    budget: dict[str, Any] | None  # decoding.budget=fit: the raised max_new_tokens and why (metrics.decoding_budget)
    config: DictConfig  # the job's config from here on: the composed one with the fitted budget, read-only

    @property
    def remote(self) -> bool:
        return bool(self.runtime_cls.remote)


def splits_needed(cfg: DictConfig, needs_train: bool) -> list[str]:
    """The evaluated split, plus train/validation when the job trains or shows few-shot examples."""
    splits = [str(cfg.eval.split)]
    if needs_train or int(cfg.eval.get("num_fewshot") or 0) > 0:
        splits += [s for s in ("train", "validation") if (cfg.task.get("data") or {}).get(s) and s not in splits]
    return splits


def run(cfg: DictConfig) -> Plan:
    """Raise ConfigErrors / DataError / EndpointError on bad input; else the Plan, whose `config` every later stage
    reads (read-only: a stage returns what it learnt, it never patches the config)."""
    from slmexp import config as slm_config
    from slmexp import decoding
    from slmexp.runtimes import preflight, runtime_class
    from slmexp.tasks import load_task

    slm_config.validate(cfg)  # every bad key at once: the schema, cross-key rules, plug-in checks, prices
    runtime_cls = runtime_class(cfg.runtime)
    preflight(runtime_cls, cfg)  # e.g. an endpoint that is down: refused now, before any model is resolved
    needs_train = cfg.adapter.name != "none"
    task = load_task(cfg.task, splits_needed(cfg, needs_train))
    bench_cfg = cfg.eval.get("bench")
    n_bench = int(bench_cfg.warmup) + int(bench_cfg.n) if bench_cfg and int(bench_cfg.n) > 0 else 0
    if task.task_kind.runner:  # a kind's own runner times every episode it scores: no separate speed pass
        n_bench = 0
    if task.task_kind.lm_eval_native:
        from slmexp.evaluate import prepare_lm_eval

        prepare_lm_eval(task, n_bench)
    constraints = decoding.build(cfg, task)
    budget = decoding.fit_budget(cfg, constraints)
    job_cfg = decoding.with_budget(cfg, budget)  # a copy: `cfg` is not written into
    OmegaConf.set_readonly(job_cfg, True)  # no later stage writes into the config either
    return Plan(task=replace(task, cfg=job_cfg.task), runtime_cls=runtime_cls, needs_train=needs_train,
                n_bench=n_bench, constraints=constraints, budget=budget, config=job_cfg)
