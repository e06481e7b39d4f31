"""The job: run the stages in order, own the run directory and keep run.json current after each stage.

validate -> resolve -> [distill] -> [train] -> quantize -> serve | route -> price (slmexp.stages). A stage whose
group says `none` is skipped. This module is the only place that knows the order and times each stage; resuming a
finished job is slmexp.resume, Hydra's view of the job slmexp.hydra_job, a sweeper's objective slmexp.objective.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, suppress
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from slmexp import hydra_job
from slmexp.fingerprint import fingerprint
from slmexp.record import RunRecord
from slmexp.resume import finished_record, refresh
from slmexp.system import peak_rss_mb, reset_peak_rss


@contextmanager
def _stage(record: RunRecord, name: str, state: dict[str, Any]):
    """Time a stage, show it in run.json while it runs, and keep its own peak RSS (VmHWM read at its end, then
    reset, so the next stage starts counting from the memory it inherits)."""
    state["stage"] = name
    record.data["run"]["stage"] = name  # visible in run.json while the stage runs (a killed job shows where)
    record.save()
    t0 = time.perf_counter()
    yield
    record.stage_time(name, time.perf_counter() - t0)
    state.setdefault("peak_rss_mb", {})[name] = peak_rss_mb()
    reset_peak_rss()


def run_job(cfg: DictConfig, run_dir: Path | None = None) -> dict[str, Any]:
    """Run one job and return its record; on error the record says `failed` and the error is re-raised."""
    hydra_dir, sweep, job, _multirun = hydra_job.context()
    run_dir = Path(run_dir or hydra_dir)
    t_start = time.perf_counter()
    container = OmegaConf.to_container(cfg, resolve=True)
    fp = fingerprint(OmegaConf.to_container(cfg, resolve=False), container)
    previous = finished_record(run_dir, fp)
    if previous is not None:  # resume: this exact job already finished here; keep it, redo nothing
        return refresh(previous, cfg, container, run_dir, hydra_job.arm_choice())
    reset_peak_rss()
    record = RunRecord.start(run_dir, name=str(cfg.name), sweep=sweep, job=job, config=container)
    record.data["run"]["fingerprint"] = fp
    record.data["run"]["arm"] = hydra_job.arm_choice()  # how a sweep's claims name this run (slmexp.report.claims)
    state: dict[str, Any] = {"stage": "validate"}
    from slmexp.tracking import log_job

    try:
        _run_stages(cfg, run_dir, record, state)
    except BaseException as exc:
        from slmexp.faults import as_input_error

        mapped = as_input_error(exc, cfg, state["stage"])  # a full disk: name the paths.* key to change
        with suppress(OSError):  # the disk is full: the last run.json written stays whole (atomic writes)
            record.fail(mapped or exc, state["stage"], time.perf_counter() - t_start)
        if isinstance(exc, Exception):  # not on Ctrl-C: stop now
            log_job(cfg.get("logger"), record.data, run_dir)
        if mapped is not None:
            raise mapped from exc
        raise
    record.finish(time.perf_counter() - t_start)
    log_job(cfg.get("logger"), record.data, run_dir)
    return record.data


def _run_stages(cfg: DictConfig, run_dir: Path, record: RunRecord, state: dict[str, Any]) -> None:
    """The stages in order (slmexp.stages): each takes what the ones before it returned. From validation on, the
    stages read the plan's config (read-only; the fitted decoding budget in it), never the composed one."""
    from slmexp import distill, router
    from slmexp.stages import adapt, artifact, price, resolve, route, serve, validate

    stage = partial(_stage, record, state=state)
    with stage("validate"):
        plan = validate.run(cfg)
    cfg = plan.config
    with stage("resolve"):
        res = resolve.run(cfg, plan)
        record.data["provenance"] = res.provenance
        record.set("model", res.model_block)
    task, eval_path, adapter_path = plan.task, (res.resolved.path if res.resolved else None), None
    if plan.needs_train:
        if distill.enabled(cfg):  # the student's train split becomes the teacher's kept labels
            with stage("distill"):
                task = distill.run(cfg, task, run_dir, record)
        eval_path, adapter_path = adapt.run(cfg, task, res.resolved, run_dir, record, stage)
    plan = replace(plan, task=task)
    served = artifact.run(cfg, plan, res.resolved, eval_path, adapter_path, run_dir, record, stage)
    if router.enabled(cfg):  # the routed system (this SLM + router.llm) replaces the serving stage
        route.run(cfg, plan, served, run_dir, record, stage, state["peak_rss_mb"])
        return
    serve.run(cfg, plan, served, run_dir, record, stage, state["peak_rss_mb"])
    cost = price.run(cfg.get("cost"), cfg.runtime, str(cfg.task.primary_metric), record.data["speed"],
                     record.data["metrics"]["values"])
    if cost is not None:
        record.set("cost", cost)
