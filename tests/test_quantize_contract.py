"""The quantizer contract (slmexp/quantize/__init__.py): every registered module declares it, `prepare` hands each
kind of runtime its artifact, and GGUF exports are cached by content (a second run exports nothing)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from slmexp.errors import ConfigError
from slmexp.quantize import NEEDS, QUANTIZERS, Artifact, Source, check
from tests.conftest import compose, job_prepare


@pytest.mark.parametrize("kind", sorted(QUANTIZERS))
def test_every_quantizer_module_declares_the_contract(kind: str) -> None:
    module = importlib.import_module(QUANTIZERS[kind])
    assert kind == module.KIND and module.PRODUCES in NEEDS and module.PRODUCES != "endpoint"
    assert callable(module.check) and callable(module.prepare)


def test_check_names_the_bad_key() -> None:
    with pytest.raises(ConfigError, match=r"quantization.gguf_type: 'q4_k_x' is not a GGUF type; valid: f16, q8_0"):
        check(compose(["quantization=gguf-q4_k_m", "runtime=llamacpp", "quantization.gguf_type=q4_k_x"]))
    check(compose(["quantization=none"]))


def test_endpoint_checkpoint_and_bnb_artifacts(tiny_model_dir, tmp_path) -> None:
    source = Source(tiny_model_dir, None, None, False)
    assert job_prepare(compose([]), "endpoint", source, tmp_path, None) == Artifact(None, "endpoint", None)
    plain = job_prepare(compose([]), "checkpoint", source, tmp_path, None)
    assert plain == Artifact(tiny_model_dir, "checkpoint", None)
    bnb = job_prepare(compose(["quantization=bnb-nf4"]), "checkpoint", source, tmp_path, None)
    assert bnb.kind == "checkpoint" and bnb.path == tiny_model_dir
    assert bnb.block == {"kind": "bnb", "name": "bnb-nf4", "full_precision_bytes": bnb.block["full_precision_bytes"]}
    assert bnb.block["full_precision_bytes"] > 0
    config = bnb.runtime_kwargs["quantization_config"]
    assert isinstance(config, dict) and config["_target_"] == "transformers.BitsAndBytesConfig"


def test_gguf_needs_a_merged_checkpoint_and_serves_a_shipped_file_as_is(tiny_model_dir, tmp_path) -> None:
    cfg = compose(["runtime=llamacpp", f"paths.cache_dir={tmp_path / 'cache'}"])
    with pytest.raises(ConfigError, match=r"train.merge: GGUF export needs the merged checkpoint"):
        job_prepare(cfg, "gguf", Source(tiny_model_dir, str(tmp_path / "adapter"), None, True), tmp_path, None)
    shipped = tmp_path / "shipped.gguf"
    shipped.write_bytes(b"GGUF" + bytes(60))
    art = job_prepare(cfg, "gguf", Source(tiny_model_dir, None, shipped, False), tmp_path, None)
    assert art.path == shipped and art.block == {"kind": "gguf", "name": "as-shipped", "path": str(shipped),
                                                 "bytes": 64}
    assert not (tmp_path / "cache").exists(), "nothing is exported for a shipped file"


def test_gguf_export_is_cached_by_content(tiny_model_dir, tmp_path, monkeypatch) -> None:
    import slmexp.quantize.hf_to_gguf as hf_to_gguf

    cfg = compose(["quantization=gguf-f16", "runtime=llamacpp", f"paths.cache_dir={tmp_path / 'cache'}"])
    source = Source(tiny_model_dir, None, None, False)
    first = job_prepare(cfg, "gguf", source, tmp_path / "run1", None)
    assert first.kind == "gguf" and first.block["cached"] is False and first.block["name"] == "gguf-f16"
    assert first.path.is_relative_to(tmp_path / "cache" / "gguf-export") and first.path.name == "model-f16.gguf"

    def no_export(*_args: object) -> Path:
        raise AssertionError("a cached export was written again")

    monkeypatch.setattr(hf_to_gguf, "write_f16_gguf", no_export)
    second = job_prepare(cfg, "gguf", source, tmp_path / "run2", None)
    assert second.block["cached"] is True and second.path == first.path
    assert second.block["export_s"] == first.block["export_s"] and second.block["bytes"] == first.block["bytes"]
    for run in ("run1", "run2"):  # each run dir holds the served file (a link into the cache) and its Modelfile
        served = tmp_path / run / "gguf" / "model-f16.gguf"
        assert served.resolve() == first.path.resolve()
        modelfile = tmp_path / run / "gguf" / "Modelfile"
        assert "FROM ./model-f16.gguf\n" in modelfile.read_text()
    assert second.block["ollama_modelfile"] == str(tmp_path / "run2" / "gguf" / "Modelfile")
