"""HF safetensors checkpoint -> F16 GGUF, written with `gguf.GGUFWriter` (PyPI gguf-py).

Why our own writer: llama.cpp's `convert_hf_to_gguf.py` is not on PyPI (it ships only inside the llama.cpp source
tree, with its own gguf-py), so the few rules it applies to our architectures are reproduced here and kept next to
their reason: llama q/k rows permuted into llama.cpp's rotary layout, Gemma 3 norms stored as `1 + w`, tied
embeddings not duplicated. The tokenizer part is in `gguf_vocab.py`. Tensors are streamed one at a time, so memory
stays at one tensor even for a 1.5B fp32 checkpoint. Requantizing the F16 file is `gguf.requantize` (llama.cpp's own
quantizer).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmexp.errors import SlmexpError
from slmexp.quantize.gguf_vocab import write_vocab

# HF `model_type` -> llama.cpp architecture name. Anything else is refused: an unknown architecture would need its
# own tensor rules, and a silently wrong GGUF only shows up as bad accuracy much later.
SUPPORTED_ARCHS: dict[str, str] = {"llama": "llama", "qwen2": "qwen2", "gemma3": "gemma3", "gemma3_text": "gemma3"}


@dataclass
class _Tensor:
    """One tensor to write: where it comes from, its GGUF name and whether it stays F32."""

    hf_name: str
    gguf_name: str
    file: Path
    shape: tuple[int, ...]
    f32: bool


def write_f16_gguf(hf_dir: Path, out_path: Path) -> Path:
    """Write an F16 GGUF (norms, biases and other 1-D tensors F32, as llama.cpp expects) from an HF checkpoint."""
    import gguf
    import numpy as np

    hf_dir = Path(hf_dir)
    config = read_config(hf_dir)
    arch = SUPPORTED_ARCHS[config["model_type"]]
    plan = _tensor_plan(hf_dir, config, arch)
    tmp = out_path.with_name(out_path.name + ".partial")
    # gguf-py logs its file layout at INFO (Hydra's root logger would print it) and warns about tokenizer
    # template shapes it does not parse (the BOS/EOS policy is measured instead).
    with _quiet("gguf"):
        writer = gguf.GGUFWriter(tmp, arch)
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(str(config.get("_model_name_or_path") or hf_dir.name))
        _write_hparams(writer, config, arch)
        write_vocab(writer, hf_dir, config)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        for t in plan:
            dtype = np.dtype(np.float32 if t.f32 else np.float16)
            writer.add_tensor_info(t.gguf_name, t.shape, dtype, int(np.prod(t.shape)) * dtype.itemsize)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        _write_tensors(writer, plan, config, arch, out_path.name)
        writer.close()
    os.replace(tmp, out_path)
    return out_path


def _write_tensors(writer: Any, plan: list[_Tensor], config: dict[str, Any], arch: str, label: str) -> None:
    """Stream the tensor data into `writer`, in plan order, with a progress bar (minutes for a 1.5B model)."""
    import numpy as np
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    total = sum(int(np.prod(t.shape)) * (4 if t.f32 else 2) for t in plan)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        bar = progress.add_task(f"writing {label} ({len(plan)} tensors)", total=total)
        for data in _tensor_data(plan, config, arch):
            writer.write_tensor_data(data)
            progress.advance(bar, data.nbytes)


def read_config(hf_dir: Path) -> dict[str, Any]:
    """config.json with a multimodal `text_config` lifted to the top; refuses unsupported architectures."""
    path = Path(hf_dir) / "config.json"
    if not path.is_file():
        raise SlmexpError(f"{hf_dir} is not a HF checkpoint (no config.json); GGUF export needs one")
    config = json.loads(path.read_text())
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_ARCHS:
        raise SlmexpError(f"GGUF export does not support architecture {model_type!r} ({path}); "
                          f"supported: {', '.join(SUPPORTED_ARCHS)}")
    if "text_config" in config:  # Gemma3ForConditionalGeneration: the language model's settings live here
        config = {**config, **config["text_config"], "model_type": model_type}
    return config


def _rope(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(full-attention rope params, sliding-window rope params or None), for old and new transformers configs."""
    rp = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    if "full_attention" in rp or "sliding_attention" in rp:
        return dict(rp.get("full_attention") or {}), dict(rp.get("sliding_attention") or {})
    rp.setdefault("rope_theta", config.get("rope_theta"))
    rp.setdefault("rope_type", rp.get("type", "default"))
    local = config.get("rope_local_base_freq")  # transformers 4.x Gemma 3
    return rp, ({"rope_theta": local} if local else None)


def _head_dim(config: dict[str, Any]) -> int:
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def _write_hparams(writer: Any, config: dict[str, Any], arch: str) -> None:
    """The `<arch>.*` keys llama.cpp reads for these architectures (the converter's `set_gguf_parameters`)."""
    import gguf

    n_head = int(config["num_attention_heads"])
    writer.add_context_length(int(config.get("max_position_embeddings", 131072 if arch == "gemma3" else 4096)))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(n_head)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or n_head))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    if config.get("head_dim"):
        writer.add_key_length(int(config["head_dim"]))
        writer.add_value_length(int(config["head_dim"]))
    full, swa = _rope(config)
    if full.get("rope_theta"):
        writer.add_rope_freq_base(float(full["rope_theta"]))
    rope_type = str(full.get("rope_type") or "default").lower()
    if rope_type == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(full["factor"]))
    elif rope_type not in ("default", "llama3"):  # llama3 scaling is a tensor (rope_freqs), written with the weights
        raise SlmexpError(f"GGUF export does not support rope_type {rope_type!r} (config.json rope parameters)")
    if arch == "llama":
        writer.add_vocab_size(int(config["vocab_size"]))
        writer.add_rope_dimension_count(_head_dim(config))
    if arch == "gemma3":
        _write_gemma3_hparams(writer, config, swa)


def _write_gemma3_hparams(writer: Any, config: dict[str, Any], swa: dict[str, Any] | None) -> None:
    """Sliding-window settings. llama.cpp hard-codes Gemma 3's pattern (every 6th layer global): check it holds."""
    layer_types = config.get("layer_types")
    if layer_types:
        expected = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(len(layer_types))]
        if list(layer_types) != expected:
            raise SlmexpError("GGUF export: llama.cpp assumes Gemma 3 layers alternate 5 sliding + 1 global; "
                              f"config.json layer_types differ: {layer_types}")
    if swa and swa.get("rope_theta"):
        writer.add_rope_freq_base_swa(float(swa["rope_theta"]))
    if config.get("sliding_window"):
        writer.add_sliding_window(int(config["sliding_window"]))
    if config.get("final_logit_softcapping"):
        writer.add_final_logit_softcapping(float(config["final_logit_softcapping"]))
    if config.get("attn_logit_softcapping"):
        raise SlmexpError("GGUF export: Gemma 3 with attn_logit_softcapping is not supported by llama.cpp")


def _safetensors_files(hf_dir: Path) -> list[Path]:
    files = sorted(Path(hf_dir).glob("*.safetensors"))
    if not files:
        raise SlmexpError(f"{hf_dir}: no *.safetensors files (GGUF export reads safetensors only)")
    return files


def _tensor_plan(hf_dir: Path, config: dict[str, Any], arch: str) -> list[_Tensor]:
    """Every tensor to write, in order, with its GGUF name; unknown tensors fail loudly instead of being dropped."""
    import gguf
    from safetensors import safe_open

    n_layers = int(config["num_hidden_layers"])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], n_layers)
    tied = bool(config.get("tie_word_embeddings", arch == "gemma3"))
    plan = []
    for file in _safetensors_files(hf_dir):
        with safe_open(str(file), framework="pt") as f:
            for hf_name in f.keys():  # noqa: SIM118 - safe_open is not a dict
                name = hf_name.replace("language_model.", "")
                if _skipped(name) or (tied and name == "lm_head.weight"):
                    continue
                gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
                if gguf_name is None:
                    raise SlmexpError(f"GGUF export: no llama.cpp name for tensor {hf_name!r} ({arch}, {file.name})")
                shape = tuple(f.get_slice(hf_name).get_shape())
                f32 = len(shape) <= 1 or gguf_name.endswith(("_norm.weight", ".bias"))
                plan.append(_Tensor(hf_name, gguf_name, file, shape, f32))
    if _llama3_rope(config, arch):
        plan.append(_Tensor("<rope_freqs>", "rope_freqs.weight", Path(), (_head_dim(config) // 2,), True))
    return plan


def _skipped(name: str) -> bool:
    """Buffers llama.cpp recomputes, and the vision half of a multimodal checkpoint."""
    return name.endswith("rotary_emb.inv_freq") or any(s in name for s in ("vision_tower", "multi_modal_projector"))


def _llama3_rope(config: dict[str, Any], arch: str) -> bool:
    return arch == "llama" and str(_rope(config)[0].get("rope_type", "")).lower() == "llama3"


def _tensor_data(plan: list[_Tensor], config: dict[str, Any], arch: str) -> Iterator[Any]:
    """Yield each tensor of `plan` as a numpy array in GGUF layout and dtype, loading one at a time."""
    import numpy as np
    import torch
    from safetensors import safe_open

    handles: dict[Path, Any] = {}
    try:
        for t in plan:
            if t.hf_name == "<rope_freqs>":
                data = _llama3_rope_factors(config)
            else:
                if t.file not in handles:
                    handles[t.file] = safe_open(str(t.file), framework="pt").__enter__()
                data = _to_llama_cpp_layout(handles[t.file].get_tensor(t.hf_name).to(torch.float32), t.hf_name,
                                            config, arch)
            yield data.numpy().astype(np.float32 if t.f32 else np.float16)
    finally:
        for h in handles.values():
            h.__exit__(None, None, None)


def _to_llama_cpp_layout(data: Any, hf_name: str, config: dict[str, Any], arch: str) -> Any:
    """The per-architecture weight rewrites of llama.cpp's converter.

    llama: HF stores q/k rows split into rotary halves (rotate_half); llama.cpp's llama graph rotates adjacent
    pairs, so the rows are interleaved back (`LlamaModel.permute`). qwen2 and gemma3 use NeoX-style rope in
    llama.cpp, which matches HF's layout. gemma3: HF's Gemma3RMSNorm computes `x * (1 + w)`, llama.cpp `x * w`.
    """
    if arch == "llama" and hf_name.endswith(("q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias")):
        n_head = int(config["num_attention_heads"])
        if ".k_proj." in hf_name:
            n_head = int(config.get("num_key_value_heads") or n_head)
        return data.reshape(n_head, 2, data.shape[0] // n_head // 2, *data.shape[1:]).swapaxes(1, 2).reshape(
            data.shape)
    if arch == "gemma3" and hf_name.endswith("norm.weight"):
        return data + 1.0
    return data


def _llama3_rope_factors(config: dict[str, Any]) -> Any:
    """Llama 3.1+ frequency-dependent rope scaling, as the `rope_freqs` tensor llama.cpp multiplies in."""
    import math

    import torch

    rp = _rope(config)[0]
    dim = _head_dim(config)
    freqs = 1.0 / (float(rp.get("rope_theta", 10000.0)) ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor = float(rp.get("factor", 8.0))
    low, high = float(rp.get("low_freq_factor", 1.0)), float(rp.get("high_freq_factor", 4.0))
    old_ctx = float(rp.get("original_max_position_embeddings", 8192))
    out = []
    for freq in freqs.tolist():
        wavelen = 2 * math.pi / freq
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(out, dtype=torch.float32)


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    import logging

    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
