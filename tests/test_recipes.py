"""The OpenAI-compatible server recipes (conf/runtime/{ollama,lmstudio,mlx-lm,foundry-local,vllm-server}.yaml) and the
Ollama Modelfile written next to an exported GGUF."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from slmexp.config import validate
from tests.conftest import compose

# recipe -> the server's default port (its documented default) and what runtime.model resolves to by default
RECIPES = {"ollama": (11434, "smollm2-135m"), "lmstudio": (1234, "smollm2-135m"),
           "mlx-lm": (8080, "HuggingFaceTB/SmolLM2-135M-Instruct"), "foundry-local": (5273, "smollm2-135m"),
           "vllm-server": (8000, "HuggingFaceTB/SmolLM2-135M-Instruct")}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_is_the_openai_runtime_on_the_servers_port_under_its_own_name(recipe: str) -> None:
    from omegaconf import OmegaConf

    port, model = RECIPES[recipe]
    cfg = compose([f"runtime={recipe}"])
    assert cfg.runtime.name == recipe and cfg.runtime._target_ == "slmexp.runtimes.openai.OpenAIRuntime"
    assert cfg.runtime.base_url == f"http://127.0.0.1:{port}/v1" and cfg.runtime.model == model
    assert cfg.runtime.api_key_env is None and cfg.runtime.provider_id is None  # local servers: priced by hardware
    OmegaConf.to_container(cfg, resolve=True)
    validate(cfg)
    override = compose([f"runtime={recipe}", "runtime.model=my-model", "runtime.base_url=http://10.0.0.2:9/v1"])
    assert override.runtime.model == "my-model" and override.runtime.base_url == "http://10.0.0.2:9/v1"


SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_dir(tiny_model_dir) -> Path:
    return tiny_model_dir  # the session's tiny llama (tests/conftest.py): built once for the whole suite


def _with_template(src: Path, dst: Path, template: str) -> Path:
    import json

    shutil.copytree(src, dst)
    cfg_path = dst / "tokenizer_config.json"
    tok_cfg = json.loads(cfg_path.read_text())
    tok_cfg["chat_template"] = template
    cfg_path.write_text(json.dumps(tok_cfg))
    (dst / "chat_template.jinja").unlink(missing_ok=True)
    (dst / "chat_template.jinja").write_text(template)
    return dst


def test_modelfile_states_the_chatml_template_system_and_stops(tiny_dir, tmp_path) -> None:
    from slmexp.quantize.ollama import write_ollama_modelfile

    hf_dir = _with_template(tiny_dir, tmp_path / "smol", SMOLLM2_TEMPLATE)
    gguf = tmp_path / "gguf" / "model-q4_k_m.gguf"
    gguf.parent.mkdir()
    text = write_ollama_modelfile(gguf, hf_dir).read_text()
    assert "FROM ./model-q4_k_m.gguf\n" in text
    assert 'TEMPLATE """{{ if .System }}<|im_start|>system\n' in text
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""' in text
    assert 'PARAMETER stop "<|im_end|>"' in text and "PARAMETER temperature 0" in text


def test_modelfile_without_a_default_system_or_for_another_template(tiny_dir, tmp_path) -> None:
    from slmexp.quantize.ollama import write_ollama_modelfile

    (tmp_path / "a").mkdir()
    text = write_ollama_modelfile(tmp_path / "a" / "m.gguf", tiny_dir).read_text()  # conftest's ChatML template
    assert "TEMPLATE" in text and "SYSTEM" not in text and 'PARAMETER stop "<|im_end|>"' in text
    other = _with_template(tiny_dir, tmp_path / "other",
                           "{% for m in messages %}<start_of_turn>{{ m['content'] }}<end_of_turn>{% endfor %}")
    (tmp_path / "b").mkdir()
    text = write_ollama_modelfile(tmp_path / "b" / "m.gguf", other).read_text()
    assert "\nTEMPLATE" not in text and "# No TEMPLATE" in text and "FROM ./m.gguf" in text


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is the `gguf` extra")
def test_gguf_export_in_a_job_writes_the_modelfile_next_to_it(tiny_overrides, tmp_path) -> None:
    from slmexp.pipeline import run_job

    cfg = compose([*tiny_overrides, "quantization=gguf-q8_0", "runtime=llamacpp", "runtime.n_threads=1",
                   "eval.limit=2", "eval.bench.n=0"])
    record = run_job(cfg, run_dir=tmp_path / "run")
    modelfile = Path(record["quantization"]["ollama_modelfile"])
    assert modelfile == tmp_path / "run" / "gguf" / "Modelfile"
    assert f"FROM ./{Path(record['quantization']['path']).name}\n" in modelfile.read_text()
    assert (modelfile.parent / Path(record["quantization"]["path"]).name).exists()
