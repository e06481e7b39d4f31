"""logger=trackio: real Trackio runs in a local SQLite file, read back with Trackio's own API (`trackio.Api`,
`SQLiteStorage.get_logs`) in a child process (Trackio fixes its storage dir at import), not a mock: the job's run
carries the redacted config, the measured metrics and the per-example table; the sweep's run the comparison."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from slmexp.pipeline import run_job
from slmexp.report import write_report
from slmexp.tracking import log_sweep
from tests.conftest import compose
from tests.test_report import sweep  # noqa: F401  (fixture: a sweep dir of run.json files)

pytest.importorskip("trackio")

FAKE_KEY = "sk-trackio-test-0123456789abcdef"  # an OPENAI_API_KEY-like value that must reach no Trackio file

_READ = """
import json, sys
from trackio import Api
from trackio.sqlite_storage import SQLiteStorage
project = sys.argv[1]
print(json.dumps({run.name: {"config": run.config, "logs": SQLiteStorage.get_logs(project, run.name)}
                  for run in Api().runs(project)}, default=str))
"""


def read_back(tdir: Path, project: str = "slmexp") -> dict[str, dict]:
    """Every run of the project as Trackio reads it: {name: {"config": ..., "logs": [...]}}."""
    out = subprocess.run([sys.executable, "-c", _READ, project], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "TRACKIO_DIR": str(tdir), "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _final(logs: list[dict]) -> dict:
    return max(logs, key=lambda r: r["step"])


@pytest.mark.slow  # a tiny-model job end to end (~15 s on 2 cores)
def test_job_is_mirrored_to_a_local_trackio_run_without_secrets(tiny_overrides, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("TRACKIO_SPACE_ID", "someone/never-used")  # would publish: the writer drops it
    cfg = compose([*tiny_overrides, "logger=trackio", f"logger.tags=[unit,{FAKE_KEY}]", "eval.bench.n=2"])
    record = run_job(cfg, run_dir=tmp_path / "run")
    tdir = tmp_path / "outputs" / "trackio"
    db = tdir / "slmexp.db"
    assert db.is_file()
    (run,) = read_back(tdir).values()
    config = run["config"]
    assert config["model"]["name"] == "tiny-llama" and config["slmexp_run"]["job_type"] == "eval"
    assert config["slmexp_run"]["tags"][0] == "unit" and FAKE_KEY not in json.dumps(config)
    final = _final(run["logs"])
    acc = record["metrics"]["values"]["exact_match"]
    assert final["accuracy"] == pytest.approx(acc) and final["metrics/exact_match"] == pytest.approx(acc)
    assert final["metrics/n_examples"] == 6 and final["status"] == "finished"
    assert final["speed/latency_ms/p50"] == pytest.approx(record["speed"]["latency_ms"]["p50"])
    assert final["attestation/outputs_sha256"] == record["attestation"]["outputs_sha256"]
    table = final["samples"]
    assert table["_type"] == "trackio.table" and len(table["_value"]) == 6
    samples = [json.loads(line) for line in (tmp_path / "run" / "lm_eval" / "samples.jsonl").read_text().splitlines()]
    assert [r["doc_id"] for r in table["_value"]] == [str(s["doc_id"]) for s in samples]
    for path in tdir.rglob("*"):  # the SQLite file, its media, anything Trackio wrote
        assert not path.is_file() or FAKE_KEY.encode() not in path.read_bytes(), path


def test_sweep_report_run_has_the_comparison_table(sweep, tmp_path) -> None:  # noqa: F811
    paths = write_report(sweep)
    logger = compose(["logger=trackio", "logger.group=demo-sweep", f"logger.dir={tmp_path / 'tk'}"]).logger
    db = log_sweep(logger, sweep, paths)
    assert db == tmp_path / "tk" / "slmexp.db" and db.is_file()
    runs = read_back(tmp_path / "tk")
    run = runs["demo-sweep-comparison"]
    assert run["config"]["_Group"] == "demo-sweep" and run["config"]["slmexp_run"]["job_type"] == "report"
    final = _final(run["logs"])
    csv_rows = paths["csv"].read_text().strip().splitlines()
    table = final["comparison"]["_value"]
    assert len(table) == len(csv_rows) - 1 and list(table[0]) == csv_rows[0].split(",")
    assert final["accuracy_vs_latency"]["_type"] == "trackio.image"
    assert final["comparison_md"]["_value"] == paths["md"].read_text()


def test_a_failing_writer_is_a_warning_not_a_failed_job(sweep, tmp_path, caplog) -> None:  # noqa: F811
    paths = write_report(sweep)
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    logger = compose(["logger=trackio", f"logger.dir={blocker / 'tk'}"]).logger
    assert log_sweep(logger, sweep, paths) is None
    assert "trackio logging of the sweep report failed" in caplog.text
