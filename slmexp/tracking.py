"""Experiment tracking (`logger=wandb`, `logger=trackio`): one tracker run per job, one per sweep for the comparison.

The run directory stays the record; wandb mirrors it for reviewers. So a job is logged once it has ended
(finished or failed), from its run.json: config (resolved and already redacted), metrics, speed and cost in the
summary, the training curve as history, per-example predictions as a table. A job skipped on resume is not logged
again. A tracker failure is logged as a warning and never fails a job: nothing computed is lost to it.

Offline by default: runs land under the job dir (`<run dir>/wandb/offline-run-*`), and `wandb sync DIR` publishes
them later. wandb 0.31: the config goes to `wandb.init(config=...)`; `wandb sync` has no `--sync-all` any more.

What a run carries (config, summary, training history, per-example table) is built here once (`job_summary`,
`training_history`, `samples_table`), and each tracker writes it its own way: wandb below, Trackio in
slmexp.trackio_log (W&B's API on a local SQLite file, written from a child process).
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


TRACKERS = ("wandb", "trackio")


def enabled(logger_cfg: DictConfig | None) -> bool:
    return logger_cfg is not None and logger_cfg.get("name") in TRACKERS


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
    """Mirror one ended job into a tracker run; returns where the tracker keeps it (the wandb run's local dir, the
    Trackio SQLite file), None when disabled or failed."""
    if not enabled(logger_cfg) or (record.get("run") or {}).get("skipped"):
        return None
    tracker = str(logger_cfg.get("name"))
    try:
        if tracker == "trackio":
            return _trackio_job(logger_cfg, record, Path(run_dir))
        return _log_job(logger_cfg, record, Path(run_dir))
    except Exception as e:  # the run dir holds everything; the mirror can be redone (`wandb sync`, a rerun)
        log.warning("%s logging failed (run kept in %s): %s: %s", tracker, run_dir, type(e).__name__, e)
        return None


def run_identity(logger_cfg: DictConfig, record: RunJson) -> tuple[str, str | None]:
    """(run name, group): `<name>-<job>`, grouped by the logger's group or the sweep dir's name."""
    run: RunBlock = record["run"]
    sweep = run.get("sweep")
    group = logger_cfg.get("group") or (Path(sweep).name if sweep else None)
    return f"{run['name']}" + (f"-{run['job']}" if run.get("job") is not None else ""), group


def training_history(record: RunJson, run_dir: Path) -> list[tuple[int, dict[str, float]]]:
    """The training curve at its own steps: [(step, {"train/<key>": value})], empty when nothing was trained."""
    history = Path(run_dir) / "train" / "log_history.json"
    if not record.get("train") or not history.exists():
        return []
    out = []
    for row in json.loads(history.read_text()):
        step = row.get("step")
        values = {f"train/{k}": v for k, v in row.items() if isinstance(v, int | float) and k != "step"}
        if step is not None and values:
            out.append((int(step), values))
    return out


def samples_table(record: RunJson, run_dir: Path) -> tuple[list[str], list[list[str]]] | None:
    """The per-example predictions (lm_eval/samples.jsonl) as (columns, rows of strings); None when absent."""
    metrics: MetricsBlock = record.get("metrics") or {}
    samples = Path(run_dir) / str(metrics.get("samples") or "lm_eval/samples.jsonl")
    rows = read_jsonl(samples) if samples.exists() else []
    if not rows:
        return None
    cols = list(rows[0])
    return cols, [[str(r.get(c)) for c in cols] for r in rows]


def _log_job(logger_cfg: DictConfig, record: RunJson, run_dir: Path) -> Path:
    import wandb

    name, group = run_identity(logger_cfg, record)
    tags = [str(t) for t in (logger_cfg.get("tags") or [])]
    wb = _init(logger_cfg, dir=run_dir, name=name, group=group, job=job_type(record),
               config=record.get("config") or {}, tags=tags)
    try:
        for step, values in training_history(record, run_dir):
            wb.log(values, step=step)
        wb.summary.update(job_summary(record))
        table = samples_table(record, run_dir) if logger_cfg.get("log_samples", True) else None
        if table:
            wb.log({"samples": wandb.Table(columns=table[0], data=table[1])})
        out = Path(wb.dir).parent
    finally:
        wb.finish(exit_code=0 if record["run"]["status"] == "finished" else 1)
    return out


def _trackio_job(logger_cfg: DictConfig, record: RunJson, run_dir: Path) -> Path:
    """The same run for Trackio (slmexp.trackio_log): it has no job_type or tags, so they go into the config under
    `slmexp_run` (Trackio reserves top-level config keys starting with `_`), and no summary, so the summary figures
    are logged once, after the training curve."""
    from slmexp.trackio_log import write

    name, group = run_identity(logger_cfg, record)
    config = dict(record.get("config") or {})
    config["slmexp_run"] = {"job_type": job_type(record), "tags": [str(t) for t in (logger_cfg.get("tags") or [])]}
    table = samples_table(record, run_dir) if logger_cfg.get("log_samples", True) else None
    return write(logger_cfg, {"name": name, "group": group, "config": config,
                              "history": training_history(record, run_dir), "summary": job_summary(record),
                              "tables": {"samples": table} if table else {}})


def job_summary(record: RunJson) -> dict[str, Any]:
    """The run's figures as flat scalars (`metrics/exact_match`, `speed/latency_ms/p50`, ...; None left out)."""
    run: RunBlock = record["run"]
    summary: dict[str, Any] = {"status": run["status"], "wall_s": run.get("wall_s")}
    metrics: MetricsBlock = record.get("metrics") or {}
    for k, v in (metrics.get("values") or {}).items():
        summary[f"metrics/{k}"] = v
    if metrics.get("primary") in (metrics.get("values") or {}):
        summary["accuracy"] = metrics["values"][metrics["primary"]]
    summary["metrics/n_examples"] = metrics.get("n_examples")
    for block in ("speed", "cost", "quantization", "train", "attestation"):
        summary.update({f"{block}/{k}": v for k, v in flatten(record.get(block) or {}, sep="/").items()
                        if isinstance(v, int | float | str | bool)})  # W&B summary: scalars only
    model: ModelBlock = record.get("model") or {}
    summary["model/bytes_on_disk"] = model.get("bytes_on_disk")
    if run.get("error"):
        summary["error"] = f"{run['error'].get('stage')}: {run['error'].get('type')}: {run['error'].get('message')}"
    return {k: v for k, v in summary.items() if v is not None}


class SweepReport:
    """What a sweep's report run carries, read from the report's files: tables as (columns, rows of strings), plots
    (PNG paths), the Markdown table and the claims' verdicts."""

    def __init__(self, sweep_dir: Path, paths: dict[str, Any]) -> None:
        import pandas as pd

        from slmexp.report.examples import examples_table

        df = pd.read_csv(paths["csv"], keep_default_na=False).astype(str)
        self.tables: dict[str, tuple[list[str], list[list[Any]]]] = {
            "comparison": (list(df.columns), df.values.tolist())}
        cols, rows = examples_table(sweep_dir)  # every arm's answer to every example, side by side
        if rows:
            self.tables["examples"] = (cols, rows)
        self.images = {k.removesuffix("_png"): Path(p) for k, p in paths.items() if k.endswith("_png")}
        self.markdown = Path(paths["md"]).read_text()
        self.verdicts: dict[str, str] = {}
        if paths.get("claims_json"):  # the sweep's claims and their verdicts (slmexp.report.claims)
            from slmexp.report.claims import TABLE_COLUMNS, table_rows
            from slmexp.report.html import read_claims

            claims = read_claims(Path(paths["claims_json"]).parent)
            self.tables["claims"] = (TABLE_COLUMNS, table_rows(claims))
            self.verdicts = {c["id"]: c["verdict"] for c in claims}


def log_sweep(logger_cfg: DictConfig | None, sweep_dir: Path, paths: dict[str, Any]) -> Path | None:
    """The sweep's own tracker run (job_type report): the comparison table, the plots as images, `examples`: one
    table with every arm's answer (and right/wrong) to every example, side by side, and `claims` (when the sweep
    states claims): one row per claim with its verdict, estimate and CI."""
    if not enabled(logger_cfg):
        return None
    sweep_dir = Path(sweep_dir)
    tracker = str(logger_cfg.get("name"))
    try:
        report = SweepReport(sweep_dir, paths)
        if tracker == "trackio":
            from slmexp.trackio_log import write

            group = logger_cfg.get("group") or sweep_dir.name
            tags = [str(t) for t in (logger_cfg.get("tags") or [])]
            return write(logger_cfg, {
                "name": f"{group}-comparison", "group": group, "history": [],
                "config": {"sweep_dir": str(sweep_dir), "slmexp_run": {"job_type": "report", "tags": tags}},
                "summary": {f"claims/{k}": v for k, v in report.verdicts.items()}, "tables": report.tables,
                "images": {k: str(p) for k, p in report.images.items()},
                "markdown": {"comparison_md": report.markdown}})
        return _wandb_sweep(logger_cfg, sweep_dir, report)
    except Exception as e:
        log.warning("%s logging of the sweep report failed (files kept in %s): %s: %s", tracker, sweep_dir,
                    type(e).__name__, e)
        return None


def _wandb_sweep(logger_cfg: DictConfig, sweep_dir: Path, report: SweepReport) -> Path:
    import wandb

    group = logger_cfg.get("group") or sweep_dir.name
    wb = _init(logger_cfg, dir=sweep_dir, name=f"{group}-comparison", group=group, job="report",
               config={"sweep_dir": str(sweep_dir)}, tags=[str(t) for t in (logger_cfg.get("tags") or [])])
    try:
        for name, (cols, rows) in report.tables.items():
            wb.log({name: wandb.Table(columns=cols, data=rows)})
        if report.images:
            wb.log({k: wandb.Image(str(p)) for k, p in report.images.items()})
        wb.summary["comparison_md"] = report.markdown
        if report.verdicts:
            wb.summary["claims_verdicts"] = report.verdicts
        return Path(wb.dir).parent
    finally:
        wb.finish()
