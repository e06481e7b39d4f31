"""llama.cpp's settings on this machine, for the demo's SLM and LLM GGUFs: prompt and generation tokens/s, and the
time to the first token of a streamed chat completion, per setting (what llama-bench varies, through
llama-cpp-python, the engine slmexp's llamacpp runtime drives).

    python benchmarks/llamacpp_settings.py [--gguf PATH ...] [--repeats 3] [--json out.json]

Without --gguf: the SmolLM2-135M wheel's GGUF (Q4_1) and the Qwen2.5-Coder-1.5B wheels' (Q4_K_M), resolved offline.
Each setting runs in its own process (a setting that crashes llama.cpp, e.g. the AMX/repacked weight buffers on an
AMX Xeon, llama.cpp #20824, is reported as crashed and the sweep goes on). Per setting and repeat: a fresh KV cache,
then (1) `create_chat_completion(stream=True)` on the demo's first support-intent test prompt (~280 tokens through
the model's chat template): wall time to the first content chunk (TTFT) and llama.cpp's own prompt-evaluation
counters (`llama_perf_context`: tokens and ms), (2) up to 64 generated tokens of an open chat prompt: llama.cpp's
decode counters. Medians over repeats. Run it alone: a busy core slows llama.cpp far more than its share.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time

from _common import compose, machine

OPEN_PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
GEN_TOKENS = 64


def settings() -> list[dict]:
    """The grid: threads x micro-batch x flash attention at mmap on and extra buffers off, then mmap off and extra
    buffers on at the runtime's defaults (llama-cpp-python's own default threads = half the cores)."""
    from slmexp.system import available_cores

    cores = available_cores()
    grid = [{"n_threads": t, "n_batch": 512, "n_ubatch": u, "flash_attn": fa, "use_mmap": True, "extra_bufts": False}
            for t, u, fa in itertools.product(sorted({1, cores}), (128, 512), (False, True))]
    base = {"n_threads": cores, "n_batch": 512, "n_ubatch": 512, "flash_attn": False}
    return [*grid, {**base, "use_mmap": False, "extra_bufts": False}, {**base, "use_mmap": True, "extra_bufts": True}]


def demo_prompt() -> str:
    """The demo's first support-intent test prompt, as the accuracy pass renders the user turn."""
    from slmexp.tasks import load_task, render_prompt

    task = load_task(compose([]).task, ["test"])
    return render_prompt(task.cfg, task.splits["test"][0])


def measure_one(gguf: str, setting: dict, prompt: str, repeats: int) -> dict:
    """One setting, in this process: medians of TTFT, prompt tokens/s and generation tokens/s."""
    import llama_cpp

    from slmexp.runtimes.llamacpp import _model_params

    with _model_params(use_extra_bufts=setting["extra_bufts"]):
        llm = llama_cpp.Llama(model_path=gguf, n_ctx=2048, n_batch=setting["n_batch"], n_ubatch=setting["n_ubatch"],
                              n_threads=setting["n_threads"], n_threads_batch=setting["n_threads"],
                              flash_attn=setting["flash_attn"], use_mmap=setting["use_mmap"], verbose=False)
    ttft, prompt_tps, gen_tps, n_prompt = [], [], [], 0
    for _ in range(repeats + 1):  # the first round warms caches and is dropped
        llm.reset()
        llama_cpp.llama_perf_context_reset(llm.ctx)
        t0, first = time.perf_counter(), None
        for chunk in llm.create_chat_completion([{"role": "user", "content": prompt}], max_tokens=16,
                                                temperature=0.0, stream=True):
            if first is None and chunk["choices"][0]["delta"].get("content"):
                first = time.perf_counter() - t0
        perf = llama_cpp.llama_perf_context(llm.ctx)
        n_prompt = perf.n_p_eval
        ttft.append(first or float("nan"))
        prompt_tps.append(perf.n_p_eval / (perf.t_p_eval_ms / 1000) if perf.t_p_eval_ms else float("nan"))
        llm.reset()
        llama_cpp.llama_perf_context_reset(llm.ctx)
        llm.create_chat_completion([{"role": "user", "content": OPEN_PROMPT}], max_tokens=GEN_TOKENS, temperature=0.0)
        perf = llama_cpp.llama_perf_context(llm.ctx)
        gen_tps.append(perf.n_eval / (perf.t_eval_ms / 1000) if perf.t_eval_ms else float("nan"))
    return {"ttft_ms": round(1000 * statistics.median(ttft[1:]), 1), "prompt_tokens": n_prompt,
            "prompt_tok_s": round(statistics.median(prompt_tps[1:]), 1),
            "gen_tok_s": round(statistics.median(gen_tps[1:]), 1)}


def run_setting(gguf: str, setting: dict, prompt: str, repeats: int) -> dict:
    """measure_one in a child process; a crash (signal) or error becomes the row's `error`."""
    arg = json.dumps({"gguf": gguf, "setting": setting, "prompt": prompt, "repeats": repeats})
    done = subprocess.run([sys.executable, __file__, "--one", arg], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        why = f"signal {-done.returncode}" if done.returncode < 0 else (done.stderr.strip().splitlines() or ["?"])[-1]
        return {**setting, "error": why}
    return {**setting, **json.loads(done.stdout.strip().splitlines()[-1])}


def default_ggufs() -> list[str]:
    from slmexp import models

    out = []
    for name in ("smollm2-135m", "qwen2.5-coder-1.5b"):
        cfg = compose([f"model={name}"])
        out.append(str(models.resolve(cfg.model, cfg.paths.cache_dir, weights=False).gguf_path))
    return out


def _row(r: dict) -> str:
    knobs = (f"{r['n_threads']} | {r['n_ubatch']} | {'on' if r['flash_attn'] else 'off'} | "
             f"{'on' if r['use_mmap'] else 'off'} | {'on' if r['extra_bufts'] else 'off'}")
    if "error" in r:
        return f"| {knobs} | crashed: {r['error']} | | |"
    return f"| {knobs} | {r['ttft_ms']} | {r['prompt_tok_s']} | {r['gen_tok_s']} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", nargs="*", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child: one setting
    args = ap.parse_args()
    if args.one:
        one = json.loads(args.one)
        print(json.dumps(measure_one(one["gguf"], one["setting"], one["prompt"], one["repeats"])))
        return
    prompt, results = demo_prompt(), {}
    print(f"machine: {machine()}; {args.repeats} repeats per setting after one warm-up, medians")
    for gguf in args.gguf or default_ggufs():
        rows = [run_setting(gguf, s, prompt, args.repeats) for s in settings()]
        results[gguf] = rows
        n_prompt = next((r["prompt_tokens"] for r in rows if "prompt_tokens" in r), "?")
        print(f"\n{gguf} (demo prompt: {n_prompt} tokens through the chat template)\n")
        print("| threads | n_ubatch | flash attn | mmap | extra bufts | TTFT (ms) | prompt tok/s | gen tok/s |")
        print("|---:|---:|---|---|---|---:|---:|---:|")
        for r in rows:
            print(_row(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
