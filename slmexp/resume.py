"""Resuming a job: a run dir whose run.json finished with the same fingerprint is kept, not redone.

Why here and not in the job: re-running a sweep (`make run` twice, a SLURM array resubmitted) must cost nothing for
the jobs that finished, yet a finished record still follows what changed around it without recomputing anything
measured: a new cost profile (cost from the stored speed), other claims of the sweep, the arm name records made
before runs named their arm lacked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from slmexp.record import RECORD_NAME, RunRecord, load


def finished_record(run_dir: Path, fp: str) -> dict[str, Any] | None:
    """The run.json already in run_dir if it finished with the same fingerprint (a crashed or changed job reruns)."""
    path = Path(run_dir) / RECORD_NAME
    if not path.exists():
        return None
    try:
        rec = load(path)
    except (OSError, ValueError):
        return None
    run = rec.get("run") or {}
    return rec if run.get("status") == "finished" and run.get("fingerprint") == fp else None


def refresh(previous: dict[str, Any], cfg: DictConfig, container: dict[str, Any], run_dir: Path,
            arm: str | None) -> dict[str, Any]:
    """The finished record brought up to date (saved only when something changed), marked `run.skipped`."""
    from slmexp.fingerprint import refresh_cost
    from slmexp.report.claims import refresh as refresh_claims

    changed = refresh_cost(previous, cfg, container)  # only the price changed: new cost from the stored speed
    changed = refresh_claims(previous, container) or changed  # or the sweep now states other claims
    if "arm" not in previous["run"] and arm:  # a record made before runs named their arm
        previous["run"]["arm"], changed = arm, True
    if changed:
        RunRecord(run_dir, previous).save()
    previous["run"]["skipped"] = True
    return previous
