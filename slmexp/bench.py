"""Speed and memory: stream N task prompts through the runtime and time every output token.

What is timed is what was scored: the timed requests use the accuracy pass's generation settings (`generation`,
read back from lm-eval by slmexp.evaluate): its stop strings (`speed.stop`), its max_gen_toks (`speed.max_new_tokens`,
`speed.max_new_tokens_from` says where the value came from), its chat template (the runtime renders the prompt as the
accuracy pass did) and the text it appended to each user turn for a model without a chat template. Every runtime
serves a timed request cold (no prefix cached by the accuracy pass or an earlier request), and a request ends
where the scored one ended: at EOS, at the token budget, or at the first stop string.

Repeated passes (eval.bench.passes, slmexp.timing_passes): the warm-up runs once, then every timed prompt is sent
once per pass, each pass in its own order shuffled with the job's seed; the figures below pool every pass, and
`passes` keeps each pass's p50/p95, the t-interval over passes and their spread (`unstable` above
eval.bench.max_pass_spread).

Figures (all from `time.perf_counter`, warm-up requests excluded and counted separately):
- ttft_ms: request start -> first output token (prefill + first decode step);
- tpot_ms: mean time per output token after the first, per request ((e2e - ttft) / (n - 1));
- latency_ms: request start -> last token (end to end; the token that completed a stop string included);
- decode_tokens_per_s: (n - 1) / (e2e - ttft) per request, requests with >= 2 output tokens only;
- requests_per_s: measured requests / their total wall time (every pass), one request at a time (concurrency 1);
- at `concurrency` > 1 (runtimes that can serve requests in parallel: servers), the same prompts are sent again
  from that many threads and the aggregate requests/s and output tokens/s go in `concurrent`.
Percentiles are over requests; medians (p50), not means, since a few slow requests skew a mean.
Token counts come from the runtime's `last_usage` (the model's own tokenizer, or the server's usage field) and
fall back to the number of streamed chunks; `usage.source` says which. The per-request latency of the accuracy
pass itself (`speed.accuracy_pass`) comes from slmexp.evaluate, where the runtime's LM timed its requests.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, closing, nullcontext
from typing import Any

import numpy as np

from slmexp.runtimes import capabilities, last_usage


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None}
    arr = np.asarray(values, dtype=float)
    return {"p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95))}


def time_request(runtime: Any, prompt: str, max_new_tokens: int, stop: Sequence[str] | None = None) -> dict[str, Any]:
    """Time one streamed request; token counts from the runtime's usage report, else one token per chunk."""
    t0 = time.perf_counter()
    with closing(runtime.stream(prompt, max_new_tokens, stop=stop)) as chunks:
        stamps = [t for _chunk, t in chunks]
    end = time.perf_counter()
    usage = last_usage(runtime)
    n = int(usage.get("output_tokens") or len(stamps))
    ttft = (stamps[0] - t0) if stamps else end - t0
    e2e = (stamps[-1] - t0) if stamps else end - t0
    out = {"ttft_s": ttft, "e2e_s": e2e, "n_tokens": n, "input_tokens": usage.get("input_tokens"),
           "cached_input_tokens": usage.get("cached_input_tokens"), "token_source": usage.get("source", "chunks")}
    if n >= 2 and e2e > ttft:
        out["tpot_s"] = (e2e - ttft) / (n - 1)
    return out


def timed_settings(max_new_tokens: int, generation: Mapping[str, Any] | None) -> dict[str, Any]:
    """The timed requests' settings: the accuracy pass's (`generation`, from slmexp.evaluate) where it generated.

    `max_new_tokens` (eval.bench.max_new_tokens) is used only when the accuracy pass generated nothing (a
    log-likelihood task) or its settings were not passed; a different configured value is named in
    `max_new_tokens_from`, since timing another budget than the scored one would misstate the speed.
    """
    gen = dict(generation or {})
    scored = gen.get("max_gen_toks")
    if scored:
        source = "accuracy pass (lm-eval max_gen_toks)"
        if int(scored) != int(max_new_tokens):
            source += f"; eval.bench.max_new_tokens={int(max_new_tokens)} not used"
    else:
        source = "eval.bench.max_new_tokens" + ("" if generation else " (no accuracy-pass generation settings)")
    return {"max_new_tokens": int(scored or max_new_tokens), "stop": [str(s) for s in gen.get("until") or []],
            "max_new_tokens_from": source, "prompt_suffix": str(gen.get("prompt_suffix") or "")}


def _concurrent(runtime: Any, prompts: list[str], max_new_tokens: int, concurrency: int,
                stop: Sequence[str] | None = None) -> dict[str, Any]:
    """Aggregate throughput with `concurrency` requests in flight (threads; the runtime must be thread-safe)."""
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda p: time_request(runtime, p, max_new_tokens, stop), prompts))
    wall = time.perf_counter() - t0
    return {"concurrency": concurrency, "n_requests": len(results), "wall_s": round(wall, 3),
            # a server that drops or cuts off parallel requests shows here, not as a speed-up
            "empty_responses": sum(1 for r in results if r["n_tokens"] == 0),
            "requests_per_s": round(len(results) / wall, 4),
            "output_tokens_per_s": round(sum(r["n_tokens"] for r in results) / wall, 3),
            "latency_ms": {k: round(v * 1000, 3) if v is not None else None
                           for k, v in _percentiles([r["e2e_s"] for r in results]).items()}}


def _warm_up(runtime: Any, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str] | None) -> None:
    """Untimed requests, once, before pass 1: model load, caches and threads are settled before anything is timed."""
    for prompt in prompts:
        with closing(runtime.stream(prompt, max_new_tokens, stop=stop)) as chunks:
            for _ in chunks:
                pass


def _figures(runtime: Any, results: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    """The pooled figures of the timed requests (every pass): percentiles over requests, totals over their wall."""
    tpots = [r["tpot_s"] for r in results if "tpot_s" in r]

    def ms(values: list[float]) -> dict[str, float | None]:
        return {k: round(v * 1000, 3) if v is not None else None for k, v in _percentiles(values).items()}

    in_tokens = [r["input_tokens"] for r in results]
    out = {
        "n_requests": len(results),
        "chat_template": bool(runtime.uses_chat_template()),
        "concurrency": 1,
        "ttft_ms": ms([r["ttft_s"] for r in results]),
        "latency_ms": ms([r["e2e_s"] for r in results]),
        "tpot_ms": ms(tpots),
        "decode_tokens_per_s": {k: round(v, 3) if v is not None else None
                                for k, v in _percentiles([1.0 / t for t in tpots if t > 0]).items()},
        "output_tokens": {"total": int(sum(r["n_tokens"] for r in results)),
                          **_percentiles([r["n_tokens"] for r in results])},
        "requests_per_s": round(len(results) / wall, 4) if wall else None,
        "output_tokens_per_s": round(sum(r["n_tokens"] for r in results) / wall, 3) if wall else None,
        "wall_s": round(wall, 3),
        "usage": {"requests": len(results), "output_tokens": int(sum(r["n_tokens"] for r in results)),
                  "input_tokens": int(sum(in_tokens)) if None not in in_tokens else None,
                  "source": results[0]["token_source"] if results else None},
    }
    cached = [r["cached_input_tokens"] for r in results]
    if results and None not in cached:  # the engine or server reports prefix-cache hits: a cold run shows 0
        out["usage"]["cached_input_tokens"] = int(sum(cached))
    return out


def benchmark(runtime: Any, prompts: list[str], *, max_new_tokens: int, warmup: int,
              concurrency: int = 1, measure: AbstractContextManager | None = None,
              generation: Mapping[str, Any] | None = None, ids: Sequence[str] | None = None,
              passes: int = 1, seed: int | None = None, max_pass_spread: float | None = None) -> dict[str, Any]:
    """Run `warmup` untimed requests once, then `passes` passes of one timed request per prompt; return the record's
    speed figures.

    `prompts` are the task's user turns; `generation` is the accuracy pass's settings (`EvalResult.generation`):
    every request, warm-up and concurrent ones included, uses its stop strings, token budget and prompt suffix
    (see `timed_settings`). Each pass times the prompts after the warm-up ones in its own order, shuffled with
    `seed` (None: the given order; slmexp.timing_passes); the headline percentiles pool every pass, `passes` holds
    each pass's and their spread (`unstable` above `max_pass_spread`). `measure` (e.g. an energy tracker) wraps
    exactly the timed passes: not the warm-up, not the concurrent pass, so its figures divide by `n_requests`.
    `ids` (the prompts' example ids, as in samples.jsonl) adds `requests`: one {"id", "pass_number", "latency_ms",
    "ttft_ms", "output_tokens"} per timed request, which the report pairs across runs by id (speed-up and
    cost-ratio CIs; an id's passes are pooled there).
    """
    from rich.progress import Progress

    from slmexp.timing_passes import passes_block, run_passes

    settings = timed_settings(max_new_tokens, generation)
    max_new_tokens, stop = settings["max_new_tokens"], settings["stop"]
    prompts = [p + settings["prompt_suffix"] for p in prompts]
    _warm_up(runtime, prompts[:warmup], max_new_tokens, stop)
    timed = prompts[warmup:] if len(prompts) > warmup else prompts
    timed_ids = None if ids is None else list(ids)[warmup:] if len(prompts) > warmup else list(ids)
    with measure or nullcontext(), Progress(transient=True) as progress:
        bar = progress.add_task(f"benchmark ({runtime.name}, {passes} passes)", total=len(timed) * passes)

        def one(i: int) -> dict[str, Any]:
            out = time_request(runtime, timed[i], max_new_tokens, stop)
            progress.advance(bar)
            return out

        run = run_passes(one, len(timed), passes, seed)
    results = run.results
    out = {"n_requests": len(results), "warmup_requests": min(warmup, len(prompts)), "max_new_tokens": max_new_tokens,
           "max_new_tokens_from": settings["max_new_tokens_from"], "stop": stop,
           **_figures(runtime, results, run.wall_s)}
    out["passes"] = passes_block(run, latency_key="e2e_s", ttft_key="ttft_s", max_spread=max_pass_spread)
    out["unstable"] = out["passes"]["unstable"]
    if timed_ids is not None:
        out["requests"] = [{"id": str(timed_ids[r["index"]]), "pass_number": r["pass_number"],
                            "latency_ms": round(r["e2e_s"] * 1000, 3), "ttft_ms": round(r["ttft_s"] * 1000, 3),
                            "output_tokens": r["n_tokens"]} for r in results]
    if settings["prompt_suffix"]:
        out["prompt_suffix"] = settings["prompt_suffix"]
    if concurrency > 1 and capabilities(runtime).concurrent_requests:
        out["concurrent"] = _concurrent(runtime, timed, max_new_tokens, concurrency, stop)
    return out
