"""The serving stage: load the runtime, run the accuracy pass, time the task's own requests, measure fidelity to the
full-precision parent, and report serving memory and contention. The routed system (slmexp.router) is the
alternative serving stage.

What is timed is what was scored: the speed stage sends the task's prompts with the task's generation settings
(stop strings, budget, chat template, decoding constraint). Serving memory is its own figure: the peak counter is
reset once training, export and conversion have handed their memory back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from slmexp.record import RunRecord
from slmexp.stages import Timer
from slmexp.stages.validate import Plan
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


@dataclass
class Served:
    """What the serving stage was given: the artifact to load and the paths around it."""

    artifact: Any  # slmexp.quantize.Artifact
    model_path: str | None  # the (merged) checkpoint, the parent of a quantized artifact
    adapter_path: str | None  # an unmerged adapter the runtime stacks on the base
    runtime_adapter: str | None  # the adapter the runtime itself loads (None once a file export merged it)


def _metrics_block(cfg: DictConfig, plan: Plan, result: Any, run_dir: Path) -> dict[str, Any]:
    from slmexp import decoding

    task = plan.task
    return {
        "task": task.name,
        "split": str(cfg.eval.split),
        "n_examples": result.n_examples,
        "formulation": result.formulation,
        "decoding": decoding.mode(cfg),
        "decoding_budget": plan.budget,
        "primary": str(cfg.task.primary_metric),
        "chance": task.task_kind.chance(task.labels),
        "values": result.metrics,
        "samples": str(result.samples_path.relative_to(run_dir)),
        "lm_eval_results": str(result.results_path.relative_to(run_dir)),
        "generations": str(result.generations_path.relative_to(run_dir)) if result.generations_path else None,
    }


def _accuracy_speed(runtime: Any, result: Any) -> dict[str, Any]:
    """How the accuracy pass ran: batches are for throughput; latency figures come from single requests."""
    from slmexp.runtimes import serving_facts

    facts = serving_facts(runtime)
    speed = {
        "load_s": round(facts["load_s"], 3),
        "eval_wall_s": round(result.wall_s, 3),
        "eval_examples_per_s": round(result.n_examples / result.wall_s, 3) if result.wall_s else None,
        "eval_batch_size": facts["batch_size"],
        "eval_dtype": facts["dtype_name"],
        "eval_shared_prefix": facts["prefix_stats"],  # transformers: batches that shared it
    }
    if result.accuracy_pass:  # per-request latency of the accuracy pass itself, where the runtime timed it
        speed["accuracy_pass"] = result.accuracy_pass
    speed.update(result.speed or {})  # a kind's own runner timed what it scored (one request = one episode)
    return speed


def timed_requests(cfg: DictConfig, plan: Plan, runtime: Any, generation: Any) -> dict[str, Any]:
    """The speed stage: the task's first `n_bench` prompts, as scored (a choice task: every label's
    log-likelihood), warm-up once then `eval.bench.passes` shuffled passes, with the energy tracker around the
    passes; the `speed` figures."""
    from slmexp import decoding
    from slmexp.bench import benchmark
    from slmexp.cost import energy_tracker
    from slmexp.tasks import lm_eval_doc, render_prompt
    from slmexp.timing_passes import DEFAULT_MAX_SPREAD, DEFAULT_PASSES

    task, bench_cfg = plan.task, cfg.eval.bench
    ids = None  # the timed requests' example ids: the report pairs them with the baseline's
    rows: list[Any] = []
    if task.task_kind.lm_eval_native:
        prompts = task.prompts
    else:
        split = str(cfg.eval.split)
        rows = task.splits[split][:plan.n_bench]
        prompts = [render_prompt(task.cfg, r) for r in rows]
        ids = [lm_eval_doc(task, split, i, r)["id"] for i, r in enumerate(rows)]
    energy: dict[str, Any] = {}
    measure = energy_tracker(cfg.get("cost"), enabled=not plan.remote, sink=energy)
    # r passes, each in an order shuffled with the job's seed (slmexp.timing_passes); warm-up once, before pass 1
    repeat = {"passes": int(bench_cfg.get("passes") or DEFAULT_PASSES), "seed": int(cfg.seed),
              "max_pass_spread": float(bench_cfg.get("max_pass_spread", DEFAULT_MAX_SPREAD))}
    if decoding.formulation(task.cfg) == "choice":
        from slmexp.decoding.choice import benchmark_choice

        timed = benchmark_choice(runtime, task, rows, warmup=int(bench_cfg.warmup), ids=ids, measure=measure,
                                 **repeat)
    else:
        timed = benchmark(runtime, prompts, max_new_tokens=int(bench_cfg.max_new_tokens),
                          warmup=int(bench_cfg.warmup), concurrency=int(bench_cfg.get("concurrency") or 1),
                          measure=measure, generation=generation, ids=ids, **repeat)
    if energy:
        timed["energy"] = energy
    return timed


def _wants_fidelity(cfg: DictConfig, served: Served) -> bool:
    fid = cfg.eval.get("fidelity") or {}
    return int(fid.get("n_prompts") or 0) > 0 and served.model_path is not None and served.adapter_path is None and (
        str(cfg.quantization.kind) != "none" or served.artifact.kind not in ("checkpoint", "endpoint"))


def fidelity_block(cfg: DictConfig, plan: Plan, runtime: Any, parent: Path, record: RunRecord) -> dict[str, Any]:
    """The quantized model against its full-precision parent (slmexp.fidelity): the record's `fidelity`."""
    from slmexp.fidelity import measure, texts_for

    fid = cfg.eval.fidelity
    block = measure(runtime.lm_eval_model(), parent, texts_for(plan.task, str(cfg.eval.split), int(fid.n_prompts)),
                    max_tokens=int(fid.get("max_tokens") or 512))
    model = record.data.get("model") or {}
    note = model.get("weights_provenance")
    block["parent"] = {"name": f"{cfg.model.name}" + (f"+{cfg.adapter.name}" if cfg.adapter.name != "none" else ""),
                       "path": str(parent), "dequantized": bool(note), "dequantized_note": note,
                       "sha256": None if cfg.adapter.name != "none" else (record.data.get("provenance") or {}).get(
                           "model_sha256")}
    return block


def _memory_and_contention(speed: dict[str, Any], peaks: dict[str, float], rss_before_load: float,
                           load_windows: dict[str, dict[str, Any]], note: str) -> None:
    speed["peak_rss_mb"] = max([peak_rss_mb(), *(peaks[s] for s in SERVING_STAGES if s in peaks)])
    speed["peak_rss_by_stage_mb"] = dict(peaks)
    speed["rss_before_load_mb"] = rss_before_load
    speed["memory_note"] = MEMORY_NOTE
    speed["gpu_max_memory_mb"] = gpu_max_memory_mb()
    speed["contention"] = contention_block(load_windows)
    speed["contended"] = speed["contention"]["contended"]
    speed["note"] = note


def run(cfg: DictConfig, plan: Plan, served: Served, run_dir: Path, record: RunRecord, stage: Timer,
        peaks: dict[str, float]) -> None:
    """Load, evaluate, time, measure: writes `metrics`, `speed` (and `quantization`'s memory footprint, `fidelity`)
    into the record as each is known, so a job killed while timing keeps its accuracy."""
    from slmexp import decoding, gencache
    from slmexp.attest import attest
    from slmexp.evaluate import evaluate_served
    from slmexp.runtimes import build_runtime, serving_facts

    release_freed_memory()  # what training, export and conversion freed goes back to the OS before the peaks reset
    reset_peak_rss()
    reset_gpu_peak()
    rss_before_load = rss_mb()
    threshold = float((cfg.eval.get("bench") or {}).get("contention_threshold", CONTENTION_THRESHOLD_CORES))
    workload = local_server_pids(str(cfg.runtime.base_url)) if plan.remote and cfg.runtime.get("base_url") else []
    windows: dict[str, dict[str, Any]] = {}  # stage -> the machine's load while its requests were timed
    artifact = served.artifact
    with stage("load"):
        runtime = decoding.attach(build_runtime(cfg, served.model_path, served.runtime_adapter, artifact),
                                  plan.constraints)
        if artifact.block is not None and artifact.kind == "checkpoint":  # quantized while loading (bitsandbytes)
            artifact.block["memory_footprint_bytes"] = serving_facts(runtime)["memory_footprint"]
            record.set("quantization", artifact.block)
    gen_cache = gencache.open_for(cfg, artifact.path or served.model_path, served.runtime_adapter, plan.remote)
    with runtime:
        with stage("evaluate"), ContentionGuard(threshold, workload) as guard:
            result = evaluate_served(runtime, plan.task, cfg.eval, run_dir / "lm_eval", constraints=plan.constraints,
                                     bench_prompts=plan.n_bench,
                                     cache=None if gen_cache is None else gen_cache["file"])
        windows["evaluate"] = guard.result
        record.set("metrics", _metrics_block(cfg, plan, result, run_dir))
        record.set("attestation", attest(run_dir, record.data["metrics"]))  # results + outputs sha256 (`slmexp verify`)
        speed = _accuracy_speed(runtime, result)
        if gen_cache is not None:
            record.data["metrics"]["generation_cache"] = gencache.block(gen_cache, result.n_examples)
        if plan.task.task_kind.lm_eval_native:
            record.data["metrics"]["lm_eval_tasks"] = [str(n) for n in cfg.task.names]
            record.save()
        if plan.n_bench:
            with stage("benchmark"), ContentionGuard(threshold, workload) as guard:
                speed.update(timed_requests(cfg, plan, runtime, result.generation))
            windows["benchmark"] = guard.result
        if _wants_fidelity(cfg, served):
            with stage("fidelity"):
                record.set("fidelity", fidelity_block(cfg, plan, runtime, Path(served.model_path), record))
        _memory_and_contention(speed, peaks, rss_before_load, windows, plan.runtime_cls.speed_note)
        record.set("speed", speed)
