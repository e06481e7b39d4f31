"""Every option of every config group composes; bad values fail early naming the key and where it was set."""

from __future__ import annotations

import importlib.util

import pytest

from slmexp.config import CONF_DIR, validate
from slmexp.errors import ConfigError
from tests.conftest import compose

# hydra/: launcher configs of Hydra plugins (tested where they run, in tests/test_sweeps.py)
GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("local", "hydra"))
HAS_VLLM = importlib.util.find_spec("vllm") is not None
HAS_ORTGENAI = all(importlib.util.find_spec(m) is not None for m in ("onnxruntime_genai", "onnx_ir"))
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF_DIR / g).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_group_option_composes(group: str, option: str) -> None:
    # GGUF files are served by llama.cpp only: pair them with it (the refusal is tested below).
    pair = ["runtime=llamacpp"] if option.startswith("gguf-") else []
    pair = ["runtime=ortgenai"] if option.startswith(("onnx-", "olive-")) else pair  # ONNX: ONNX Runtime GenAI only
    pair = ["adapter=lora"] if group == "distill" and option != "none" else pair  # a teacher trains a student
    if group == "model" and not compose([f"model={option}"]).model.source.hub:
        pair = ["runtime=openai"]  # an API model: no weights, an endpoint serves it
    cfg = compose([f"{group}={option}", *pair])
    # Resolving every interpolation catches a bad ${...} in any file.
    from omegaconf import OmegaConf

    OmegaConf.to_container(cfg, resolve=True)
    if group in ("debug",):
        return
    if cfg.runtime.name == "ortgenai" and not HAS_ORTGENAI:
        with pytest.raises(ConfigError, match=r"runtime.name: runtime=ortgenai needs"):
            validate(cfg)
        return
    if cfg.quantization.get("olive") and importlib.util.find_spec("olive") is None:
        with pytest.raises(ConfigError, match=r"quantization.olive: needs Olive"):
            validate(cfg)
        return
    if (group, option) == ("task", "jsonl"):  # a template: the user names their file
        with pytest.raises(ConfigError, match=r"task\.data\.test: is not set: task=jsonl needs the path"):
            validate(cfg)
        return
    if (group, option) == ("task", "lm-eval"):
        with pytest.raises(ConfigError, match=r"task\.names"):  # ??? until the user lists tasks
            validate(cfg)
        validate(compose(["task=lm-eval", "task.names=[arc_easy]"]))
        return
    if cfg.runtime.name == "vllm" and not HAS_VLLM:  # refused at config time, naming the key and the install
        with pytest.raises(ConfigError, match=r"runtime.name: runtime=vllm needs the vllm package"):
            validate(cfg)
        return
    validate(cfg)


def test_every_model_config_is_complete() -> None:
    for path in sorted((CONF_DIR / "model").glob("*.yaml")):
        cfg = compose([f"model={path.stem}"])
        assert cfg.model.name == path.stem, f"{path}: name must equal the file name"
        assert cfg.model.role in ("slm", "baseline")
        if not any(cfg.model.source.get(k) for k in ("path", "hub", "wheel")):  # an API model (runtime=openai)
            assert cfg.model.role == "baseline", f"{path}: a model without weights is an API baseline"
            continue
        assert cfg.model.source.hub, f"{path}: configs name a Hub id for real use"
        if cfg.model.source.wheel:
            assert len(cfg.model.source.wheel.sha256) == 64


def test_defaults_are_the_embedded_offline_model() -> None:
    cfg = compose([])
    assert cfg.model.name == "smollm2-135m"
    assert cfg.task.name == "support-intent"
    assert cfg.adapter.name == "none" and cfg.quantization.kind == "none"
    assert cfg.runtime.name == "transformers"


def test_bad_choice_names_key() -> None:
    cfg = compose(["model.role=teacher"])
    with pytest.raises(ConfigError, match=r"model.role: 'teacher' is not one of slm, baseline"):
        validate(cfg)


def test_unknown_key_is_refused_by_hydra() -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=r"eval\.limt"):
        compose(["eval.limt=3"])


def test_key_origin_points_at_file_and_line() -> None:
    from slmexp.origin import _line_of

    line = _line_of(CONF_DIR / "task" / "support-intent.yaml", ["data", "test"])
    text = (CONF_DIR / "task" / "support-intent.yaml").read_text().splitlines()
    assert text[line - 1].strip().startswith("test:")


@pytest.mark.parametrize(("quant", "runtime"), [("gguf-q4_k_m", "transformers"), ("bnb-nf4", "llamacpp")])
def test_quantization_runtime_mismatch_is_refused_naming_both_keys(quant: str, runtime: str) -> None:
    cfg = compose([f"quantization={quant}", f"runtime={runtime}"])
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    msg = str(err.value)
    assert msg.startswith("quantization.kind:") and "runtime.name" in msg
    assert f"quantization={quant}" in msg and f"runtime={runtime}" in msg


def test_unknown_gguf_type_lists_valid_ones() -> None:
    cfg = compose(["quantization=gguf-q4_k_m", "runtime=llamacpp", "quantization.gguf_type=q4_k_x"])
    with pytest.raises(ConfigError, match=r"quantization.gguf_type: 'q4_k_x' is not a GGUF type; valid: f16, q8_0"):
        validate(cfg)


def test_sweep_files_are_multirun_and_resolve_from_any_directory(tmp_path) -> None:
    import subprocess
    import sys

    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    sweeps = sorted(p.stem for p in (CONF_DIR / "sweep").glob("*.yaml"))
    assert {"demo", "quant-ladder", "adapter-ablation"} <= set(sweeps)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for name in sweeps:
            cfg = hydra_compose(config_name="config", overrides=[f"sweep={name}"], return_hydra_config=True)
            assert str(cfg.hydra.mode) == "RunMode.MULTIRUN", name
            assert cfg.hydra.sweeper.params, name
    out = subprocess.run([sys.executable, "-m", "slmexp", "sweep=demo", "--cfg", "hydra"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "arm: slm-zeroshot,slm-lora,slm-lora-q4km,llm-baseline" in out.stdout
