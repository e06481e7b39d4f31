"""logger=wandb: real offline wandb runs, read back with wandb's own reader (`wandb leet inspect`, which parses the
.wandb transaction log with wandb-core), not a mock: the job's run carries group, job_type, the redacted config and
the measured metrics; the sweep's run carries the comparison table."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from slmexp.pipeline import run_job
from slmexp.report import write_report
from slmexp.tracking import log_sweep
from tests.conftest import compose
from tests.test_report import sweep  # noqa: F401  (fixture: a sweep dir of run.json files)

pytest.importorskip("wandb")


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    # wandb's artifact staging and caches go to a temp home, not the user's
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))


def inspect(run_dir: Path, *flags: str) -> list[dict]:
    """wandb's own reader of an offline run: one JSON object per record (or one summary object)."""
    out = subprocess.run(["wandb", "leet", "inspect", "--json", *flags, str(run_dir)], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL, timeout=120, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    if "--summary" in flags:  # one (pretty-printed) object
        return [json.loads(out.stdout)]
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def offline_runs(root: Path) -> list[Path]:
    return sorted(root.rglob("offline-run-*"))


@pytest.mark.slow
def test_job_is_mirrored_to_an_offline_wandb_run(tiny_overrides, tmp_path) -> None:
    cfg = compose([*tiny_overrides, "logger=wandb", "logger.tags=[unit]"])
    run_dir = tmp_path / "run"
    record = run_job(cfg, run_dir=run_dir)
    (wb_dir,) = offline_runs(run_dir)  # under the job's own run dir
    assert wb_dir.parent == run_dir / "wandb"
    (summary,) = inspect(wb_dir, "--summary")
    assert summary["state"] == "finished" and summary["project"] == "slmexp"
    s = summary["summary"]
    acc = record["metrics"]["values"]["exact_match"]
    # W&B's section/key convention: one panel section per record block
    assert s["accuracy"] == pytest.approx(acc) and s["metrics/exact_match"] == pytest.approx(acc)
    assert s["metrics/n_examples"] == 6 and s["status"] == "finished"
    assert s["speed/latency_ms/p50"] == pytest.approx(record["speed"]["latency_ms"]["p50"])
    assert s["cost/usd_per_1k_requests"] == pytest.approx(record["cost"]["usd_per_1k_requests"])
    assert s["samples"]["_type"] == "table-file" and s["samples"]["nrows"] == 6
    assert summary["config"]["model"]["name"] == "tiny-llama"  # the resolved config
    (run_rec,) = [r for r in inspect(wb_dir) if r.get("type") == "run"]
    assert run_rec["run"]["job_type"] == "eval" and run_rec["run"].get("tags") == ["unit"]


@pytest.mark.slow
def test_a_finished_job_is_not_logged_twice(tiny_overrides, tmp_path) -> None:
    cfg = compose([*tiny_overrides, "logger=wandb", "eval.bench.n=0"])
    run_job(cfg, run_dir=tmp_path / "run")
    again = run_job(cfg, run_dir=tmp_path / "run")  # resume: skipped
    assert again["run"]["skipped"]
    assert len(offline_runs(tmp_path / "run")) == 1


def test_sweep_report_run_has_the_comparison_table(sweep, tmp_path) -> None:  # noqa: F811
    paths = write_report(sweep)
    logger = compose(["logger=wandb", "logger.group=demo-sweep"]).logger
    wb_dir = log_sweep(logger, sweep, paths)
    assert wb_dir is not None and wb_dir.parent == sweep / "wandb"
    records = inspect(wb_dir)
    (run_rec,) = [r for r in records if r.get("type") == "run"]
    assert run_rec["run"]["job_type"] == "report" and run_rec["run"]["run_group"] == "demo-sweep"
    (summary,) = inspect(wb_dir, "--summary")
    table = summary["summary"]["comparison"]
    csv_rows = paths["csv"].read_text().strip().splitlines()
    assert table["_type"] == "table-file" and table["nrows"] == len(csv_rows) - 1
    table_json = json.loads((wb_dir / "files" / table["path"]).read_text())
    assert table_json["columns"] == csv_rows[0].split(",")[: len(table_json["columns"])]
    assert summary["summary"]["accuracy_vs_latency"]["_type"] == "image-file"
    assert "comparison_md" in summary["summary"]
