"""The routed serving stage: this SLM answers, router.llm takes what it is unsure of (slmexp.router); the
alternative to slmexp.stages.serve, with the same inputs."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from slmexp.record import RunRecord
from slmexp.stages import Timer
from slmexp.stages.serve import Served
from slmexp.stages.validate import Plan


def run(cfg: DictConfig, plan: Plan, served: Served, run_dir: Path, record: RunRecord, stage: Timer,
        peaks: dict[str, float]) -> None:
    """The routed system: this SLM answers, router.llm takes what it is unsure of (slmexp.router)."""
    from slmexp import decoding, router
    from slmexp.runtimes import build_runtime

    with stage("route"):
        router.run(cfg, plan.task, run_dir, record, lambda: decoding.attach(
            build_runtime(cfg, served.model_path, served.runtime_adapter, served.artifact), plan.constraints))
    if record.data.get("speed") is not None:
        record.data["speed"]["peak_rss_by_stage_mb"] = peaks
        record.save()
