"""The speed stage of `task.formulation=choice`: what is timed is what was scored, so a timed request scores every
label as the answer to one prompt (no text is generated).

One request is the router's label-scoring request (slmexp.label_scoring): the prompt rendered as the accuracy pass
renders it, each label's log-likelihood after it from the runtime's `score_labels` (on transformers the prompt
encoded once and the labels scored on its KV cache, as a deployment that picks a label would do it; lm-eval's
multiple-choice pass re-encodes the prompt per label, so its own wall time is not a per-request latency).
Latency = request start -> all labels scored (ms, time.perf_counter); the answer arrives whole, so TTFT equals
latency and there is no decode rate.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

NOTE = ("formulation=choice: one timed request = the log-likelihood of every task label after the prompt (no "
        "generation); ttft_ms = latency_ms, no decode rate")


def benchmark_choice(runtime: Any, task: Any, rows: list[dict[str, Any]], *, warmup: int,
                     ids: list[str] | None = None, measure: AbstractContextManager | None = None,
                     passes: int = 1, seed: int | None = None, max_pass_spread: float | None = None) -> dict[str, Any]:
    """Score `warmup` rows untimed (once), then `passes` passes of one timed label-scoring request per remaining row,
    each pass in its own seeded order (slmexp.timing_passes); the record's speed figures in the shape
    `slmexp.bench.benchmark` returns (the fields a generation has are left out)."""
    from slmexp.bench import _percentiles
    from slmexp.label_scoring import label_scorer
    from slmexp.timing_passes import passes_block, run_passes

    one = label_scorer(task, rows)
    for i in range(min(warmup, len(rows))):
        one(runtime, i)
    timed = list(range(warmup, len(rows))) if len(rows) > warmup else list(range(len(rows)))
    with measure or nullcontext():
        run = run_passes(lambda k: one(runtime, timed[k]), len(timed), passes, seed)
    results, wall = run.results, run.wall_s
    lat_ms = [r["latency_s"] * 1000 for r in results]
    ms = {k: round(v, 3) if v is not None else None for k, v in _percentiles(lat_ms).items()}
    out: dict[str, Any] = {
        "n_requests": len(results), "warmup_requests": min(warmup, len(rows)), "concurrency": 1,
        "formulation": "choice", "labels": len(task.labels), "chat_template": bool(runtime.uses_chat_template()),
        "ttft_ms": ms, "latency_ms": ms,
        "requests_per_s": round(len(results) / wall, 4) if wall else None, "wall_s": round(wall, 3),
        "usage": {"requests": len(results), "output_tokens": 0,
                  "input_tokens": int(sum(r["input_tokens"] for r in results)), "source": "model tokenizer"},
        "timing_note": NOTE,
        "passes": passes_block(run, latency_key="latency_s", ttft_key="latency_s", max_spread=max_pass_spread),
    }
    out["unstable"] = out["passes"]["unstable"]
    if ids is not None:
        out["requests"] = [{"id": str(ids[timed[r["index"]]]), "pass_number": r["pass_number"],
                            "latency_ms": round(r["latency_s"] * 1000, 3), "ttft_ms": round(r["latency_s"] * 1000, 3),
                            "output_tokens": 0} for r in results]
    return out
