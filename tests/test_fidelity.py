"""Quantization fidelity (slmexp.fidelity): KLD, top-1 agreement and PPL ratio of a quantized model against its
parent, read through the runtime that serves it (llama.cpp here), on real GGUF files of the tiny llama and of
SmolLM2-135M."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from slmexp.fidelity import GENERIC_TEXT, compare_logits, measure, summarize
from tests.conftest import build_tiny_model, compose

needs_llama_cpp = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                     reason='llama-cpp-python is an optional extra: pip install -e ".[gguf]"')


def test_identical_distributions_have_zero_kld_and_full_agreement() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 10))
    tokens = [1, 2, 3, 4, 5, 6]
    same = summarize([compare_logits(logits, logits.copy(), tokens)])
    assert same["kld_mean"] == 0.0 and same["top1_agreement_pct"] == 100.0 and same["ppl_ratio"] == 1.0
    assert same["n_tokens"] == 5  # the last position predicts nothing that was scored


def test_kld_top1_and_ppl_by_hand() -> None:
    # one position, vocabulary of 2: parent p = (0.5, 0.5), rung q = (0.8, 0.2); next token is 1
    parent = np.log(np.array([[0.5, 0.5], [0.5, 0.5]]))
    rung = np.log(np.array([[0.8, 0.2], [0.5, 0.5]]))
    out = summarize([compare_logits(parent, rung, [0, 1])])
    kld = 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)
    assert out["kld_mean"] == pytest.approx(kld, abs=1e-6)
    assert out["ppl_parent"] == pytest.approx(2.0) and out["ppl"] == pytest.approx(5.0)
    assert out["ppl_ratio"] == pytest.approx(2.5)
    # a padded embedding (more logits than the tokenizer has) is cut to the shorter vocabulary
    padded = np.concatenate([rung, np.full((2, 3), 50.0)], axis=1)
    assert summarize([compare_logits(parent, padded, [0, 1])])["kld_mean"] == pytest.approx(kld, abs=1e-6)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    # hidden 128: head_dim 32, whole 32-wide quant blocks in every row (as tests/test_gguf.py)
    return build_tiny_model(tmp_path_factory.mktemp("fid") / "tiny-llama", hidden=128)


@pytest.mark.slow  # builds the tiny model and two GGUF files (~40 s on 2 busy cores)
@needs_llama_cpp
def test_q4_drifts_further_from_the_parent_than_f16(tiny_dir, tmp_path) -> None:
    from slmexp.quantize.gguf import export_gguf, requantize
    from slmexp.runtimes.llamacpp import LlamaCppRuntime

    f16 = export_gguf(tiny_dir, tmp_path, "f16").path
    q4 = requantize(f16, tmp_path / "model-q4_0.gguf", "q4_0")
    texts = ["Where is my order? It was due on Monday.", "I want to cancel my subscription", GENERIC_TEXT]
    got = {}
    for name, path in (("f16", f16), ("q4_0", q4)):
        with LlamaCppRuntime(str(tiny_dir), artifact_path=str(path), n_ctx=512, n_threads=1) as rt:
            got[name] = measure(rt.lm_eval_model(), tiny_dir, texts)
    f, q = got["f16"], got["q4_0"]
    assert f["n_tokens"] == q["n_tokens"] > 50 and f["n_texts"] == 3
    assert 0 <= f["kld_mean"] < 0.01 and abs(f["ppl_ratio"] - 1) < 0.01 and f["top1_agreement_pct"] > 95
    assert q["kld_mean"] > 5 * f["kld_mean"] and q["top1_agreement_pct"] <= f["top1_agreement_pct"]


@pytest.mark.slow
@needs_llama_cpp
def test_smollm2_q4_k_m_rung_records_fidelity_against_its_dequantized_parent(tmp_path) -> None:
    """The real SmolLM2-135M (rebuilt from the wheel's GGUF Q4_1, so the parent is labelled dequantized), exported to
    GGUF Q4_K_M and served by llama.cpp: the record's `fidelity` and the report's fidelity table."""
    from slmexp.pipeline import run_job
    from slmexp.report import write_report

    cfg = compose(["arm=quant-gguf-q4_k_m", "eval.limit=4", "eval.bench.n=0", "eval.fidelity.n_prompts=4",
                   "runtime.n_threads=2", f"paths.output_dir={tmp_path / 'o'}"])
    rec = run_job(cfg, run_dir=tmp_path / "sweep" / "0")
    fid = rec["fidelity"]
    assert fid["parent"]["dequantized"] is True and "Q4_1" in fid["parent"]["dequantized_note"]
    assert fid["n_texts"] == 5 and fid["n_tokens"] > 500
    assert 0 < fid["kld_mean"] < 1 and 50 < fid["top1_agreement_pct"] < 100 and 0.9 < fid["ppl_ratio"] < 2
    md = write_report(tmp_path / "sweep")["md"].read_text()
    assert "**Quantization fidelity.**" in md and f"{fid['kld_mean']:.4f}" in md
    print(json.dumps({k: fid[k] for k in ("kld_mean", "kld_p99", "top1_agreement_pct", "ppl", "ppl_parent",
                                          "ppl_ratio", "n_tokens", "wall_s")}))


@pytest.mark.slow  # a tiny job through the pipeline
def test_bnb_run_records_fidelity_against_its_checkpoint(tiny_overrides, tmp_path) -> None:
    """The pipeline's fidelity stage on a bitsandbytes run (read through lm-eval's HFLM): the record names the parent
    (a real checkpoint: not dequantized) and the figures are those of a lightly perturbed model."""
    pytest.importorskip("bitsandbytes")
    from slmexp.pipeline import run_job

    cfg = compose([*tiny_overrides, "quantization=bnb-int8", "eval.bench.n=0", "eval.fidelity.n_prompts=2",
                   "eval.fidelity.max_tokens=128"])
    rec = run_job(cfg, run_dir=tmp_path / "run")
    fid = rec["fidelity"]
    assert fid["parent"]["dequantized"] is False and fid["parent"]["name"] == "tiny-llama"
    assert fid["n_texts"] == 3 and fid["n_tokens"] > 100 and "fidelity" in rec["run"]["stages_s"]
    assert 0 < fid["kld_mean"] < 0.5 and fid["top1_agreement_pct"] > 50 and 0.5 < fid["ppl_ratio"] < 2


@pytest.mark.slow  # two ONNX exports of the tiny llama
@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("onnxruntime_genai", "onnx_ir")),
                    reason="onnxruntime-genai and onnx-ir are the optional `ortgenai` extra")
def test_onnx_int4_drifts_further_than_fp32(tiny_model_dir, tmp_path) -> None:
    from slmexp.quantize.onnx import export_onnx
    from slmexp.runtimes.ortgenai import OrtGenAIRuntime

    texts = ["Where is my order? It was due on Monday.", GENERIC_TEXT]
    got = {}
    for precision in ("fp32", "int4"):
        export = export_onnx(tiny_model_dir, tmp_path, precision, threads=1)
        with OrtGenAIRuntime(str(tiny_model_dir), artifact_path=str(export.path), threads=1, max_length=512) as rt:
            got[precision] = measure(rt.lm_eval_model(), tiny_model_dir, texts)
    assert got["fp32"]["kld_mean"] < 1e-4 and got["fp32"]["top1_agreement_pct"] == 100.0
    assert got["int4"]["kld_mean"] > 10 * got["fp32"]["kld_mean"]
    assert abs(got["fp32"]["ppl_ratio"] - 1) < 1e-3
