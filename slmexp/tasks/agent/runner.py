"""The evaluation of kind `agent`: its own episode runner, which the serving stage calls instead of lm-eval
(`TaskKind.runner`). Why: an episode is several model calls, each fed the tools' results, so it cannot be one
lm-eval `generate_until` request.

It writes what an lm-eval pass writes, in the same shapes, so the report, `slmexp rescore`, paired statistics and
flips work unchanged by episode id: `lm_eval/samples.jsonl` (one line per episode: id, target, response = the final
answer, the per-episode metrics), `generations.jsonl` (raw = the episode's transcript as JSON; `extracted` = the
final answer and the checker's verdict; the doc the checker re-reads) and `lm_eval/results.json`. Every episode is
timed as it runs, one at a time, so the run's speed figures (and so its $ per 1k requests and per correct answer)
are per episode: what was scored is what was timed, and the serving stage runs no separate speed pass.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from slmexp import generations
from slmexp.evaluate import EvalResult
from slmexp.tasks import Task, lm_eval_doc
from slmexp.tasks.agent.episode import run_episode
from slmexp.tasks.agent.judge import METRICS, judge
from slmexp.tasks.agent.toolbox import load

TIMING_NOTE = ("one request = one whole episode (every model call and tool call of it, one episode at a time, no "
               "warm-up): latency_ms is the episode's wall time, requests_per_s episodes per second")


def tools_source(task_cfg: DictConfig) -> str:
    """`task.agent.tools` as a path (a `.py` file, resolved) or a module name."""
    if not (task_cfg.get("agent") or {}).get("tools"):
        from slmexp.origin import fail

        raise fail("task.agent.tools", f"a {task_cfg.kind} task names its tools module (a .py file or a module)")
    src = str(task_cfg.agent.tools)
    return str(Path(src).expanduser().resolve()) if src.endswith(".py") else src


def episode_doc(task: Task, split: str, i: int, row: dict[str, Any]) -> dict[str, Any]:
    """The lm-eval-shaped doc of one episode, with what the checker needs to re-judge it (the row, the tools)."""
    doc = lm_eval_doc(task, split, i, row)
    doc["row"] = json.dumps({k: v for k, v in row.items() if k != "_line"}, ensure_ascii=False)
    doc["toolbox"] = tools_source(task.cfg)
    return doc


def _stderr(values: list[float]) -> float:
    if len(values) < 2:
        return math.nan
    mu = sum(values) / len(values)
    return math.sqrt(sum((v - mu) ** 2 for v in values) / (len(values) - 1)) / math.sqrt(len(values))


def _percentiles(values: list[float]) -> dict[str, float | None]:
    import numpy as np

    if not values:
        return {"p50": None, "p95": None}
    arr = np.asarray(values, dtype=float)
    return {"p50": round(float(np.percentile(arr, 50)), 3), "p95": round(float(np.percentile(arr, 95)), 3)}


def speed_block(episodes: list[dict[str, Any]], max_new_tokens: int) -> dict[str, Any]:
    """The run's speed figures, one request per episode (the cost stage prices these)."""
    walls = [e["metrics"]["wall_s"] for e in episodes]
    total = sum(walls)
    out_tok = sum(int(e["metrics"]["output_tokens"]) for e in episodes)
    in_tok = sum(int(e["metrics"]["input_tokens"]) for e in episodes)
    sources = sorted({str(t.get("usage_source")) for e in episodes for t in e["transcript"]["turns"]})
    return {
        "n_requests": len(episodes), "warmup_requests": 0, "concurrency": 1, "formulation": "agent",
        "max_new_tokens": max_new_tokens, "max_new_tokens_from": "task.generation.max_new_tokens (per model call)",
        "chat_template": True, "timing_note": TIMING_NOTE,
        "latency_ms": _percentiles([1000 * w for w in walls]),
        "requests_per_s": len(episodes) / total if total else None,
        "output_tokens_per_s": out_tok / total if total else None, "wall_s": round(total, 3),
        "usage": {"requests": len(episodes), "input_tokens": in_tok, "output_tokens": out_tok,
                  "source": "+".join(sources) or None},
        "requests": [{"id": e["id"], "latency_ms": round(1000 * e["metrics"]["wall_s"], 3),
                      "output_tokens": int(e["metrics"]["output_tokens"])} for e in episodes],
    }


def _write(out_dir: Path, task: Task, episodes: list[dict[str, Any]], metrics: dict[str, float]) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = out_dir / "samples.jsonl"
    with open(samples, "w", encoding="utf-8") as f:
        for e in episodes:
            f.write(json.dumps({"doc_id": e["doc_id"], "id": e["id"], "target": e["doc"]["target"],
                                "response": e["transcript"]["final"], "reason": e["reason"], **e["metrics"]},
                               ensure_ascii=False) + "\n")
    results = out_dir / "results.json"
    results.write_text(json.dumps({"results": {task.lm_eval_name: {f"{k},none": v for k, v in metrics.items()}},
                                   "runner": "slmexp.tasks.agent.runner", "n-samples": len(episodes)}, indent=2))
    return samples, results


def _aggregate(episodes: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in METRICS:
        values = [e["metrics"][name] for e in episodes]
        out[name] = sum(values) / len(values) if values else math.nan
        out[f"{name}_stderr"] = _stderr(values)
    return out


def evaluate(runtime: Any, task: Task, eval_cfg: DictConfig, out_dir: Path, *, constraints: Any = None,
             **_unused: Any) -> EvalResult:
    """Run every episode of `eval_cfg.split` (the first `eval_cfg.limit`) on `runtime`, score and store them."""
    split = str(eval_cfg.split)
    rows = task.splits[split][: int(eval_cfg.limit)] if eval_cfg.get("limit") else task.splits[split]
    box, max_new = load(tools_source(task.cfg)), int(task.cfg.generation.max_new_tokens)
    offered_field = task.cfg.fields.get("tools")
    gold_field = task.cfg.fields.target
    episodes = []
    t0 = time.perf_counter()
    for i, row in enumerate(rows):
        doc = episode_doc(task, split, i, row)
        offered = list(row[offered_field]) if offered_field and row.get(offered_field) else None
        transcript = run_episode(runtime, box, row, doc["prompt"], offered=offered,
                                 max_steps=int(task.cfg.agent.max_steps), max_new_tokens=max_new,
                                 constraint=constraints.for_doc(doc) if constraints is not None else None)
        metrics, reason = judge(box, row, row[gold_field], offered, transcript)
        episodes.append({"doc_id": i, "id": doc["id"], "doc": doc, "transcript": transcript, "metrics": metrics,
                         "reason": reason})
    wall = time.perf_counter() - t0
    metrics = _aggregate(episodes)
    out_dir = Path(out_dir)
    samples, results = _write(out_dir, task, episodes, metrics)
    gen_path = generations.write(out_dir.parent / generations.GENERATIONS_NAME, _rows(task, episodes))
    speed = speed_block(episodes, max_new)
    accuracy_pass = {"latency_ms": speed["latency_ms"], "n": len(episodes), "concurrency": 1}
    return EvalResult(metrics, len(episodes), wall, samples, results, "agent/chat_template/0-shot",
                      generation={"until": [], "max_gen_toks": max_new, "chat_template": True, "prompt_suffix": ""},
                      accuracy_pass=accuracy_pass, generations_path=gen_path, speed=speed)


def _rows(task: Task, episodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-example store's rows (slmexp.generations' shape)."""
    return [{"id": e["id"], "doc_id": e["doc_id"], "task": task.lm_eval_name,
             "prompt_sha256": generations.prompt_sha256(e["doc"]["prompt"]),
             "raw": json.dumps(e["transcript"], ensure_ascii=False),
             "extracted": {"final": e["transcript"]["final"], "reason": e["reason"]},
             "metrics": e["metrics"], "doc": e["doc"]} for e in episodes]
