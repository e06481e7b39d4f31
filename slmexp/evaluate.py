"""Accuracy through lm-evaluation-harness: `simple_evaluate` on the runtime's LM with our local task YAMLs.

A TaskManager with `include_defaults=False` indexes only our per-run task dir (~0 s instead of ~11 s for lm-eval's
14k built-in tasks). Per-example results are kept (`samples.jsonl`): the report's statistics need them.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from slmexp.tasks import Task, write_lm_eval_task


@dataclass
class EvalResult:
    metrics: dict[str, float]
    n_examples: int
    wall_s: float
    samples_path: Path
    results_path: Path
    formulation: str


def _clean_metrics(task_results: dict[str, Any]) -> dict[str, float]:
    """lm-eval keys look like `exact_match,none`; keep `exact_match` and `exact_match_stderr`."""
    out = {}
    for key, value in task_results.items():
        if "," not in key or not isinstance(value, int | float):
            continue
        metric, _filter = key.split(",", 1)
        out[metric] = float(value)
    return out


def evaluate(lm: Any, task: Task, eval_cfg: DictConfig, out_dir: Path, use_chat_template: bool) -> EvalResult:
    """Run lm-eval on `task`'s `eval_cfg.split`; write results.json and samples.jsonl under out_dir."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    out_dir = Path(out_dir)
    split = str(eval_cfg.split)
    num_fewshot = int(eval_cfg.get("num_fewshot") or 0)
    splits = [split] + (["train"] if num_fewshot > 0 and "train" in task.splits else [])
    write_lm_eval_task(task, out_dir / "tasks", splits, use_chat_template)
    manager = TaskManager(include_path=str(out_dir / "tasks"), include_defaults=False)
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    results = simple_evaluate(
        model=lm,
        tasks=[task.lm_eval_name],
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
    )
    wall_s = time.perf_counter() - t0
    name = task.lm_eval_name
    metrics = _clean_metrics(results["results"][name])
    n = int(results.get("n-samples", {}).get(name, {}).get("effective", 0))
    samples_path = out_dir / "samples.jsonl"
    with open(samples_path, "w") as f:
        for s in results.get("samples", {}).get(name, []):
            resp = s.get("filtered_resps") or s.get("resps")
            while isinstance(resp, list) and resp:
                resp = resp[0]
            row = {
                "doc_id": s["doc_id"],
                "id": s["doc"].get("id"),
                "target": s["target"],
                "response": resp,
                **{m: s[m] for m in metrics if m in s},
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    results_path = out_dir / "results.json"
    summary = {k: v for k, v in results.items() if k != "samples"}
    results_path.write_text(json.dumps(summary, indent=2, default=str))
    formulation = f"generate_until/{'chat_template' if use_chat_template else 'plain'}/{num_fewshot}-shot"
    return EvalResult(metrics, n, wall_s, samples_path, results_path, formulation)
