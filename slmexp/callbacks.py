"""Hydra callbacks: the sweep ends in its comparison table without a second command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("slmexp")


class ReportCallback(Callback):
    """After a multirun, write comparison.md/.csv/.tex and plots into the sweep dir (`slmexp report DIR` redoes it)."""

    def __init__(self, baseline: str | None = None, enabled: bool = True) -> None:
        self.baseline = baseline
        self.enabled = enabled

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        from slmexp.report import write_report

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            paths = write_report(sweep_dir, baseline=self.baseline)
        except Exception:  # the runs are safe on disk; the report can be rebuilt later
            log.exception("report failed; rebuild it with: slmexp report %s", sweep_dir)
            return
        from slmexp.tracking import log_sweep

        log_sweep(config.get("logger"), sweep_dir, paths)
        log.info("comparison table: %s", paths.get("md"))
        print(Path(paths["md"]).read_text())
