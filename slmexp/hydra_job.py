"""What Hydra says about the running job: its run dir, sweep dir and number, and the `arm=` option it composed.

Read in one place so the job (slmexp.pipeline) and the CLI (slmexp.cli) work the same inside a Hydra app and outside
one (tests, benchmarks call `run_job` directly): outside, a fresh ad-hoc run dir and no arm.
"""

from __future__ import annotations

import time
from pathlib import Path


def context() -> tuple[Path, str | None, int | None, bool]:
    """(run dir, sweep dir, job number, multirun?) from Hydra, or a fresh dir when called outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        multirun = hc.mode == RunMode.MULTIRUN
        return (Path(hc.runtime.output_dir), hc.sweep.dir if multirun else None,
                hc.job.num if multirun else None, multirun)
    except ValueError:
        return Path("outputs") / "adhoc" / time.strftime("%Y-%m-%d_%H-%M-%S"), None, None, False


def arm_choice() -> str | None:
    """The `arm=` option this job composed (Hydra's group choice; it is not a config key), or None."""
    try:
        from hydra.core.hydra_config import HydraConfig

        arm = HydraConfig.get().runtime.choices.get("arm")
    except ValueError:  # not inside a Hydra app
        return None
    return str(arm) if arm else None
