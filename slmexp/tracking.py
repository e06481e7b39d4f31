"""Experiment tracking (`logger=wandb`): one wandb run per job, one per sweep for the comparison table.

The run directory stays the record; wandb mirrors it for reviewers. So a job is logged once it has ended
(finished or failed), from its run.json: config (resolved and already redacted), metrics, speed and cost in the
summary, the training curve as history, per-example predictions as a table. A job skipped on resume is not logged
again. A tracker failure is logged as a warning and never fails a job: nothing computed is lost to it.

Offline by default: runs land under the job dir (`<run dir>/wandb/offline-run-*`), and `wandb sync DIR` publishes
them later. wandb 0.31: the config goes to `wandb.init(config=...)`; `wandb sync` has no `--sync-all` any more.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from slmexp import secrets
from slmexp.cache import read_jsonl
from slmexp.record import flatten
from slmexp.record_types import MetricsBlock, ModelBlock, RunBlock, RunJson

log = logging.getLogger("slmexp")


def enabled(logger_cfg: DictConfig | None) -> bool:
    return logger_cfg is not None and logger_cfg.get("name") == "wandb"


def job_type(record: RunJson) -> str:
    """The job's heaviest stage: train (an adapter was trained), quantize, or eval."""
    cfg = record.get("config") or {}
    if (cfg.get("adapter") or {}).get("name", "none") != "none":
        return "train"
    if (cfg.get("quantization") or {}).get("kind", "none") != "none":
        return "quantize"
    return "eval"


def _init(logger_cfg: DictConfig, *, dir: Path, name: str, group: str | None, job: str, config: dict[str, Any],
          tags: list[str]) -> Any:
    import wandb

    mode = os.environ.get("WANDB_MODE") or str(logger_cfg.get("mode") or "offline")
    dir.mkdir(parents=True, exist_ok=True)
    # wandb records the process's command line (Settings._args reads sys.argv) in the run's metadata: a key given
    # as an override (`+runtime.api_key=...`, `+runtime.headers.X=...`) would land in the .wandb file. So wandb
    # sees the redacted command line; the config comes from run.json, already redacted.
    real_argv = sys.argv
    sys.argv = secrets.argv()
    try:
        return wandb.init(project=str(logger_cfg.project), entity=logger_cfg.get("entity"), dir=str(dir), name=name,
                          group=group, job_type=job, config=config, tags=tags, mode=mode, reinit="create_new",
                          settings=wandb.Settings(silent=True, console="off", x_disable_stats=True))
    finally:
        sys.argv = real_argv


def log_job(logger_cfg: DictConfig | None, record: RunJson, run_dir: Path) -> Path | None:
    """Mirror one ended job into a wandb run; returns the wandb run's local dir (None when disabled/failed)."""
    if not enabled(logger_cfg) or (record.get("run") or {}).get("skipped"):
        return None
    try:
        return _log_job(logger_cfg, record, Path(run_dir))
    except Exception as e:  # the run dir holds everything; the mirror can be redone with `wandb sync`
        log.warning("wandb logging failed (run kept in %s): %s: %s", run_dir, type(e).__name__, e)
        return None


def _log_job(logger_cfg: DictConfig, record: RunJson, run_dir: Path) -> Path:
    import wandb

    run: RunBlock = record["run"]
    sweep = run.get("sweep")
    group = logger_cfg.get("group") or (Path(sweep).name if sweep else None)
    tags = [str(t) for t in (logger_cfg.get("tags") or [])]
    name = f"{run['name']}" + (f"-{run['job']}" if run.get("job") is not None else "")
    wb = _init(logger_cfg, dir=run_dir, name=name, group=group, job=job_type(record),
               config=record.get("config") or {}, tags=tags)
    try:
        train = record.get("train") or {}
        history = Path(run_dir) / "train" / "log_history.json"
        if train and history.exists():  # the training curve, at its own steps
            for row in json.loads(history.read_text()):
                step = row.get("step")
                values = {f"train/{k}": v for k, v in row.items() if isinstance(v, int | float) and k != "step"}
                if step is not None and values:
                    wb.log(values, step=int(step))
        summary: dict[str, Any] = {"status": run["status"], "wall_s": run.get("wall_s")}
        metrics: MetricsBlock = record.get("metrics") or {}
        for k, v in (metrics.get("values") or {}).items():
            summary[f"metrics/{k}"] = v
        if metrics.get("primary") in (metrics.get("values") or {}):
            summary["accuracy"] = metrics["values"][metrics["primary"]]
        summary["metrics/n_examples"] = metrics.get("n_examples")
        for block in ("speed", "cost", "quantization", "train"):
            summary.update({f"{block}/{k}": v for k, v in flatten(record.get(block) or {}, sep="/").items()
                            if isinstance(v, int | float | str | bool)})  # W&B summary: scalars only
        model: ModelBlock = record.get("model") or {}
        summary["model/bytes_on_disk"] = model.get("bytes_on_disk")
        if run.get("error"):
            summary["error"] = f"{run['error'].get('stage')}: {run['error'].get('type')}: {run['error'].get('message')}"
        wb.summary.update({k: v for k, v in summary.items() if v is not None})
        samples = Path(run_dir) / str(metrics.get("samples") or "lm_eval/samples.jsonl")
        if logger_cfg.get("log_samples", True) and samples.exists():
            rows = read_jsonl(samples)
            if rows:
                cols = list(rows[0])
                wb.log({"samples": wandb.Table(columns=cols, data=[[str(r.get(c)) for c in cols] for r in rows])})
        out = Path(wb.dir).parent
    finally:
        wb.finish(exit_code=0 if run["status"] == "finished" else 1)
    return out


def log_sweep(logger_cfg: DictConfig | None, sweep_dir: Path, paths: dict[str, Any]) -> Path | None:
    """The sweep's own wandb run (job_type report): the comparison table as a wandb.Table, the plots as images,
    `examples`: one wandb.Table with every arm's answer (and right/wrong) to every example, side by side, and
    `claims` (when the sweep states claims): one row per claim with its verdict, estimate and CI."""
    if not enabled(logger_cfg):
        return None
    try:
        import pandas as pd
        import wandb

        sweep_dir = Path(sweep_dir)
        group = logger_cfg.get("group") or sweep_dir.name
        wb = _init(logger_cfg, dir=sweep_dir, name=f"{group}-comparison", group=group, job="report",
                   config={"sweep_dir": str(sweep_dir)}, tags=[str(t) for t in (logger_cfg.get("tags") or [])])
        try:
            df = pd.read_csv(paths["csv"], keep_default_na=False)
            wb.log({"comparison": wandb.Table(dataframe=df.astype(str))})
            images = {k.removesuffix("_png"): wandb.Image(str(p)) for k, p in paths.items() if k.endswith("_png")}
            if images:
                wb.log(images)
            wb.summary["comparison_md"] = Path(paths["md"]).read_text()
            from slmexp.report.examples import examples_table

            cols, rows = examples_table(sweep_dir)  # every arm's answer to every example, side by side
            if rows:
                wb.log({"examples": wandb.Table(columns=cols, data=rows)})
            if paths.get("claims_json"):  # the sweep's claims and their verdicts (slmexp.report.claims)
                from slmexp.report.claims import TABLE_COLUMNS, table_rows
                from slmexp.report.html import read_claims

                verdicts = read_claims(Path(paths["claims_json"]).parent)
                wb.log({"claims": wandb.Table(columns=TABLE_COLUMNS, data=table_rows(verdicts))})
                wb.summary["claims_verdicts"] = {c["id"]: c["verdict"] for c in verdicts}
            out = Path(wb.dir).parent
        finally:
            wb.finish()
        return out
    except Exception as e:
        log.warning("wandb logging of the sweep report failed (files kept in %s): %s: %s", sweep_dir,
                    type(e).__name__, e)
        return None
