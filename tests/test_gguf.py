"""GGUF export (slmexp.quantize.gguf) and the llama.cpp runtime (slmexp.runtimes.llamacpp) against the HF model.

Reference and tolerances: the GGUF holds F16 weights, so the HF reference is the same model with its weights
rounded to fp16 (computed in fp32). What remains is llama.cpp's own arithmetic (activations rounded to F16 inside
its matmuls, another summation order). Measured on the tiny random llama (initializer_range 0.2, so large
weights): max |d log p| over every position and vocabulary entry 0.009-0.024 against that reference (0.02-0.05
against the unrounded fp32 model, of which F16 weight rounding alone is 0.02-0.06); on SmolLM2-135M 0.02-0.03
against fp32. LOGPROB_TOL = 0.05 per token and LOGLIK_TOL = 0.1 per summed continuation: about twice the
measured error, and far below what a wrong q/k permutation, norm offset or tokenizer gives (whole nats).
"""

from __future__ import annotations

import importlib.util
import math
import shutil
from pathlib import Path

import pytest

from slmexp.errors import ConfigError, SlmexpError
from slmexp.gguf_file import check_gguf
from slmexp.quantize.gguf import GGUF_TYPES, export_gguf, requantize
from tests.conftest import build_tiny_model, compose

# Export and file checks need only gguf-py; loading, quantizing and serving need the optional llama-cpp-python.
needs_llama_cpp = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                     reason='llama-cpp-python is an optional extra: pip install -e ".[gguf]"')

LOGPROB_TOL = 0.05  # per-token |d log p|: llama.cpp on the F16 GGUF vs HF on the same fp16-rounded weights
LOGLIK_TOL = 0.1  # summed continuation log-likelihood
# One thread: llama.cpp's OpenMP workers spin-wait, and with every core requested a single busy core elsewhere
# (another test process, a training job) slows it ~50x; one thread keeps the suite's time predictable.
THREADS = 1

PROMPTS = [
    "Where is my order? It was due on Monday.",
    "I want to cancel my subscription",
    "  two  spaces, digits 12345 and punctuation!?",
    "Intent: order_status",
    "return_item please\n\nthanks",
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    # hidden 128 / 4 heads: head_dim 32, a whole number of llama.cpp's 32-wide quant blocks in every row.
    return build_tiny_model(tmp_path_factory.mktemp("gguf") / "tiny-llama", hidden=128)


@pytest.fixture(scope="module")
def tiny_f16(tiny_dir, tmp_path_factory) -> Path:
    artifact = export_gguf(tiny_dir, tmp_path_factory.mktemp("gguf-out"), "f16")
    assert artifact.path == artifact.f16_path and artifact.path.name == "model-f16.gguf"
    return artifact.path


@pytest.fixture(scope="module")
def hf(tiny_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    with torch.no_grad():  # the exact values the F16 GGUF holds (matrices F16, norms F32); arithmetic stays fp32
        for param in model.parameters():
            if param.ndim > 1:
                param.copy_(param.half().float())
    return model, AutoTokenizer.from_pretrained(tiny_dir)


@pytest.fixture(scope="module")
def runtime(tiny_dir, tiny_f16):
    from slmexp.runtimes.llamacpp import LlamaCppRuntime

    with LlamaCppRuntime(str(tiny_dir), artifact_path=str(tiny_f16), n_ctx=512, n_threads=THREADS) as rt:
        yield rt


def hf_logprobs(model, ids: list[int]):
    import torch

    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1).numpy()


@needs_llama_cpp
def test_f16_logits_match_hf(hf, runtime) -> None:
    import numpy as np

    model, tok = hf
    lm = runtime.lm_eval_model()
    for prompt in PROMPTS:
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        assert lm.tok_encode(prompt, add_special_tokens=False) == ids, f"tokenization differs on {prompt!r}"
        logits = np.asarray(lm._logits_for(ids), dtype=np.float64)
        ours = logits - logits.max(-1, keepdims=True)
        ours -= np.log(np.exp(ours).sum(-1, keepdims=True))
        diff = np.abs(ours - hf_logprobs(model, ids)).max()
        assert diff < LOGPROB_TOL, f"{prompt!r}: max |d log p| {diff:.4f}"


@needs_llama_cpp
def test_loglikelihood_matches_hf(hf, runtime) -> None:
    from lm_eval.api.instance import Instance

    model, tok = hf
    pairs = [("Where is my order?", " Intent: order_status"), ("I want to cancel", " my subscription"),
             ("Intent:", " return_item"), ("Where is my order?", " Intent: cancel_order")]
    requests = [Instance("loglikelihood", doc={}, arguments=pair, idx=i) for i, pair in enumerate(pairs)]
    results = runtime.lm_eval_model().loglikelihood(requests, disable_tqdm=True)
    for (context, continuation), (loglik, _greedy) in zip(pairs, results, strict=True):
        whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
        n_ctx = len(tok(context, add_special_tokens=False)["input_ids"])
        lp = hf_logprobs(model, whole)
        expected = sum(lp[i - 1, whole[i]] for i in range(n_ctx, len(whole)))
        assert math.isclose(loglik, expected, abs_tol=LOGLIK_TOL), (context, continuation, loglik, expected)


@needs_llama_cpp
def test_prefix_cache_reuse_gives_the_same_logits(runtime) -> None:
    import numpy as np

    lm = runtime.lm_eval_model()
    ids = lm.tok_encode("Where is my order? It was due on Monday.")
    lm.clear_cache()
    fresh = np.array(lm._logits_for(ids))
    list(lm.greedy_tokens(ids[:5], 4))  # leaves a shorter cache whose logits rows were not stored
    np.testing.assert_allclose(lm._logits_for(ids), fresh, atol=1e-3)
    np.testing.assert_allclose(lm._last_logits(ids[:7]), fresh[6], atol=1e-3)
    np.testing.assert_allclose(lm._last_logits(ids[:3]), fresh[2], atol=1e-3)


@needs_llama_cpp
def test_generate_until_honours_stop_strings_and_budget(runtime) -> None:
    from lm_eval.api.instance import Instance

    lm = runtime.lm_eval_model()

    def generate(until: list[str], max_gen_toks: int) -> str:
        req = Instance("generate_until", doc={}, arguments=("Where is my order?", {"until": until,
                                                                                 "max_gen_toks": max_gen_toks}), idx=0)
        return lm.generate_until([req], disable_tqdm=True)[0]

    generated = list(lm.greedy_tokens(lm.tok_encode("Where is my order?"), 8))
    assert 0 < len(generated) <= 8
    free = generate([], 8)
    assert free == lm.tok_decode(generated)
    stop = free.strip()[1:3]
    assert stop, f"need some generated text to pick a stop string from, got {free!r}"
    assert generate([stop], 8) == free.split(stop)[0]
    assert "".join(chunk for chunk, _t in runtime.stream("Where is my order?", 8))


@needs_llama_cpp
def test_timed_stream_ends_where_the_accuracy_pass_ends(runtime) -> None:
    """The speed stage's request is the scored one: the stream (chat-rendered as lm-eval renders the accuracy
    pass's context) stops at the same text and token as generate_until with the same stop string; each
    generate_until request is timed (speed.accuracy_pass); usage is this request's even when abandoned."""
    from lm_eval.api.instance import Instance

    lm = runtime.lm_eval_model()
    prompt = "Where is my order?"
    context = lm.apply_chat_template([{"role": "user", "content": prompt}])
    free = "".join(chunk for chunk, _t in runtime.stream(prompt, 12))
    n_free = runtime.last_usage["output_tokens"]
    stop = next((free[i:i + 2] for i in range(2, len(free) - 1)
                 if free[i:i + 2].isascii() and free[i:i + 2].isprintable() and free[i:i + 2].strip()), None)
    assert stop, f"need generated text to pick a stop string from, got {free!r}"
    lm.request_latencies_s.clear()
    req = Instance("generate_until", doc={}, arguments=(context, {"until": [stop], "max_gen_toks": 12}), idx=0)
    scored = lm.generate_until([req], disable_tqdm=True)[0]
    assert len(lm.request_latencies_s) == 1 and lm.request_latencies_s[0] > 0
    timed = "".join(chunk for chunk, _t in runtime.stream(prompt, 12, stop=[stop]))
    assert timed == scored == free.split(stop)[0]
    assert runtime.last_usage["output_tokens"] < n_free  # decoding ended at the stop string
    for _chunk, _t in runtime.stream("cancel", 12):
        break
    cancel = lm.tok_encode(lm.apply_chat_template([{"role": "user", "content": "cancel"}]))
    assert runtime.last_usage["input_tokens"] == len(cancel) and 1 <= runtime.last_usage["output_tokens"] < 12


@needs_llama_cpp
def test_chat_template_matches_hf_and_lm_eval_runs(hf, runtime, tmp_path) -> None:
    from slmexp.evaluate import evaluate
    from slmexp.tasks import load_task

    _model, tok = hf
    chat = [{"role": "user", "content": "Where is my order?"}]
    lm = runtime.lm_eval_model()
    assert lm.apply_chat_template(chat) == tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    cfg = compose(["eval.limit=3", "eval.bootstrap_iters=0", "task.generation.max_new_tokens=4"])
    task = load_task(cfg.task, ["test"])
    result = evaluate(lm, task, cfg.eval, tmp_path, use_chat_template=runtime.uses_chat_template())
    assert result.n_examples == 3 and "exact_match" in result.metrics


@needs_llama_cpp
@pytest.mark.parametrize("gguf_type", [t for t in GGUF_TYPES if t != "f16"])
def test_every_gguf_type_quantizes_and_loads(tiny_f16, tiny_dir, tmp_path, gguf_type) -> None:
    import llama_cpp
    from lm_eval.api.instance import Instance

    from slmexp.runtimes.llamacpp import LlamaCppRuntime

    assert hasattr(llama_cpp, GGUF_TYPES[gguf_type])
    out = requantize(tiny_f16, tmp_path / f"model-{gguf_type}.gguf", gguf_type)
    check_gguf(out)
    assert out.stat().st_size < tiny_f16.stat().st_size
    with LlamaCppRuntime(str(tiny_dir), artifact_path=str(out), n_ctx=128, n_threads=THREADS) as rt:
        req = Instance("loglikelihood_rolling", doc={}, arguments=("Where is my order?",), idx=0)
        assert rt.lm_eval_model().loglikelihood_rolling([req], disable_tqdm=True)[0] < 0


def test_unknown_gguf_type_lists_valid_ones(tiny_dir, tmp_path) -> None:
    with pytest.raises(ConfigError) as err:
        export_gguf(tiny_dir, tmp_path / "out", "q4_k_xl")
    assert err.value.key == "quantization.gguf_type"
    assert "'q4_k_xl'" in str(err.value) and "valid: f16, q8_0" in str(err.value) and "q4_k_m" in str(err.value)
    assert not (tmp_path / "out").exists(), "nothing should be written for a bad type"


def test_truncated_or_foreign_gguf_gives_clear_error(tiny_dir, tiny_f16, tmp_path) -> None:
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny_f16.read_bytes()[: tiny_f16.stat().st_size // 2])
    with pytest.raises(SlmexpError, match=r"truncated\.gguf: .*truncated"):
        check_gguf(truncated)
    if importlib.util.find_spec("llama_cpp"):  # the runtime checks the file before llama.cpp sees it
        from slmexp.runtimes.llamacpp import LlamaCppRuntime

        with pytest.raises(SlmexpError, match=r"truncated\.gguf"):
            LlamaCppRuntime(str(tiny_dir), artifact_path=str(truncated))
    header_only = tmp_path / "header.gguf"
    header_only.write_bytes(tiny_f16.read_bytes()[:200])
    with pytest.raises(SlmexpError, match=r"header\.gguf"):
        check_gguf(header_only)
    foreign = tmp_path / "model.safetensors.gguf"
    shutil.copy(tiny_dir / "model.safetensors", foreign)
    with pytest.raises(SlmexpError, match=r"is not a GGUF file"):
        check_gguf(foreign)


def test_tensor_table_matches_gguf_reader(tiny_f16) -> None:
    import gguf

    from slmexp.gguf_file import read_tensor_table, tensor_types

    ref = [(t.name, int(t.tensor_type), int(t.data_offset), int(t.n_bytes)) for t in gguf.GGUFReader(tiny_f16).tensors]
    assert read_tensor_table(tiny_f16) == ref
    assert tensor_types(tiny_f16) == {"F16": 15, "F32": 5}  # 2 layers x (7 matrices | 2 norms) + embedding | norm


def test_unsupported_architecture_is_refused(tiny_dir, tmp_path) -> None:
    import json

    fake = tmp_path / "fake"
    shutil.copytree(tiny_dir, fake)
    config = json.loads((fake / "config.json").read_text())
    (fake / "config.json").write_text(json.dumps({**config, "model_type": "phi3"}))
    with pytest.raises(SlmexpError, match=r"'phi3'.*supported: llama, qwen2, gemma3"):
        export_gguf(fake, tmp_path / "out", "f16")


@pytest.mark.slow
@needs_llama_cpp
def test_smollm2_f16_greedy_equals_hf_and_quantized_files_are_smaller(tmp_path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from slmexp import models
    from slmexp.runtimes.llamacpp import LlamaCppRuntime

    cfg = compose([])
    hf_dir = models.resolve(cfg.model, cfg.paths.cache_dir).path
    f16 = export_gguf(hf_dir, tmp_path, "f16")
    sizes = {"f16": f16.bytes}
    for gguf_type in ("q8_0", "q4_k_m", "q4_0"):
        sizes[gguf_type] = requantize(f16.path, tmp_path / f"model-{gguf_type}.gguf", gguf_type).stat().st_size
    assert sizes["q4_k_m"] < sizes["q8_0"] < sizes["f16"] and sizes["q4_0"] < sizes["q8_0"], sizes

    tok = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    prompts = [
        "What is the capital of France?", "Name three colors.", "What is 2+2?", "Say hello in Spanish.",
        "Where is my order?", "I want a refund.", "How do I reset my password?", "What is a cat?",
        "Write a haiku about rain.", "List two fruits.", "Who wrote Hamlet?", "What day comes after Monday?",
        "Translate 'thank you' to French.", "Give me a synonym for happy.", "What is the boiling point of water?",
        "Cancel my subscription please.", "What is Python?", "Tell me a fun fact.", "How many legs does a spider "
        "have?", "What color is the sky?", "Spell the word 'apple'.", "What is the opposite of hot?",
    ]
    mismatches = []
    with LlamaCppRuntime(str(hf_dir), artifact_path=str(f16.path), n_threads=THREADS) as rt:
        for prompt in prompts:
            ours = "".join(chunk for chunk, _t in rt.stream(prompt, 16))
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                           add_generation_prompt=True)
            ids = tok(text, return_tensors="pt", add_special_tokens=False)
            with torch.no_grad():
                out = model.generate(**ids, max_new_tokens=16, do_sample=False)
            theirs = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
            if ours != theirs:
                mismatches.append((prompt, ours, theirs))
    assert len(prompts) >= 20 and not mismatches, mismatches
