"""Olive (`quantization.olive`, e.g. quantization=olive-gptq-int4): quantize the PyTorch checkpoint with an Olive
workflow before the ONNX export, calibrated on the task's own train split.

Why a subprocess and a local calibration file: `olive run` logs heavily and keeps the model in memory, and Olive's
default calibration set (wikitext) is on the Hub; the run's train split is a local JSONL file, handed over as a
`Calibration` by the pipeline. The builder then exports Olive's quantized checkpoint (`quant_method: olive`, which
it reads natively). Olive's own ModelBuilder pass is not used: olive-ai 0.13 imports
`onnxruntime_genai.models.quantized_model`, which onnxruntime-genai 0.18 no longer has.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slmexp.errors import ConfigError, SlmexpError

if TYPE_CHECKING:
    from slmexp.quantize.base import Calibration

OLIVE_HINT = "pip install -c constraints.txt olive-ai   (the `olive` extra)"
# `quantization.olive.algorithm` -> Olive's PyTorch pass (each writes a `quant_method: olive` checkpoint).
OLIVE_PASSES = {"gptq": "Gptq", "rtn": "Rtn"}
_MARKER = "slmexp_export.json"


def check_olive(olive_cfg: Any) -> None:
    """Config-time check of `quantization.olive` (find_spec only): Olive installed, a known algorithm."""
    from slmexp.origin import fail

    if importlib.util.find_spec("olive") is None:
        raise fail("quantization.olive", f"needs Olive (olive-ai), not installed in this interpreter "
                                         f"({sys.executable}); {OLIVE_HINT}")
    algorithm = olive_cfg.get("algorithm")
    if algorithm not in OLIVE_PASSES:
        raise fail("quantization.olive.algorithm", f"{algorithm!r} is not one of {', '.join(OLIVE_PASSES)}")


def olive_quantize(hf_dir: Path, cache_dir: Path, olive_cfg: dict[str, Any],
                   calib: Calibration) -> tuple[Path, dict[str, Any]]:
    """Quantize the PyTorch checkpoint with an Olive workflow, calibrated on `calib` (JSONL file, text field).

    Returns Olive's quantized HF checkpoint folder (cached under `cache_dir/olive/<key>`) and the record's
    `olive` block. The workflow is written to `workflow.json` next to the output, so `olive run --config` on it
    reproduces the step by hand.
    """
    from importlib.metadata import version

    from slmexp.cache import checkpoint_hash, publish_dir, sha256_file

    data_file, text_field = Path(calib.data_file), str(calib.text_field)
    algorithm = str(olive_cfg.get("algorithm", "gptq"))
    if algorithm not in OLIVE_PASSES:
        raise ConfigError("quantization.olive.algorithm", f"{algorithm!r} is not one of {', '.join(OLIVE_PASSES)}")
    params = {"bits": int(olive_cfg.get("bits", 4)), "group_size": int(olive_cfg.get("group_size", 32))}
    samples, seq_len = int(olive_cfg.get("calibration_samples", 16)), int(olive_cfg.get("max_seq_len", 128))
    h = checkpoint_hash(hf_dir)
    h.update(json.dumps({"algorithm": algorithm, **params, "samples": samples, "seq_len": seq_len,
                         "data": sha256_file(data_file), "text_field": text_field, "olive": version("olive-ai")},
                        sort_keys=True).encode())
    out = Path(cache_dir).expanduser() / "olive" / h.hexdigest()
    info = {"algorithm": algorithm, **params, "calibration_data": str(data_file), "calibration_samples": samples,
            "max_seq_len": seq_len, "olive": version("olive-ai")}
    data_config = {"name": "calibration", "type": "HuggingfaceContainer",
                   "load_dataset_config": {"data_name": "json", "data_files": [str(data_file)], "split": "train"},
                   "pre_process_data_config": {"text_cols": text_field, "chat_template": False, "max_seq_len": seq_len,
                                               "add_special_tokens": False, "max_samples": samples},
                   "dataloader_config": {"batch_size": 1}, "post_process_data_config": {}}
    quant_pass: dict[str, Any] = {"type": OLIVE_PASSES[algorithm], **params}
    if algorithm == "gptq":
        quant_pass["data_config"] = "calibration"

    def build(tmp: Path) -> None:
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

        t0 = time.perf_counter()
        log_path = tmp / "olive.log"
        # `olive` resolves relative strings that name existing paths, so it runs from its own empty folder.
        with Console(stderr=True).status(f"Olive {algorithm} ({params['bits']}-bit) on {hf_dir.name}, calibrated "
                                         f"on {samples} examples of {data_file.name}"), open(log_path, "w") as log:
            rc = subprocess.run([sys.executable, "-m", "olive", "run", "--config", str(tmp / "workflow.json")],
                                stdout=log, stderr=subprocess.STDOUT, cwd=tmp, check=False,
                                env={**os.environ, "HF_HUB_OFFLINE": "1"}).returncode
        if rc != 0 or not (tmp / "model" / "config.json").exists():
            raise tool_failed(f"the Olive workflow {tmp / 'workflow.json'} produced no model (exit code {rc})",
                              log_path, out)
        (tmp / _MARKER).write_text(json.dumps({"olive_s": round(time.perf_counter() - t0, 2)}))

    cached = publish_dir(out, build, lambda e: (e / "model" / "config.json").exists() and (e / _MARKER).exists())
    marker = json.loads((out / _MARKER).read_text())
    if not cached:
        from rich.console import Console

        Console(stderr=True).print(f"Olive {algorithm} done in {marker['olive_s']:.1f} s -> {out / 'model'}")
    return out / "model", {**info, **marker, "cached": cached}


def tool_failed(message: str, log_path: Path, entry: Path) -> SlmexpError:
    """The error for a failed export subprocess, with its log's tail; the log is kept as `<entry>.failed.log`, since
    the entry's `.partial` folder is removed on failure."""
    kept = entry.with_name(entry.name + ".failed.log")
    shutil.copyfile(log_path, kept)
    tail = [ln for ln in kept.read_text(errors="replace").splitlines() if ln.strip()][-8:]
    return SlmexpError(f"{message}; full log: {kept}:\n  " + "\n  ".join(tail))
