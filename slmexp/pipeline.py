"""The job: run the stages in order, own the run directory and keep run.json current after each stage.

validate -> resolve -> [distill] -> [train] -> quantize -> serve | route -> price (slmexp.stages). A stage whose
group says `none` is skipped. This module is the only place that knows the order, times each stage, and resumes a
finished job instead of rerunning it.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, suppress
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from slmexp.fingerprint import fingerprint, refresh_cost
from slmexp.record import RunRecord
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


def _hydra_context() -> tuple[Path, str | None, int | None, bool]:
    """(run dir, sweep dir, job number, multirun?) from Hydra, or a fresh dir when called outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        multirun = hc.mode == RunMode.MULTIRUN
        return (Path(hc.runtime.output_dir), hc.sweep.dir if multirun else None,
                hc.job.num if multirun else None, multirun)
    except ValueError:
        return Path("outputs") / "adhoc" / time.strftime("%Y-%m-%d_%H-%M-%S"), None, None, False


def _arm_choice() -> str | None:
    """The `arm=` option this job composed (Hydra's group choice; it is not a config key), or None."""
    try:
        from hydra.core.hydra_config import HydraConfig

        arm = HydraConfig.get().runtime.choices.get("arm")
    except ValueError:  # not inside a Hydra app
        return None
    return str(arm) if arm else None


def run_job(cfg: DictConfig, run_dir: Path | None = None) -> dict[str, Any]:
    """Run one job and return its record; on error the record says `failed` and the error is re-raised."""
    hydra_dir, sweep, job, _multirun = _hydra_context()
    run_dir = Path(run_dir or hydra_dir)
    t_start = time.perf_counter()
    container = OmegaConf.to_container(cfg, resolve=True)
    fp = fingerprint(OmegaConf.to_container(cfg, resolve=False), container)
    previous = _finished_record(run_dir, fp)
    if previous is not None:  # resume: this exact job already finished here; keep it, redo nothing
        from slmexp.report.claims import refresh as refresh_claims

        changed = refresh_cost(previous, cfg, container)  # only the price changed: new cost from the stored speed
        changed = refresh_claims(previous, container) or changed  # or the sweep now states other claims
        if "arm" not in previous["run"] and (arm := _arm_choice()):  # a record made before runs named their arm
            previous["run"]["arm"], changed = arm, True
        if changed:
            RunRecord(run_dir, previous).save()
        previous["run"]["skipped"] = True
        return previous
    reset_peak_rss()
    record = RunRecord.start(run_dir, name=str(cfg.name), sweep=sweep, job=job, config=container)
    record.data["run"]["fingerprint"] = fp
    record.data["run"]["arm"] = _arm_choice()  # how a sweep's claims name this run's row (slmexp.report.claims)
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


def _finished_record(run_dir: Path, fp: str) -> dict[str, Any] | None:
    """The run.json already in run_dir if it finished with the same fingerprint (a crashed or changed job reruns)."""
    from slmexp.record import RECORD_NAME, load

    path = Path(run_dir) / RECORD_NAME
    if not path.exists():
        return None
    try:
        rec = load(path)
    except (OSError, ValueError):
        return None
    run = rec.get("run") or {}
    return rec if run.get("status") == "finished" and run.get("fingerprint") == fp else None


def _run_stages(cfg: DictConfig, run_dir: Path, record: RunRecord, state: dict[str, Any]) -> None:
    """The stages in order (slmexp.stages): each takes what the ones before it returned."""
    from slmexp import distill, router
    from slmexp.stages import adapt, artifact, price, resolve, route, serve, validate

    stage = partial(_stage, record, state=state)
    with stage("validate"):
        plan = validate.run(cfg)
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
    cost = price.run(cfg, record.data["speed"], record.data["metrics"]["values"])
    if cost is not None:
        record.set("cost", cost)


def objective(record: dict[str, Any]) -> float | None:
    """The value of the run's `optimized_metric` (on the split it was evaluated on) for sweepers; None when the run
    recorded no metrics (it failed).

    Why not the primary metric: a sweep may optimise another recorded metric (`optimized_metric=strict_match`);
    a name the run did not record is a config error, not a silent fallback to something else.
    """
    from slmexp.errors import ConfigError

    metrics = record.get("metrics") or {}
    values = metrics.get("values") or {}
    if not values:
        return None
    name = (record.get("config") or {}).get("optimized_metric") or metrics.get("primary")
    if name not in values:
        recorded = ", ".join(k for k in values if not k.endswith("_stderr"))
        raise ConfigError("optimized_metric", f"{name!r} is not a metric this run recorded ({recorded})")
    return values[name]
