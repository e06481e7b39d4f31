"""The quantize stage as the job sees it: the artifact the runtime serves (a checkpoint, a GGUF or ONNX export, the
shipped GGUF as is), from the quantizer's `prepare`, and the `quantization` block."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from slmexp.record import RunRecord
from slmexp.stages import Timer
from slmexp.stages.serve import Served
from slmexp.stages.validate import Plan


def run(cfg: DictConfig, plan: Plan, resolved: Any, eval_path: Any, adapter_path: str | None, run_dir: Path,
        record: RunRecord, stage: Timer) -> Served:
    """The artifact the runtime serves (the quantizer's `prepare`; timed only when there is work)."""
    from slmexp import quantize
    needs = plan.runtime_cls.needs
    shipped = None if resolved is None else resolved.gguf_path
    source = quantize.Source(checkpoint=None if eval_path is None else Path(eval_path), adapter_path=adapter_path,
                             shipped_gguf=shipped, trained=plan.needs_train)
    quantizes = needs not in ("checkpoint", "endpoint") or cfg.quantization.kind != "none"
    with stage("quantize") if quantizes else nullcontext():
        threads = cfg.runtime.get("threads")
        artifact = quantize.prepare(cfg.quantization, needs, source, run_dir, calibration(plan.task),
                                    cache_dir=Path(str(cfg.paths.cache_dir)), threads=int(threads) if threads else None,
                                    runtime_name=str(cfg.runtime.name))
    if artifact.block is not None:
        record.set("quantization", artifact.block)
    if plan.remote or (shipped is not None and artifact.path is not None and Path(artifact.path) == Path(shipped)):
        # The weights served are the endpoint's, or the shipped file itself: nothing was dequantized for them.
        record.data["model"]["weights_provenance"] = None
        record.save()
    return Served(artifact=artifact, model_path=None if eval_path is None else str(eval_path),
                  adapter_path=adapter_path,
                  runtime_adapter=adapter_path if artifact.kind == "checkpoint" else None)  # a file export merged it


def calibration(task: Any) -> Any:
    """The train split as calibration data for quantizers that need it (Olive GPTQ), or None when it has none."""
    from slmexp.quantize import Calibration

    train = (task.cfg.get("data") or {}).get("train")
    if not train:
        return None
    return Calibration(Path(str(train)), str((task.cfg.get("fields") or {}).get("text") or "text"))
