"""slmexp's evaluation vs a bare `lm_eval.simple_evaluate` on the same model and task, in one run.

    python benchmarks/eval_overhead.py [--limit 60] [--rounds 2]

Bare: `HFLM(pretrained=<SmolLM2 checkpoint>)` + `simple_evaluate` on the task YAML slmexp writes, with the same
limit, batch size and chat template; timed from model load to results. slmexp: `run_job` on the same config
(validate, resolve, load, evaluate, record; the speed stage off, since bare lm-eval has none), timed whole.
Rounds alternate bare/slmexp; medians are compared. Goal: overhead <= 5%.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import compose, machine, resolved_default_model


def bare_run(model_dir: Path, task_dir: Path, task_name: str, limit: int, batch_size: int) -> tuple[float, float]:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    t0 = time.perf_counter()
    lm = HFLM(pretrained=str(model_dir), batch_size=batch_size, device="cpu", dtype="float32")
    res = simple_evaluate(model=lm, tasks=[task_name], task_manager=TaskManager(include_path=str(task_dir),
                          include_defaults=False), limit=limit, apply_chat_template=True, bootstrap_iters=1000,
                          log_samples=True)
    wall = time.perf_counter() - t0
    return wall, res["results"][task_name]["exact_match,none"]


def ours_run(overrides: list[str], run_dir: Path) -> tuple[float, float, Path]:
    from slmexp.pipeline import run_job

    cfg = compose(overrides)
    t0 = time.perf_counter()
    rec = run_job(cfg, run_dir=run_dir)
    wall = time.perf_counter() - t0
    return wall, rec["metrics"]["values"]["exact_match"], run_dir / "lm_eval" / "tasks"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    import logging

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"eval.limit={args.limit}", "eval.bench.n=0", f"paths.output_dir={tmp}/o"]
        cfg = compose(overrides)
        model = resolved_default_model(cfg)  # converted once, cached: both sides load the same checkpoint
        batch = int(cfg.runtime.batch_size)
        times: dict[str, list[float]] = {"bare": [], "slmexp": []}
        scores = {}
        for r in range(args.rounds + 1):  # round 0 warms caches (page cache, lm-eval imports) and is not counted
            wall, scores["slmexp"], task_dir = ours_run(overrides, Path(tmp) / f"run{r}")
            if r:
                times["slmexp"].append(wall)
            wall, scores["bare"] = bare_run(model.path, task_dir, "slmexp_support_intent", args.limit, batch)
            if r:
                times["bare"].append(wall)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"machine: {machine()}; SmolLM2-135M (transformers, float32, batch {batch}); support-intent test, "
          f"limit {args.limit}; {args.rounds} timed rounds after 1 warm-up round")
    for k, v in times.items():
        print(f"  {k:8s} wall s: median {med[k]:.2f}  {[round(x, 2) for x in v]}  exact_match {scores[k]:.3f}")
    overhead = med["slmexp"] / med["bare"] - 1
    print(f"overhead slmexp vs bare simple_evaluate = {100 * overhead:+.1f}%  (goal <= 5%: "
          f"{'met' if overhead <= 0.05 else 'NOT met'})")


if __name__ == "__main__":
    main()
