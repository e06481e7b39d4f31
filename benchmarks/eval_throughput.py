"""Evaluation throughput of the transformers runtime: the accuracy pass as it ran before issue 16 (fp32, batch 8,
every row's whole prompt) against the shared prompt prefix (runtime.shared_prefix) and bf16 weights at batch 8 and
16, plus fp32 batch 1, on the same checkpoint and examples, in one run, with the accuracy of each and how many
answers changed against the first arm.

    python benchmarks/eval_throughput.py [--checkpoint DIR] [--limit 100] [--arms float32:8:noshare,float32:8]

An arm is dtype:batch[:noshare] (noshare: runtime.shared_prefix=false).

--checkpoint: a merged HF checkpoint (e.g. the demo's trained SmolLM2 + LoRA, `<cache>/trained/<key>/merged`);
default: SmolLM2-135M-Instruct (dequantized from the offline Q4_1 GGUF). Each arm is `slmexp.pipeline.run_job` with
`runtime.batch_size` and `model.dtype` set and the speed stage off; examples/s is the record's
`speed.eval_examples_per_s` (the lm-eval accuracy pass, model load excluded). Rounds: one per arm, in order; run it
with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from _common import compose, machine


def correct(run_dir: Path, metric: str) -> dict[str, float]:
    rows = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines() if x.strip()]
    return {str(r["doc_id"]): float(r[metric]) for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--arms", default="float32:8:noshare,float32:1,float32:8,bfloat16:8,bfloat16:16")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    from slmexp.pipeline import run_job

    arms = [(a.split(":")[0], int(a.split(":")[1]), a.endswith(":noshare")) for a in args.arms.split(",")]
    model = [f"model.source.path={args.checkpoint}"] if args.checkpoint else []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (dtype, batch, noshare) in enumerate(arms):
            run_dir = Path(tmp) / f"arm{i}"
            cfg = compose([*model, f"model.dtype={dtype}", f"runtime.batch_size={batch}", f"eval.limit={args.limit}",
                           "eval.bench.n=0", "eval.cache=false", f"paths.output_dir={tmp}/o",
                           f"runtime.shared_prefix={not noshare}"])
            rec = run_job(cfg, run_dir=run_dir)
            metric = rec["metrics"]["primary"]
            eval_dir = run_dir / Path(rec["metrics"]["samples"]).parent
            rows.append({"dtype": dtype + (" no-share" if noshare else ""), "batch": batch,
                         "ex_s": rec["speed"]["eval_examples_per_s"],
                         "acc": rec["metrics"]["values"][metric], "by_id": correct(eval_dir, metric),
                         "metric": metric})
            print(f"  {rows[-1]['dtype']:17s} batch {batch:2d}: {rows[-1]['ex_s']:6.2f} examples/s  {metric} "
                  f"{rows[-1]['acc']:.3f}", flush=True)
    ref = rows[0]
    print(f"machine: {machine()}; checkpoint {args.checkpoint or 'SmolLM2-135M-Instruct'}; support-intent test, "
          f"limit {args.limit}; transformers runtime, greedy")
    for r in rows[1:]:
        ids = sorted(set(ref["by_id"]) & set(r["by_id"]))
        diff = [r["by_id"][k] - ref["by_id"][k] for k in ids]
        flips = sum(1 for d in diff if d != 0)
        print(f"  {r['dtype']}:{r['batch']} vs {ref['dtype']}:{ref['batch']}: {r['ex_s'] / ref['ex_s']:.2f}x "
              f"examples/s; accuracy {r['acc'] - ref['acc']:+.3f} ({flips} of {len(ids)} examples changed)")


if __name__ == "__main__":
    main()
