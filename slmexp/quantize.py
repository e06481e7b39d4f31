"""The quantization stage: bitsandbytes (weights quantized on load) and GGUF (llama.cpp files written here).

GGUF path, in two steps:
1. `write_f16_gguf` turns the HF safetensors checkpoint into an F16 GGUF with `gguf.GGUFWriter` (PyPI gguf-py).
   llama.cpp's own `convert_hf_to_gguf.py` is not on PyPI (it ships only inside the llama.cpp source tree, with
   its own gguf-py), so the few rules it applies to our architectures are reproduced here and kept next to their
   reason: llama q/k rows permuted into llama.cpp's rotary layout, Gemma 3 norms stored as `1 + w`, tied
   embeddings not duplicated, tokenizer written as llama.cpp expects it. Tensors are streamed one at a time, so
   memory stays at one tensor even for a 1.5B fp32 checkpoint.
2. `llama_cpp.llama_model_quantize` requantizes that F16 file to the asked type (K-quants included): the same
   code path as the `llama-quantize` tool, seconds for a small model. No quantizer is written here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from slmexp.errors import ConfigError, SlmexpError

# ---------------------------------------------------------------------------------------------------------------------
# bitsandbytes (kind: bnb): applied by transformers while loading, so nothing is written to disk.
# ---------------------------------------------------------------------------------------------------------------------


def bnb_config(config: dict[str, Any], device: str) -> Any:
    """A `transformers.BitsAndBytesConfig` from `quantization.config`; refuse clearly where bnb cannot run."""
    from hydra.utils import instantiate

    try:
        import bitsandbytes  # noqa: F401
    except Exception as e:
        raise ConfigError("quantization.kind", f"bitsandbytes failed to import ({e}); use quantization=none or a "
                                               "GGUF type with runtime=llamacpp") from e
    if device == "cpu":
        from importlib.metadata import version

        from packaging.version import Version

        if Version(version("bitsandbytes")) < Version("0.45"):
            raise ConfigError("quantization.kind", "bitsandbytes on CPU needs >= 0.45 (multi-backend); use a GGUF "
                                                   "type with runtime=llamacpp instead")
    return instantiate(config, _convert_="all")


# ---------------------------------------------------------------------------------------------------------------------
# GGUF (kind: gguf)
# ---------------------------------------------------------------------------------------------------------------------

# `quantization.gguf_type` -> the name of llama.cpp's `llama_ftype` constant in `llama_cpp`. Names, not values, so
# that config validation works without llama-cpp-python installed; each one was checked to quantize and load.
GGUF_TYPES: dict[str, str] = {
    "f16": "LLAMA_FTYPE_MOSTLY_F16",
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q5_k_s": "LLAMA_FTYPE_MOSTLY_Q5_K_S",
    "q5_1": "LLAMA_FTYPE_MOSTLY_Q5_1",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "q3_k_m": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "q2_k": "LLAMA_FTYPE_MOSTLY_Q2_K",
}

# HF `model_type` -> llama.cpp architecture name. Anything else is refused: an unknown architecture would need its
# own tensor rules, and a silently wrong GGUF only shows up as bad accuracy much later.
SUPPORTED_ARCHS: dict[str, str] = {"llama": "llama", "qwen2": "qwen2", "gemma3": "gemma3", "gemma3_text": "gemma3"}

INSTALL_HINT = 'pip install -e ".[gguf]"'


@dataclass
class GgufArtifact:
    """The GGUF file a run serves, and what it took to make it (for the run record).

    `tensor_types` counts the file's tensors per GGML type: K-quants need rows that are a multiple of 256, so on
    small models (SmolLM2-135M: hidden 576) llama.cpp falls back to other types for most tensors, and the
    record should show what was actually served.
    """

    path: Path
    gguf_type: str
    bytes: int
    f16_path: Path
    f16_bytes: int
    export_s: float
    tensor_types: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        d["f16_path"] = str(self.f16_path)
        return d


def validate_gguf_type(gguf_type: str) -> str:
    """Return `gguf_type` lower-cased, or raise a ConfigError listing the valid types."""
    name = str(gguf_type).lower()
    if name not in GGUF_TYPES:
        raise ConfigError("quantization.gguf_type", f"unknown GGUF type {gguf_type!r}; valid: {', '.join(GGUF_TYPES)}")
    return name


def export_gguf(hf_dir: Path, out_dir: Path, gguf_type: str) -> GgufArtifact:
    """Write `out_dir/model-f16.gguf` from an HF checkpoint, then requantize it to `out_dir/model-<type>.gguf`.

    The F16 file is kept: it is the reference the quantized file is compared against, and `f16` runs serve it
    directly. The type is checked first, so a typo fails before minutes of export.
    """
    gguf_type = validate_gguf_type(gguf_type)
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    f16_path = write_f16_gguf(hf_dir, out_dir / "model-f16.gguf")
    path = f16_path if gguf_type == "f16" else requantize(f16_path, out_dir / f"model-{gguf_type}.gguf", gguf_type)
    check_gguf(path)
    return GgufArtifact(path, gguf_type, path.stat().st_size, f16_path, f16_path.stat().st_size,
                        time.perf_counter() - t0, tensor_types(path))


def tensor_types(path: str | Path) -> dict[str, int]:
    """How many tensors of each GGML type (F32, F16, Q4_K, ...) a GGUF file holds."""
    from collections import Counter

    import gguf

    counts = Counter(gguf.GGMLQuantizationType(t).name for _name, t, _start, _n in read_tensor_table(path))
    return dict(counts.most_common())


def check_gguf(path: str | Path) -> None:
    """Raise SlmexpError naming the file if it is missing, not GGUF, unreadable or truncated.

    Reads only the header and tensor table (0.2 s for Qwen2.5-1.5B), so a truncated download or an interrupted
    export is caught here, with the file named, rather than as a crash inside llama.cpp.
    """
    path = Path(path)
    if not path.is_file():
        raise SlmexpError(f"GGUF file not found: {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise SlmexpError(f"{path} is not a GGUF file (starts with {magic!r}, expected b'GGUF')")
    try:
        table = read_tensor_table(path)
    except Exception as e:
        raise SlmexpError(f"{path}: corrupt or truncated GGUF header ({type(e).__name__}: {e}); "
                          "re-create or re-download it") from None
    size = path.stat().st_size
    for name, _type, start, n_bytes in table:
        if start + n_bytes > size:
            raise SlmexpError(f"{path}: truncated GGUF: tensor {name} ends at byte {start + n_bytes:,} but the "
                              f"file has {size:,} bytes; re-create or re-download it")
    if not table:
        raise SlmexpError(f"{path}: GGUF has no tensors")


# GGUF metadata value types -> struct format of fixed-size values (8 = string and 9 = array are variable).
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def read_tensor_table(path: str | Path) -> list[tuple[str, int, int, int]]:
    """(name, GGML type, absolute data offset, bytes) of every tensor, from the GGUF header alone.

    A small reader rather than `gguf.GGUFReader`, which builds a numpy view per metadata element and needs
    ~6 s for a 151k-token vocabulary (Qwen2.5); this one skips the metadata values (0.2 s).
    """
    import mmap
    import struct

    import gguf

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        pos = 8  # magic, version
        n_tensors, n_kv = struct.unpack_from("<QQ", buf, pos)
        pos += 16

        def string(pos: int) -> tuple[str, int]:
            (n,) = struct.unpack_from("<Q", buf, pos)
            if pos + 8 + n > len(buf):
                raise ValueError("string runs past the end of the file")
            return bytes(buf[pos + 8 : pos + 8 + n]).decode("utf-8", "replace"), pos + 8 + n

        def skip_value(vtype: int, pos: int) -> tuple[Any, int]:
            if vtype in _GGUF_SCALARS:
                fmt = "<" + _GGUF_SCALARS[vtype]
                return struct.unpack_from(fmt, buf, pos)[0], pos + struct.calcsize(fmt)
            if vtype == 8:
                return string(pos)
            if vtype != 9:
                raise ValueError(f"unknown metadata value type {vtype}")
            item_type, count = struct.unpack_from("<IQ", buf, pos)
            pos += 12
            if item_type in _GGUF_SCALARS:
                return None, pos + count * struct.calcsize("<" + _GGUF_SCALARS[item_type])
            for _ in range(count):
                _item, pos = skip_value(item_type, pos)
            return None, pos

        alignment = gguf.GGUF_DEFAULT_ALIGNMENT
        for _ in range(n_kv):
            key, pos = string(pos)
            (vtype,) = struct.unpack_from("<I", buf, pos)
            value, pos = skip_value(vtype, pos + 4)
            if key == "general.alignment":
                alignment = int(value)
        infos = []
        for _ in range(n_tensors):
            name, pos = string(pos)
            (n_dims,) = struct.unpack_from("<I", buf, pos)
            dims = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
            ggml_type, offset = struct.unpack_from("<IQ", buf, pos + 4 + 8 * n_dims)
            pos += 4 + 8 * n_dims + 12
            block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ggml_type)]
            n_elements = 1
            for d in dims:
                n_elements *= d
            infos.append((name, ggml_type, offset, n_elements // block * type_size))
        data_start = -(-pos // alignment) * alignment
    return [(name, t, data_start + offset, n) for name, t, offset, n in infos]


def requantize(f16_path: Path, out_path: Path, gguf_type: str) -> Path:
    """Quantize an F16 GGUF with llama.cpp's own quantizer (K-quants need it: gguf-py has none)."""
    import ctypes
    import logging

    from rich.console import Console

    llama_cpp = import_llama_cpp()
    gguf_type = validate_gguf_type(gguf_type)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, GGUF_TYPES[gguf_type])
    params.nthread = available_cores()
    tmp = out_path.with_name(out_path.name + ".partial")
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp logs every tensor at INFO
    console = Console(stderr=True)
    with console.status(f"quantizing {f16_path.name} -> {out_path.name}"), _fd2_captured() as log:
        rc = llama_cpp.llama_model_quantize(str(f16_path).encode(), str(tmp).encode(), ctypes.byref(params))
    if rc != 0:
        tmp.unlink(missing_ok=True)
        tail = "\n  ".join(log[-5:])
        raise SlmexpError(f"llama.cpp could not quantize {f16_path} to {gguf_type} (return code {rc})"
                          + (f":\n  {tail}" if tail else ""))
    for line in log:
        if "fallback quantization" in line:  # one summary line instead of one warning per tensor
            console.print(f"[yellow]{gguf_type}:[/] {line.split('WARNING:')[-1].strip()} "
                          "(row size not a multiple of the K-quant block of 256)")
    os.replace(tmp, out_path)
    return out_path


@contextlib.contextmanager
def _fd2_captured() -> Iterator[list[str]]:
    """Collect what C code writes to file descriptor 2 (llama.cpp's quantizer warns per tensor with fprintf)."""
    import sys
    import tempfile

    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode("utf-8", "replace").splitlines())


def import_llama_cpp() -> Any:
    """`llama_cpp`, or an error that says how to install it (it is an optional extra: it compiles from source)."""
    try:
        import llama_cpp
    except ImportError as e:
        raise SlmexpError(f"GGUF quantization and runtime=llamacpp need llama-cpp-python ({e}); "
                          f"install it with: {INSTALL_HINT}") from None
    return llama_cpp


def available_cores() -> int:
    """CPU cores this process may use (llama.cpp's own default is half the machine's cores)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# --- Ollama: a Modelfile next to an exported GGUF -----------------------------------------------------------------

# Ollama's Go template for ChatML (SmolLM2, Qwen2.5): the system turn, then user/assistant turns, then the assistant's
# turn opened. Ollama fills .System from the Modelfile's SYSTEM when a request brings no system message, as the HF
# templates insert their default one.
_CHATML_TEMPLATE = """{{ if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ range .Messages }}{{ if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
<|im_start|>assistant
{{ else if eq .Role "assistant" }}{{ .Content }}<|im_end|>
{{ end }}{{ end }}"""


def _chatml_default_system(tokenizer: Any) -> tuple[bool, str | None]:
    """Whether the HF chat template renders a single user turn exactly as `_CHATML_TEMPLATE` does, and the system
    prompt it inserts by itself (SmolLM2: "You are a helpful AI assistant named SmolLM..."), if any."""
    probe = "PROBE-7f3a"
    try:
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": probe}], tokenize=False,
                                                 add_generation_prompt=True)
    except Exception:
        return False, None
    tail = f"<|im_start|>user\n{probe}<|im_end|>\n<|im_start|>assistant\n"
    if not rendered.endswith(tail):
        return False, None
    head = rendered[: -len(tail)]
    if not head:
        return True, None
    if head.startswith("<|im_start|>system\n") and head.endswith("<|im_end|>\n") and head.count("<|im_start|>") == 1:
        return True, head[len("<|im_start|>system\n"): -len("<|im_end|>\n")]
    return False, None


def write_ollama_modelfile(gguf_path: Path, hf_dir: Path) -> Path:
    """Write `Modelfile` next to `gguf_path`, so `ollama create NAME -f Modelfile` serves this exact file.

    The GGUF slmexp writes carries no `tokenizer.chat_template`, so Ollama cannot detect a template by itself:
    for ChatML models (checked by rendering the HF template) the Modelfile states TEMPLATE, the template's own
    default SYSTEM prompt and the end-of-turn stop; other templates are left to the user, and the file says so.
    Temperature 0: slmexp evaluates with greedy decoding.
    """
    from transformers import AutoTokenizer

    gguf_path = Path(gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    chatml, system = _chatml_default_system(tokenizer)
    stops = [t for t in dict.fromkeys(["<|im_end|>" if chatml else None, tokenizer.eos_token]) if t]
    lines = [f"# Ollama Modelfile for {gguf_path.name}, written by slmexp from {hf_dir}.",
             "# Serve it (with `ollama serve` running):  ollama create NAME -f Modelfile   "
             "then: slmexp runtime=ollama runtime.model=NAME",
             f"FROM ./{gguf_path.name}"]
    if chatml:
        lines.append(f'TEMPLATE """{_CHATML_TEMPLATE}"""')
        if system:
            lines.append(f'SYSTEM """{system}"""')
    else:
        lines.append("# No TEMPLATE: this chat template is not ChatML; write its Go template here "
                     "(https://github.com/ollama/ollama/blob/main/docs/template.md), or prompts go in raw.")
    lines += [f'PARAMETER stop "{stop}"' for stop in stops]
    lines += ["PARAMETER temperature 0", "PARAMETER num_ctx 2048"]
    out = gguf_path.parent / "Modelfile"
    out.write_text("\n".join(lines) + "\n")
    return out


# --- HF checkpoint -> F16 GGUF ---------------------------------------------------------------------------------------


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
        _write_vocab(writer, hf_dir, config)
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


# --- tokenizer -> GGUF -----------------------------------------------------------------------------------------------

# Byte-level BPE pre-tokenizers (tokenizer.json `pre_tokenizer`) -> llama.cpp's `tokenizer.ggml.pre`. llama.cpp
# re-implements each pre-tokenizer by name, so an unrecognised one is refused: a wrong guess would tokenize
# differently from HF and every comparison would be off.
_QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
                r"|\s+(?!\S)|\s+")
_LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def _pre_tokenizer_signature(pre: dict[str, Any] | None) -> tuple[str, ...]:
    steps = (pre or {}).get("pretokenizers", [pre]) if (pre or {}).get("type") == "Sequence" else [pre]
    sig = []
    for s in steps:
        if not s:
            continue
        kind = s["type"]
        if kind == "ByteLevel":
            sig.append("ByteLevel(regex)" if s.get("use_regex", True) else "ByteLevel")
        elif kind == "Digits":
            sig.append("Digits(individual)" if s.get("individual_digits") else "Digits")
        elif kind == "Split":
            pattern = s.get("pattern", {})
            regex = pattern.get("Regex")
            sig.append({_QWEN2_REGEX: "Split(qwen2)", _LLAMA3_REGEX: "Split(llama3)"}.get(regex, f"Split({pattern})"))
        else:
            sig.append(kind)
    return tuple(sig)


_BPE_PRE = {
    ("ByteLevel(regex)",): "gpt-2",
    ("Digits(individual)", "ByteLevel(regex)"): "smollm",
    ("Split(qwen2)", "ByteLevel"): "qwen2",
    ("Split(llama3)", "ByteLevel"): "llama-bpe",
}


def _bpe_pre(tokenizer_json: dict[str, Any], where: Path) -> str:
    sig = _pre_tokenizer_signature(tokenizer_json.get("pre_tokenizer"))
    if sig not in _BPE_PRE:
        raise SlmexpError(f"GGUF export: {where}: byte-level BPE pre-tokenizer {' + '.join(sig) or 'none'} has no "
                          f"known llama.cpp equivalent (known: {', '.join(' + '.join(k) for k in _BPE_PRE)})")
    return _BPE_PRE[sig]


def _is_spm_style(tokenizer_json: dict[str, Any]) -> bool:
    """SentencePiece-derived BPE (Gemma): byte fallback and '▁' for spaces, no byte-level alphabet."""
    return bool(tokenizer_json["model"].get("byte_fallback")) and "▁" in json.dumps(
        [tokenizer_json.get("normalizer"), tokenizer_json.get("pre_tokenizer")], ensure_ascii=False)


def _looks_special(text: str) -> bool:
    """llama.cpp's converter marks these added tokens CONTROL even when HF does not flag them special."""
    return (text.startswith("<|") and text.endswith("|>")) or text in ("<pad>", "<mask>")


def _write_vocab(writer: Any, hf_dir: Path, config: dict[str, Any]) -> None:
    """Tokens, types (and scores for SentencePiece-style vocabularies), special ids, BOS/EOS policy, chat template."""
    import gguf

    path = Path(hf_dir) / "tokenizer.json"
    if not path.is_file():
        raise SlmexpError(f"GGUF export needs {path} (a fast tokenizer) to write the vocabulary")
    tj = json.loads(path.read_text(encoding="utf-8"))
    kind = tj["model"]["type"]
    n_vocab = int(config["vocab_size"])
    if kind == "BPE" and _is_spm_style(tj):
        tokens, scores, types = _spm_vocab(tj, n_vocab)
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_add_space_prefix(False)
        writer.add_token_scores(scores)
    elif kind == "BPE":
        tokens, types = _bpe_vocab(tj, n_vocab)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(_bpe_pre(tj, path))
    else:
        raise SlmexpError(f"GGUF export: {path}: tokenizer model {kind!r} is not supported (BPE only)")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(hf_dir, load_merges=kind == "BPE" and not _is_spm_style(tj), n_vocab=len(tokens))
    add_bos, add_eos = _adds_bos_eos(hf_dir)
    special.add_special_token.update({"bos": add_bos, "eos": add_eos})
    special.add_to_gguf(writer, quiet=True)


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


def _bpe_vocab(tj: dict[str, Any], n_vocab: int) -> tuple[list[str], list[int]]:
    """Byte-level BPE: vocab keys as they are (byte-level alphabet); added tokens in plain text."""
    import gguf

    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    types = [gguf.TokenType.UNUSED] * n_vocab
    for text, i in _checked_ids(tj["model"]["vocab"].items(), n_vocab):
        tokens[i], types[i] = text, gguf.TokenType.NORMAL
    for added in tj.get("added_tokens", []):
        text, i = added["content"], added["id"]
        if i < n_vocab:
            special = added.get("special") or _looks_special(text)
            tokens[i] = text
            types[i] = gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED
    return tokens, types


def _spm_vocab(tj: dict[str, Any], n_vocab: int) -> tuple[list[str], list[float], list[int]]:
    """SentencePiece-style vocab for llama.cpp's SPM tokenizer, which merges by highest token *score*.

    HF's tokenizer.json keeps merges but no scores; a token's score is minus the rank of the first merge that
    builds it, so llama.cpp applies merges in the order HF's BPE does.
    """
    import gguf

    merges = tj["model"].get("merges") or []
    rank: dict[str, int] = {}
    for r, m in enumerate(merges):
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        rank.setdefault(a + b, r)
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    scores = [-1000.0] * n_vocab
    types = [gguf.TokenType.UNUSED] * n_vocab
    byte_token = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
    for text, i in _checked_ids(tj["model"]["vocab"].items(), n_vocab):
        tokens[i] = text
        if byte_token.match(text):
            scores[i], types[i] = 0.0, gguf.TokenType.BYTE
        else:
            scores[i], types[i] = -float(rank.get(text, len(merges) + i)), gguf.TokenType.NORMAL
    for added in tj.get("added_tokens", []):
        text, i = added["content"], added["id"]
        if i < n_vocab:
            special = added.get("special") or _looks_special(text)
            tokens[i] = text if special else text.replace("▁", " ")  # llama.cpp matches user tokens on raw text
            scores[i] = -1000.0
            types[i] = gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED
    return tokens, scores, types


def _checked_ids(items: Any, n_vocab: int) -> Iterator[tuple[str, int]]:
    for text, i in items:
        if i >= n_vocab:
            raise SlmexpError(f"GGUF export: token {text!r} has id {i} >= config vocab_size {n_vocab}")
        yield text, i


def _adds_bos_eos(hf_dir: Path) -> tuple[bool, bool]:
    """Whether HF's tokenizer adds BOS / EOS on its own: measured, because llama.cpp's defaults differ per vocab."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir)
    with_special = tok("Hello world")["input_ids"]
    plain = tok("Hello world", add_special_tokens=False)["input_ids"]
    add_bos = tok.bos_token_id is not None and with_special[:1] == [tok.bos_token_id] and plain[:1] != with_special[:1]
    add_eos = tok.eos_token_id is not None and with_special[-1:] == [tok.eos_token_id] and plain[-1:] != [
        tok.eos_token_id]
    return bool(add_bos), bool(add_eos)
