"""ONNX export (slmexp.quantize.onnx) and the ONNX Runtime GenAI runtime (slmexp.runtimes.ortgenai) against the HF
model and lm-eval's own HFLM, on the tiny random llama; the real SmolLM2 in the slow test.

Reference and tolerances: the fp32 export holds the HF weights unchanged, so what remains is ONNX Runtime's own
arithmetic (fused attention, another summation order): measured max |d log p| over every position and vocabulary
entry 5e-6 to 7e-6 on the tiny llama and 5e-5 to 6e-5 on SmolLM2-135M. LOGPROB_TOL = 1e-3 per token is far below
what a wrong rotary layout, norm or tokenizer gives (whole nats), and greedy outputs must be equal.
int4 (round-to-nearest, blocks of 32) changes the model: on random weights with initializer_range 0.2 it moves
log-probabilities by whole nats, so on the tiny model it is only checked to quantize and to score consistently;
SmolLM2 (trained weights) bounds its drift from the HF model in the slow test.
"""

from __future__ import annotations

import importlib.util
import math
import time
from pathlib import Path

import pytest

from slmexp.errors import ConfigError
from tests.conftest import compose

pytestmark = pytest.mark.skipif(importlib.util.find_spec("onnxruntime_genai") is None
                                or importlib.util.find_spec("onnx_ir") is None,
                                reason="onnxruntime-genai and onnx-ir are the optional `ortgenai` extra")

LOGPROB_TOL = 1e-3  # per-token |d log p|: ORT GenAI on the fp32 export vs HF fp32
LOGLIK_TOL = 2e-3  # summed continuation log-likelihood
THREADS = 1  # one ONNX Runtime thread: predictable on a 2-core machine shared with other test processes

PROMPTS = [
    "Where is my order? It was due on Monday.",
    "I want to cancel my subscription",
    "  two  spaces, digits 12345 and punctuation!?",
    "<|im_start|>user\nIntent: order_status<|im_end|>\n<|im_start|>assistant\n",
    "return_item please\n\nthanks",
]
PAIRS = [("Where is my order?", " Intent: order_status"), ("I want to cancel", " my subscription"),
         ("Intent:", " return_item"), ("Where is my order?", " Intent: cancel_order"), ("", "order_status")]


@pytest.fixture(scope="module")
def tiny_dir(tiny_model_dir) -> Path:
    return tiny_model_dir  # the session's tiny llama (tests/conftest.py): built once for the whole suite


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ort-cache")


@pytest.fixture(scope="module")
def fp32(tiny_dir, cache):
    from slmexp.quantize.onnx import export_onnx

    return export_onnx(tiny_dir, cache, "fp32", threads=THREADS)


@pytest.fixture(scope="module")
def runtime(tiny_dir, fp32):
    from slmexp.runtimes.ortgenai import OrtGenAIRuntime

    with OrtGenAIRuntime(str(tiny_dir), artifact_path=str(fp32.path), threads=THREADS, max_length=512) as rt:
        yield rt


@pytest.fixture(scope="module")
def hflm(tiny_dir):
    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    return HFLM(pretrained=model, tokenizer=AutoTokenizer.from_pretrained(tiny_dir), batch_size=4, device="cpu")


def _instances(kind: str, args: list[tuple]) -> list:
    from lm_eval.api.instance import Instance

    return [Instance(kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]


@pytest.mark.slow
def test_fp32_export_is_recorded_and_cached(tiny_dir, cache, fp32) -> None:
    from slmexp.quantize.onnx import export_onnx

    assert not fp32.cached and fp32.precision == "fp32" and fp32.builder
    assert (fp32.path / "genai_config.json").exists() and (fp32.path / "model.onnx").exists()
    assert fp32.op_types.get("MatMul", 0) > 0 and "MatMulNBits" not in fp32.op_types
    t0 = time.perf_counter()
    again = export_onnx(tiny_dir, cache, "fp32")
    assert again.cached and again.path == fp32.path and time.perf_counter() - t0 < 2


def test_ort_tokenizer_agrees_with_hf(runtime) -> None:
    lm = runtime.lm_eval_model()
    for prompt in PROMPTS:
        assert list(lm._og_tokenizer.encode(prompt)) == lm.tok_encode(prompt), prompt


def test_fp32_logits_match_hf(runtime, hflm) -> None:
    import numpy as np
    import torch

    lm = runtime.lm_eval_model()
    for prompt in PROMPTS:
        ids = lm.tok_encode(prompt, add_special_tokens=False)
        lm.clear_cache()
        ours = np.asarray(lm._logits_for(ids), dtype=np.float64)
        with torch.no_grad():
            ref = torch.log_softmax(hflm.model(torch.tensor([ids])).logits[0].double(), -1).numpy()
        ours = ours - ours.max(-1, keepdims=True)
        ours -= np.log(np.exp(ours).sum(-1, keepdims=True))
        assert np.abs(ours - ref).max() < LOGPROB_TOL, prompt


def test_lm_eval_requests_match_hflm(runtime, hflm) -> None:
    """The same lm-eval requests through HFLM and through ORT GenAI: log-likelihoods close, greedy text equal."""
    ours = runtime.lm_eval_model().loglikelihood(_instances("loglikelihood", PAIRS), disable_tqdm=True)
    ref = hflm.loglikelihood(_instances("loglikelihood", PAIRS), disable_tqdm=True)
    for pair, (a, ga), (b, gb) in zip(PAIRS, ours, ref, strict=True):
        assert math.isclose(a, b, abs_tol=LOGLIK_TOL) and ga == gb, (pair, a, b)
    gens = [(p, {"until": ["\n\n"], "max_gen_toks": 12, "do_sample": False}) for p in PROMPTS[:3]]
    gens.append((PROMPTS[0], {"until": [], "max_gen_toks": 5, "do_sample": False}))
    ours_gen = runtime.lm_eval_model().generate_until(_instances("generate_until", gens), disable_tqdm=True)
    ref_gen = hflm.generate_until(_instances("generate_until", gens), disable_tqdm=True)
    assert ours_gen == ref_gen
    assert any(ours_gen), "need some generated text for the comparison to mean anything"


def test_prefix_cache_reuse_gives_the_same_logits(runtime) -> None:
    import numpy as np

    lm = runtime.lm_eval_model()
    ids = lm.tok_encode(PROMPTS[0])
    lm.clear_cache()
    fresh = np.array(lm._logits_for(ids))
    list(lm.greedy_tokens(ids[:5], 4))  # leaves generated positions past a shorter prompt, without stored rows
    np.testing.assert_allclose(lm._logits_for(ids), fresh, atol=1e-4)
    np.testing.assert_allclose(lm._logits_for(ids[:7])[-1], fresh[6], atol=1e-4)  # a prefix of the cached rows


def test_stream_equals_hf_greedy_generation(tiny_dir, runtime) -> None:
    """The speed path: the same prompt tokens, the same greedy tokens and the text HF decodes from them; with a
    stop string, both runtimes' timed requests end at the same text and token (the accuracy pass's cut).

    Text is compared with HF's decode of the whole output: both streams decode over all tokens so far, so the random
    model's lone bytes of multi-byte characters give one U+FFFD per invalid sequence, as the accuracy pass's one
    decode does (not one per token).
    """
    import torch

    from slmexp.runtimes.transformers import TransformersRuntime

    lm = runtime.lm_eval_model()
    with TransformersRuntime(str(tiny_dir), device="cpu", threads=THREADS) as hf:
        for prompt in PROMPTS[:3]:
            ours = "".join(chunk for chunk, _t in runtime.stream(prompt, 10))
            list(hf.stream(prompt, 10))
            assert runtime.last_usage == hf.last_usage
            ids = lm.tok_encode(lm.apply_chat_template([{"role": "user", "content": prompt}]), add_special_tokens=False)
            with torch.no_grad():
                ref = hf.model.generate(torch.tensor([ids]), max_new_tokens=10, do_sample=False)[0, len(ids):]
            ref = [t for t in ref.tolist() if t != hf.tokenizer.eos_token_id]
            assert list(lm.greedy_tokens(ids, 10)) == ref, prompt
            assert ours == hf.tokenizer.decode(ref, skip_special_tokens=True), prompt
            assert ours == "".join(chunk for chunk, _t in hf.stream(prompt, 10)), prompt
            stop = next((ours[i:i + 2] for i in range(2, len(ours) - 1)
                         if ours[i:i + 2].isascii() and ours[i:i + 2].isprintable() and ours[i:i + 2].strip()), None)
            if stop:
                cut = "".join(chunk for chunk, _t in runtime.stream(prompt, 10, stop=[stop]))
                assert cut == ours.split(stop)[0] == "".join(c for c, _t in hf.stream(prompt, 10, stop=[stop]))
                assert runtime.last_usage == hf.last_usage and runtime.last_usage["output_tokens"] < len(ref)


@pytest.mark.slow
def test_int4_export_quantizes_the_matmuls(tiny_dir, cache, fp32) -> None:
    from slmexp.quantize.onnx import export_onnx
    from slmexp.runtimes.ortgenai import OrtGenAIRuntime

    int4 = export_onnx(tiny_dir, cache, "int4", threads=THREADS)
    assert int4.op_types.get("MatMulNBits", 0) > 0 and "MatMul" not in int4.op_types
    assert int4.bytes < fp32.bytes and int4.path != fp32.path
    with OrtGenAIRuntime(str(tiny_dir), artifact_path=str(int4.path), threads=THREADS, max_length=256) as rt:
        (a, _), (b, _) = rt.lm_eval_model().loglikelihood(_instances("loglikelihood", PAIRS[:2]), disable_tqdm=True)
        assert math.isfinite(a) and math.isfinite(b) and a < 0 and b < 0


def test_bad_precision_and_runtime_pairs_fail_naming_the_key() -> None:
    from slmexp.config import validate

    with pytest.raises(ConfigError, match=r"quantization.kind: .*cannot run on runtime=transformers.*runtime=ortgenai"):
        validate(compose(["quantization=onnx-int4"]))
    with pytest.raises(ConfigError, match=r"quantization.precision: 'int3' is not an ONNX export precision"):
        validate(compose(["quantization=onnx-int4", "runtime=ortgenai", "quantization.precision=int3"]))
    with pytest.raises(ConfigError, match=r"quantization.kind: .*cannot run on runtime=ortgenai"):
        validate(compose(["quantization=gguf-q4_k_m", "runtime=ortgenai"]))
    validate(compose(["runtime=ortgenai"]))  # quantization=none: an fp32 export


def test_olive_option_is_checked_at_config_time() -> None:
    from slmexp.config import validate

    if importlib.util.find_spec("olive") is None:
        with pytest.raises(ConfigError, match=r"quantization.olive: needs Olive"):
            validate(compose(["quantization=olive-gptq-int4", "runtime=ortgenai"]))
        return
    validate(compose(["quantization=olive-gptq-int4", "runtime=ortgenai"]))
    with pytest.raises(ConfigError, match=r"quantization.olive.algorithm: 'awq' is not one of gptq, rtn"):
        validate(compose(["quantization=olive-gptq-int4", "runtime=ortgenai", "quantization.olive.algorithm=awq"]))


@pytest.mark.slow  # Olive's start-up and GPTQ take ~60 s even on the tiny model (2 CPU cores)
@pytest.mark.skipif(importlib.util.find_spec("olive") is None, reason="olive-ai is the optional `olive` extra")
def test_olive_gptq_feeds_the_ortgenai_runtime(tiny_overrides, tmp_path) -> None:
    """quantization=olive-gptq-int4: Olive's GPTQ (calibrated on the train split) -> builder -> ORT GenAI, offline."""
    from slmexp.pipeline import run_job

    cfg = compose([*tiny_overrides, "quantization=olive-gptq-int4", "runtime=ortgenai", "runtime.threads=1",
                   "quantization.olive.calibration_samples=4", "quantization.olive.max_seq_len=64",
                   "eval.bench.n=1"])
    record = run_job(cfg, run_dir=tmp_path / "run")
    quant = record["quantization"]
    assert record["run"]["status"] == "finished" and quant["name"] == "olive-gptq-int4"
    assert quant["olive"]["algorithm"] == "gptq" and quant["olive"]["calibration_samples"] == 4
    assert quant["olive"]["calibration_data"].endswith("support_intent/train.jsonl")
    assert quant["op_types"]["MatMulNBits"] > 0
    workflow = Path(quant["olive"]["checkpoint"]).parent / "workflow.json"
    assert '"type": "Gptq"' in workflow.read_text()
    assert record["metrics"]["n_examples"] == 6


def test_unmerged_adapter_is_refused(tiny_overrides, tmp_path) -> None:
    from slmexp.quantize import Source
    from tests.conftest import job_prepare

    cfg = compose([*tiny_overrides, "quantization=onnx-int4", "runtime=ortgenai"])
    with pytest.raises(ConfigError, match=r"train.merge: ONNX export needs the merged checkpoint"):
        job_prepare(cfg, "onnx", Source(tmp_path, str(tmp_path / "adapter"), None, True), tmp_path, None)


@pytest.mark.slow
def test_lora_job_exports_the_merged_model(tiny_overrides, tmp_path) -> None:
    """adapter=lora quantization=onnx-int4 runtime=ortgenai: the export is of the run's merged checkpoint, and
    the record has accuracy, speed and cost like any other run."""
    from slmexp.pipeline import run_job

    cfg = compose([*tiny_overrides, "adapter=lora", "train.max_steps=2", "train.eval_steps=0", "train.train_limit=8",
                   "quantization=onnx-int4", "runtime=ortgenai", "runtime.threads=1"])
    record = run_job(cfg, run_dir=tmp_path / "run")
    quant = record["quantization"]
    assert record["run"]["status"] == "finished"
    assert quant["kind"] == "onnx" and quant["precision"] == "int4" and quant["op_types"]["MatMulNBits"] > 0
    assert quant["source"] == record["model"]["evaluated_path"] and quant["source"].endswith("merged")
    assert 0 < quant["bytes"] < quant["full_precision_bytes"]
    from slmexp.report import _size_mb

    assert _size_mb(record) == pytest.approx(quant["bytes"] / 1e6)  # the table's size is the served export's
    assert record["metrics"]["n_examples"] == 6
    assert record["speed"]["decode_tokens_per_s"]["p50"] > 0 and record["cost"]["usd_per_1k_requests"] > 0


@pytest.mark.slow
def test_smollm2_exports_score_like_hf(tmp_path) -> None:
    """The real SmolLM2-135M on 12 support-intent test messages (lm-eval's rolling log-likelihood): the fp32 export
    scores like HF within 1e-3 nats per token and decodes greedily to HF's text; int8 and int4 (round-to-nearest,
    every matmul including the tied output layer) cost perplexity. Measured: HF 4.859 nats/token, fp32 +7e-6,
    int8 +0.010, int4 +0.236 (mean |d| 0.27 per token)."""
    import json

    from slmexp import models
    from slmexp.config import DATA_DIR
    from slmexp.quantize.onnx import export_onnx
    from slmexp.runtimes.ortgenai import OrtGenAIRuntime
    from slmexp.runtimes.transformers import TransformersRuntime

    cfg = compose([])
    hf_dir = models.resolve(cfg.model, cfg.paths.cache_dir).path
    with open(DATA_DIR / "support_intent" / "test.jsonl") as f:
        texts = [(json.loads(line)["text"],) for line in list(f)[:12]]
    prompts = ["Where is my order?", "I want a refund.", "What is 2+2?", "Name three colors."]
    with TransformersRuntime(str(hf_dir), device="cpu") as hf:
        n_tokens = sum(len(hf.tokenizer(t)["input_ids"]) for (t,) in texts)
        ref = hf.lm_eval_model().loglikelihood_rolling(_instances("loglikelihood_rolling", texts), disable_tqdm=True)
        ref_text = ["".join(c for c, _t in hf.stream(p, 12)) for p in prompts]
    for precision, tol in (("fp32", 1e-3), ("int8", 0.05), ("int4", 0.5)):
        art = export_onnx(hf_dir, cfg.paths.cache_dir, precision)
        with OrtGenAIRuntime(str(hf_dir), artifact_path=str(art.path)) as rt:
            ours = rt.lm_eval_model().loglikelihood_rolling(_instances("loglikelihood_rolling", texts),
                                                             disable_tqdm=True)
            drift = sum(abs(a - b) for a, b in zip(ours, ref, strict=True)) / n_tokens
            assert drift < tol, (precision, drift)
            if precision == "fp32":
                assert ["".join(c for c, _t in rt.stream(p, 12)) for p in prompts] == ref_text
