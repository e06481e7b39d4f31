"""Accuracy through lm-evaluation-harness: `simple_evaluate` on the runtime's LM with our local task YAMLs.

A TaskManager with `include_defaults=False` indexes only our per-run task dir (~0 s instead of ~11 s for lm-eval's
14k built-in tasks). Per-example results are kept (`samples.jsonl`): the report's statistics need them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from slmexp.runtimes import request_latencies
from slmexp.tasks import Task, write_lm_eval_task


@dataclass
class EvalResult:
    """What the accuracy pass measured, and how it generated (the speed stage times the same requests).

    `generation`: the settings lm-eval generated with ({"until", "max_gen_toks", "chat_template",
    "prompt_suffix"}), read back from lm-eval's own task config; None when no task generated (log-likelihood only).
    `prompt_suffix` is what the accuracy pass appended to each user turn (a model without a chat template
    continues `\n<answer_prefix>`). `accuracy_pass`: per-request latency of the accuracy pass's generate requests
    ({"latency_ms": {"p50", "p95"}, "n", "concurrency"}) where the runtime's LM timed them, else None.
    """

    metrics: dict[str, float]
    n_examples: int
    wall_s: float
    samples_path: Path
    results_path: Path
    formulation: str
    generation: dict[str, Any] | None = None
    accuracy_pass: dict[str, Any] | None = None
    generations_path: Path | None = None  # the per-example store (slmexp.generations), next to out_dir
    # the speed figures a kind's own runner timed while scoring (`TaskKind.runner`: one request = one episode), which
    # stand for the speed stage's; None for lm-eval passes
    speed: dict[str, Any] | None = None


def evaluate_served(runtime: Any, task: Task, eval_cfg: DictConfig, out_dir: Path, *, constraints: Any = None,
                    bench_prompts: int = 0, cache: Path | None = None) -> EvalResult:
    """The accuracy pass on a loaded runtime: the task kind's own runner when it declares one (`TaskKind.runner`,
    e.g. multi-turn agent episodes through the runtime's `chat`), else lm-eval on the runtime's LM (`evaluate`)."""
    runner = task.task_kind.runner
    if runner:
        from slmexp.registry import load_ref

        return load_ref(runner)(runtime, task, eval_cfg, out_dir, constraints=constraints)
    return evaluate(runtime.lm_eval_model(), task, eval_cfg, out_dir, runtime.uses_chat_template(),
                    bench_prompts=bench_prompts, cache=cache)


def _clean_metrics(task_results: dict[str, Any]) -> dict[str, float]:
    """lm-eval keys look like `exact_match,none`; keep `exact_match` and `exact_match_stderr`."""
    out = {}
    for key, value in task_results.items():
        if "," not in key or not isinstance(value, int | float):
            continue
        metric, _filter = key.split(",", 1)
        out[metric] = float(value)
    return out


def prepare_lm_eval(task: Task, limit_prompts: int) -> None:
    """Find and load the named lm-eval tasks before any model loads: a missing dataset or a typo fails in seconds.

    Sets `task.lm_eval_manager` (lm-eval's tasks plus task.include_path) and `task.prompts` (the first test
    prompts, for the speed stage)."""
    import difflib

    from lm_eval.tasks import TaskManager

    from slmexp.errors import DataError
    from slmexp.origin import fail

    include = task.cfg.get("include_path")
    manager = TaskManager(include_path=str(Path(str(include)).expanduser()) if include else None)
    names = [str(n) for n in task.cfg.names]
    for name in names:
        if name not in manager.all_tasks:
            close = difflib.get_close_matches(name, manager.all_tasks, n=3)
            raise fail("task.names", f"{name!r} is not an lm-eval task or group"
                       + (f"; did you mean {', '.join(close)}?" if close else ""))
    try:
        loaded = manager.load(names)
    except (ConnectionError, OSError, FileNotFoundError) as e:
        offline = any(os.environ.get(v, "0") not in ("0", "", "false", "False")
                      for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
        raise DataError(
            f"task.names={names}: the dataset is not available locally ({e}). lm-eval tasks read their data from "
            "the Hugging Face Hub into ~/.cache/huggingface/datasets; "
            + ("HF_HUB_OFFLINE is set and the dataset is not in that cache: run once with network access "
               "(HF_HUB_OFFLINE=0) to fill the cache, or point task.include_path at lm-eval YAMLs that read "
               "local files." if offline else "the Hub is unreachable from here.")) from None
    prompts: list[str] = []
    for lm_task in loaded["tasks"].values():
        for doc in list(lm_task.eval_docs)[:limit_prompts]:
            text = lm_task.doc_to_text(doc)
            if isinstance(text, str) and text.strip():
                prompts.append(text)
        if len(prompts) >= limit_prompts:
            break
    task.lm_eval_manager, task.prompts = manager, prompts[:limit_prompts]


def _response(sample: dict[str, Any]) -> Any:
    """What the model answered: the generation, or for multiple choice the index of the likeliest choice."""
    resp = sample.get("filtered_resps") or sample.get("resps")
    if sample.get("doc") is not None and isinstance(resp, list) and resp and all(
            isinstance(r, list | tuple) and r and isinstance(r[0], int | float) for r in resp):
        lls = [float(r[0]) for r in resp]
        return max(range(len(lls)), key=lls.__getitem__)
    while isinstance(resp, list | tuple) and resp:
        resp = resp[0]
    return resp


def evaluate(lm: Any, task: Task, eval_cfg: DictConfig, out_dir: Path, use_chat_template: bool,
             bench_prompts: int = 0, cache: Path | None = None) -> EvalResult:
    """Run lm-eval on `task`'s `eval_cfg.split` (or the lm-eval tasks it names); write results.json and
    samples.jsonl under out_dir. `cache`: lm-eval's request cache for this model (slmexp.gencache), or None."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    out_dir = Path(out_dir)
    num_fewshot = int(eval_cfg.get("num_fewshot") or 0)
    if task.task_kind.lm_eval_native:
        if task.lm_eval_manager is None:
            prepare_lm_eval(task, bench_prompts)
        manager, names = task.lm_eval_manager, [str(n) for n in task.cfg.names]
    else:
        split = str(eval_cfg.split)
        splits = [split] + (["train"] if num_fewshot > 0 and "train" in task.splits else [])
        write_lm_eval_task(task, out_dir / "tasks", splits, use_chat_template)
        manager = TaskManager(include_path=str(out_dir / "tasks"), include_defaults=False)
        names = [task.lm_eval_name]
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    latencies = request_latencies(lm)
    if latencies is not None:
        latencies.clear()  # this pass's requests only
    t0 = time.perf_counter()
    results = simple_evaluate(
        model=lm,
        tasks=names,
        task_manager=manager,
        num_fewshot=num_fewshot or None,
        limit=eval_cfg.get("limit"),
        bootstrap_iters=int(eval_cfg.bootstrap_iters),
        log_samples=bool(eval_cfg.log_samples),
        apply_chat_template=use_chat_template,
        fewshot_as_multiturn=use_chat_template and num_fewshot > 0,
        random_seed=0,
        numpy_random_seed=1234,
        torch_random_seed=1234,
        fewshot_random_seed=1234,
        use_cache=None if cache is None else str(cache),
    )
    wall_s = time.perf_counter() - t0
    per_task = {name: _clean_metrics(results["results"][name]) for name in names}
    metrics = _combined(per_task, names, str(task.cfg.primary_metric))
    n_samples = results.get("n-samples", {})
    leaves = list(results.get("samples", {})) or names
    n = sum(int(n_samples.get(name, {}).get("effective", 0)) for name in leaves)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples_path = _write_samples(out_dir / "samples.jsonl", results, task, per_task, metrics, leaves)
    from slmexp import generations  # the per-example store in the run dir (`slmexp rescore` re-scores it)

    names_by_task = {name: set(per_task.get(name) or metrics) for name in results.get("samples", {})}
    generations_path = generations.write(out_dir.parent / generations.GENERATIONS_NAME, generations.rows_from_samples(
        results.get("samples", {}), task.kind, names_by_task, _response))
    results_path = out_dir / "results.json"
    summary = {k: v for k, v in results.items() if k != "samples"}
    results_path.write_text(json.dumps(summary, indent=2, default=str))
    formulation = _formulation(task, results, use_chat_template, num_fewshot)
    return EvalResult(metrics, n, wall_s, samples_path, results_path, formulation,
                      generation=_generation(results, use_chat_template),
                      accuracy_pass=_accuracy_pass(lm, latencies), generations_path=generations_path)


def _combined(per_task: dict[str, dict[str, Any]], names: list[str], primary: str) -> dict[str, Any]:
    """One task: its metrics. Several (an lm-eval group): each under <task>/<metric>, and the primary metric also
    as the unweighted mean over the tasks that report it."""
    if len(names) == 1:
        return per_task[names[0]]
    metrics = {f"{name}/{m}": v for name, vals in per_task.items() for m, v in vals.items()}
    have = [vals[primary] for vals in per_task.values() if primary in vals]
    if have:
        metrics[primary] = sum(have) / len(have)
    return metrics


def _write_samples(path: Path, results: dict[str, Any], task: Task, per_task: dict[str, dict[str, Any]],
                   metrics: dict[str, Any], leaves: list[str]) -> Path:
    """lm_eval/samples.jsonl: one line per test example (target, response, per-example metrics)."""
    with open(path, "w") as f:
        for name, samples in results.get("samples", {}).items():
            for s in samples:
                doc_id = s["doc_id"] if len(leaves) == 1 else f"{name}/{s['doc_id']}"
                metric_names = set(per_task.get(name) or metrics)
                row = {
                    "doc_id": doc_id,
                    "id": doc_id if task.task_kind.lm_eval_native else s["doc"].get("id"),
                    "target": s["target"],
                    "response": _response(s),
                    **{m: s[m] for m in metric_names if m in s},
                }
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return path


def _formulation(task: Task, results: dict[str, Any], use_chat_template: bool, num_fewshot: int) -> str:
    """How the examples were put to the model: output type / chat template or plain / k-shot."""
    chat = "chat_template" if use_chat_template else "plain"
    if task.task_kind.lm_eval_native:
        types = sorted({str(c.get("output_type")) for c in (results.get("configs") or {}).values()})
        return f"lm-eval/{'+'.join(types) or '?'}/{chat}/{num_fewshot}-shot"
    output = "multiple_choice" if str(task.cfg.get("formulation") or "generate") == "choice" else "generate_until"
    return f"{output}/{chat}/{num_fewshot}-shot"


def _generation(results: dict[str, Any], use_chat_template: bool) -> dict[str, Any] | None:
    """The first generating task's settings as lm-eval ran them (its config after our YAML and its defaults)."""
    configs = results.get("configs") or {}
    for name, conf in configs.items():  # a group's subtasks share one formulation
        if conf.get("output_type") != "generate_until":
            continue
        kwargs = dict(conf.get("generation_kwargs") or {})
        until = kwargs.get("until") or []
        until = [until] if isinstance(until, str) else [str(u) for u in until]
        max_gen = kwargs.get("max_gen_toks") or kwargs.get("max_new_tokens")
        return {"until": until, "max_gen_toks": int(max_gen) if max_gen else None,
                "chat_template": bool(use_chat_template),
                "prompt_suffix": "" if use_chat_template else _prompt_suffix(results.get("samples", {}).get(name))}
    return None


def _prompt_suffix(samples: list[dict[str, Any]] | None) -> str:
    """What lm-eval's context adds after the user turn (our docs' `prompt`) for a model without a chat template:
    read from the first request the accuracy pass sent, so the speed stage sends the same text."""
    for s in samples or []:
        prompt = (s.get("doc") or {}).get("prompt")
        args = s.get("arguments")
        context = None
        if isinstance(args, dict) and args:  # {"gen_args_0": {"arg_0": context, "arg_1": gen_kwargs}}
            first = next(iter(args.values()))
            context = first.get("arg_0") if isinstance(first, dict) else None
        elif isinstance(args, list | tuple) and args:
            context = args[0][0] if isinstance(args[0], list | tuple) else args[0]
        if isinstance(prompt, str) and isinstance(context, str) and prompt in context:
            return context[context.rindex(prompt) + len(prompt):]
        return ""
    return ""


def _accuracy_pass(lm: Any, latencies: list[float] | None) -> dict[str, Any] | None:
    """Percentiles of the LM's per-request latencies (ms), or None when it timed no request."""
    if not latencies:
        return None
    import numpy as np

    arr = np.asarray(latencies, dtype=float) * 1000
    return {"latency_ms": {"p50": round(float(np.percentile(arr, 50)), 3),
                           "p95": round(float(np.percentile(arr, 95)), 3)},
            "n": len(latencies), "concurrency": int(getattr(lm, "request_concurrency", 1) or 1)}
