"""slmexp's llama.cpp runtime vs a bare llama-cpp-python loop: decode tokens/s on the same GGUF, in one run.

    python benchmarks/llamacpp_decode.py [--tokens 64] [--rounds 5]

Both sides load the SmolLM2-135M wheel's GGUF (Q4_1) with the same threads/context and llama.cpp's extra (AMX)
buffers off (they crash on this CPU either way), get the same chat-templated prompts, and decode greedily. The
bare side is `Llama.create_completion(stream=True)`, llama-cpp-python's own loop; slmexp's is
`LlamaCppRuntime.stream` (argmax over logits it reads itself, `logits_all=True` for scoring). Decode tokens/s =
(tokens - 1) / (last token time - first token time) per request; the rounds alternate A/B and the medians are
compared. Goal: ratio >= 0.9. Run it on an idle machine: a busy core slows llama.cpp far more than its share.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import compose, machine, resolved_default_model

PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a refrigerator works, step by step.",
    "List ten ideas for a weekend trip and say why each is fun.",
]


def bare_decode(llm, prompt: str, n: int) -> tuple[float, int]:
    stamps = []
    for _chunk in llm.create_completion(prompt, max_tokens=n, temperature=0.0, stream=True):
        stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan"), len(stamps)


def ours_decode(runtime, prompt: str, n: int) -> tuple[float, int]:
    stamps = [t for _c, t in runtime.stream(prompt, n)]
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan"), len(stamps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    import llama_cpp
    from transformers import AutoTokenizer

    from slmexp.runtimes.llamacpp import LlamaCppRuntime, _model_params
    from slmexp.system import available_cores

    cfg = compose([])
    model = resolved_default_model(cfg)
    gguf, threads = str(model.gguf_path), available_cores()
    tok = AutoTokenizer.from_pretrained(model.path)
    rendered = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                for p in PROMPTS]
    with _model_params(use_extra_bufts=False):
        bare = llama_cpp.Llama(model_path=gguf, n_ctx=2048, n_batch=512, n_threads=threads,
                               n_threads_batch=threads, verbose=False)
    ours = LlamaCppRuntime(str(model.path), artifact_path=gguf, n_threads=threads, n_ctx=2048, n_batch=512)
    bare_decode(bare, rendered[0], 8), ours_decode(ours, PROMPTS[0], 8)  # warm-up, not timed
    rates: dict[str, list[float]] = {"bare": [], "slmexp": []}
    for _ in range(args.rounds):
        for raw, prompt in zip(rendered, PROMPTS, strict=True):
            bare.reset()  # no prefix reuse between requests on either side
            rates["bare"].append(bare_decode(bare, raw, args.tokens)[0])
            rates["slmexp"].append(ours_decode(ours, prompt, args.tokens)[0])
    ours.close()
    bare.close()
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"machine: {machine()}; llama-cpp-python {llama_cpp.__version__}; {gguf.rsplit('/', 1)[-1]}; "
          f"{threads} threads; {args.rounds} rounds x {len(PROMPTS)} prompts x {args.tokens} tokens (1 warm-up each)")
    for k, v in rates.items():
        print(f"  {k:8s} decode tok/s: median {med[k]:.1f}  (min {min(v):.1f}, max {max(v):.1f}, n={len(v)})")
    ratio = med["slmexp"] / med["bare"]
    print(f"ratio slmexp / bare = {ratio:.3f}  (goal >= 0.9: {'met' if ratio >= 0.9 else 'NOT met'})")


if __name__ == "__main__":
    main()
