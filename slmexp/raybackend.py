"""Sweeps on a Ray cluster through Ray's joblib backend (`hydra/launcher=ray`).

Why not hydra-ray-launcher: every release of it conflicts with the pinned stack (1.2.1/1.2.2 need cloudpickle<3,
joblib 1.6.0 needs cloudpickle>=3.0; older ones pin boto3 to 2020-2022 versions), see docs/sweeps-and-report.md#ray.
Ray itself (2.60) installs next to the stack, and hydra-joblib-launcher hands its jobs to any joblib backend: Ray's
registers as "ray" and runs each job as a Ray task on the cluster that `RAY_ADDRESS` (or `ray.address`) names, or
on a Ray instance started on this machine when neither is set.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("slmexp")


class RayBackendCallback(Callback):
    """Before the launcher starts the jobs: connect to Ray and register its joblib backend (a no-op unless the
    launcher asks for `backend: ray`)."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if str(config.hydra.launcher.get("backend")) != "ray":
            return
        try:
            import ray
            from ray.util.joblib import register_ray
        except ImportError as e:
            from slmexp.origin import fail

            raise fail("hydra/launcher", f"ray is not installed ({e}); pip install -e '.[ray]'") from e
        register_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, log_to_driver=False)
        log.info("ray: %s, %s CPUs", ray.get_runtime_context().gcs_address, ray.cluster_resources().get("CPU"))
