"""Weights provenance: a model whose "full precision" weights were dequantized from a GGUF says so (the GGUF's type,
read from its header), in the record's `model` block and in the end-of-run summary; a real checkpoint says nothing.

Hand-made GGUF headers (gguf-py's writer, a few tiny tensors): no llama.cpp, no conversion, no network.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from slmexp import models
from slmexp.models import ResolvedModel

MODEL_CFG = OmegaConf.create({"name": "m", "role": "slm", "params_b": 0.1, "dtype": "float32",
                              "source": {"path": None, "hub": "org/m", "wheel": None}})


def _gguf(path: Path, file_type: int | None, tensor_type: str = "F32") -> Path:
    """A GGUF with an F32 norm, a weight of `tensor_type` and, when given, `general.file_type`."""
    import gguf
    from gguf.quants import quantize

    w = gguf.GGUFWriter(str(path), "llama")
    if file_type is not None:
        w.add_file_type(file_type)
    w.add_tensor("blk.0.attn_norm.weight", np.ones(64, dtype=np.float32))
    w.add_tensor("blk.1.attn_norm.weight", np.ones(64, dtype=np.float32))
    weight = np.linspace(-1, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    qtype = gguf.GGMLQuantizationType[tensor_type]
    data = weight if qtype == gguf.GGMLQuantizationType.F32 else quantize(weight, qtype)
    w.add_tensor("blk.0.attn_q.weight", data, raw_dtype=None if qtype == gguf.GGMLQuantizationType.F32 else qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _resolved(source: str, path: Path, gguf_path: Path | None) -> ResolvedModel:
    return ResolvedModel("m", path, source, "0" * 64 if gguf_path else None, gguf_path, 1, 0.0)


@pytest.mark.parametrize(("file_type", "label"), [(3, "Q4_1"), (15, "Q4_K_M"), (1, "F16")])
def test_weights_from_a_gguf_are_labelled_with_its_file_type(tmp_path, file_type, label) -> None:
    gguf_file = _gguf(tmp_path / "m.gguf", file_type)
    block = models.describe(MODEL_CFG, _resolved("wheel", tmp_path / "hf", gguf_file))
    assert block["weights_provenance"] == f"dequantized from GGUF {label}"


def test_a_gguf_without_file_type_is_named_by_its_quantized_tensors(tmp_path) -> None:
    gguf_file = _gguf(tmp_path / "old.gguf", None, tensor_type="Q4_1")  # 2 F32 norms, 1 Q4_1 weight
    block = models.describe(MODEL_CFG, _resolved("path", tmp_path / "hf", gguf_file))
    assert block["weights_provenance"] == "dequantized from GGUF Q4_1"


def test_a_real_checkpoint_has_no_provenance_label(tiny_model_dir) -> None:
    cfg = OmegaConf.merge(MODEL_CFG, {"source": {"path": str(tiny_model_dir), "hub": None}})
    resolved = models.resolve(cfg, tiny_model_dir.parent / "cache")  # an HF dir: no GGUF involved
    block = models.describe(cfg, resolved)
    assert "weights_provenance" in block and block["weights_provenance"] is None


def test_summary_prints_the_provenance_line(capsys) -> None:
    from slmexp.summary import print_summary

    record = {"run": {"name": "t", "status": "finished", "run_dir": "/tmp/x", "stages_s": {}},
              "model": {"name": "smollm2-135m", "role": "slm", "params_b": 0.135, "dtype": "float32",
                        "bytes_on_disk": 538_000_000, "source": "wheel",
                        "weights_provenance": "dequantized from GGUF Q4_1"}}
    print_summary(record)
    err = " ".join(capsys.readouterr().err.split())
    assert "dequantized from GGUF Q4_1" in err
    record["model"]["weights_provenance"] = None
    print_summary(record)
    assert "dequantized" not in capsys.readouterr().err


@pytest.mark.slow
def test_served_shipped_gguf_is_not_labelled_dequantized(tiny_model_dir, tmp_path) -> None:
    """A model given as a .gguf: transformers serves its dequantized conversion (labelled), llama.cpp serves the
    file itself (quantization=none, as shipped: nothing was dequantized, so no label)."""
    from slmexp.pipeline import run_job
    from slmexp.quantize.gguf import export_gguf
    from tests.conftest import compose

    shipped = export_gguf(tiny_model_dir, tmp_path / "shipped", "f16").path
    base = [f"model.source.path={shipped}", "model.name=tiny-gguf", f"paths.cache_dir={tmp_path / 'cache'}",
            "eval.limit=2", "eval.bench.n=0", "task.generation.max_new_tokens=2"]
    served = run_job(compose([*base, "runtime=llamacpp", "runtime.n_threads=1"]), run_dir=tmp_path / "llamacpp")
    assert served["quantization"]["name"] == "as-shipped"
    assert served["model"]["weights_provenance"] is None
    # llama.cpp serves the file: only its tokenizer and config were read out, nothing was dequantized
    sha = served["model"]["sha256"]
    tok_dir = tmp_path / "cache" / "hf-tokenizer" / sha
    assert served["model"]["has_weights"] is False and Path(served["model"]["path"]) == tok_dir
    assert served["model"]["bytes_on_disk"] == shipped.stat().st_size
    assert not (tmp_path / "cache" / "hf" / sha).exists() and not list(tok_dir.glob("*.safetensors"))
    converted = run_job(compose([*base, "runtime.batch_size=1"]), run_dir=tmp_path / "transformers")
    assert converted["model"]["weights_provenance"] == "dequantized from GGUF F16"
    assert converted["model"]["has_weights"] is True
    full = Path(converted["model"]["path"])
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):  # written by the same calls
        a, b = (tok_dir / name).read_text(), (full / name).read_text()
        assert a == b, "\n".join(difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm=""))
    assert served["metrics"]["n_examples"] == 2  # and the tokenizer-only dir served the evaluation
