"""The speed-up of arm A over arm B, timed side by side: alternating A/B pairs in one process (slmexp.paired_timing).

    python benchmarks/paired_speedup.py --a model=smollm2-135m runtime=llamacpp \\
        --b model=qwen2.5-coder-1.5b runtime=llamacpp [--common task=support-intent] [--n 10] [--passes 3]
        [--warmup 2] [--json out.json]

Each side is a list of slmexp overrides, composed as a job is (`--common` ones apply to both), and served as shipped
through its runtime (slmexp.teacher.load_model_runtime: no adapter, quantization none). A trained arm: point its
side at the merged checkpoint (`model.source.path=<run dir>/train/merged`), or at a server that serves it
(`runtime=openai runtime.base_url=...`; `python -m slmexp.serve` serves a GGUF). B is the baseline.

Prompts: the first `--warmup` + `--n` examples of side A's task and `eval.split`, rendered as the accuracy pass
renders them (each runtime applies its model's chat template); every request uses the task's stop strings
(`task.generation.until`) and token budget (`task.generation.max_new_tokens`). Unlike the speed stage, the budget
and stop strings come from the task config, not read back from an accuracy pass (none runs here), and a model
without a chat template gets no answer prefix appended. Both models stay loaded: mind the memory of two models.
Run it on an idle machine; the alternation cancels drift that hits both arms, not a neighbour that hits one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _common import compose, machine


def _runtime(cfg, key: str, work: Path):
    from slmexp.teacher import load_model_runtime, sub_config

    return load_model_runtime(sub_config(cfg, cfg.model, cfg.runtime), key, work / key)


def _prompts(cfg, count: int) -> list[str]:
    from slmexp.tasks import load_task, render_prompt

    split = str(cfg.eval.split)
    task = load_task(cfg.task, [split])
    return [render_prompt(task.cfg, row) for row in task.splits[split][:count]]


def _label(cfg) -> str:
    return f"{cfg.model.name} on {cfg.runtime.name}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", nargs="+", required=True, help="overrides of arm A")
    ap.add_argument("--b", nargs="+", required=True, help="overrides of arm B (the baseline)")
    ap.add_argument("--common", nargs="*", default=[], help="overrides of both arms (task, eval.split, paths)")
    ap.add_argument("--n", type=int, default=10, help="timed prompts per pass")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2, help="untimed requests per arm, once")
    ap.add_argument("--json", type=Path, help="write the whole result (every pair) here")
    args = ap.parse_args()

    from slmexp.paired_timing import alternate

    cfg_a, cfg_b = compose([*args.common, *args.a]), compose([*args.common, *args.b])
    if cfg_a.task.name != cfg_b.task.name:
        sys.exit(f"--a and --b name different tasks ({cfg_a.task.name}, {cfg_b.task.name}): set task= in --common")
    prompts = _prompts(cfg_a, args.warmup + args.n)
    gen = cfg_a.task.generation
    with tempfile.TemporaryDirectory() as work, _runtime(cfg_a, "a", Path(work)) as rt_a, \
            _runtime(cfg_b, "b", Path(work)) as rt_b:
        out = alternate(rt_a, rt_b, prompts, max_new_tokens=int(gen.max_new_tokens),
                        stop=[str(s) for s in gen.get("until") or []], passes=args.passes, warmup=args.warmup,
                        seed=int(cfg_a.seed))
    out.update(arm_a=_label(cfg_a), arm_b=_label(cfg_b), task=str(cfg_a.task.name), machine=machine())
    timed = len(prompts) - out["warmup_requests"]
    print(f"machine: {out['machine']}; task {out['task']}; {out['n_pairs']} pairs = {args.passes} passes x {timed} "
          f"prompts ({out['warmup_requests']} warm-up each), seed {out['seed']}")
    for side in ("a", "b"):
        lat = out[side]["latency_ms"]
        print(f"  {side.upper()} {out[f'arm_{side}']}: latency p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms")
    per_pass = ", ".join(f"{p['speedup']:.2f}" for p in out["per_pass"] if p["speedup"] is not None)
    over, pairs = out["over_passes"], out["over_pairs"]
    ci_passes = f"[{over['ci95_low']:.2f}, {over['ci95_high']:.2f}]" if over["ci95_low"] is not None else "n/a"
    print(f"speed-up A over B = {out['speedup']:.2f}x (median pair ratio; ratio of p50s {out['ratio_of_p50']:.2f}); "
          f"per pass {per_pass}; 95% CI over passes {ci_passes} ({over['method']}); "
          f"over pairs [{pairs['ci95_low']:.2f}, {pairs['ci95_high']:.2f}]")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
        print(f"written: {args.json}")


if __name__ == "__main__":
    main()
