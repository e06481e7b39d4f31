"""A report that fails must not leave the previous tables looking current, and must fail the sweep's exit status.
The fault is real: the report's output path is taken by a folder, so writing the CSV fails as a full or read-only
disk would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from slmexp.report import FAILED_NAME, write_report


def _stale_report(sweep: Path) -> None:
    sweep.mkdir(parents=True, exist_ok=True)
    for name in ("comparison.md", "comparison.tex", "accuracy_vs_latency.png", "accuracy_vs_cost.svg"):
        (sweep / name).write_text("the table of an earlier launch\n")
    (sweep / "comparison.csv").mkdir()  # the fault: the CSV cannot be written


def test_failed_report_removes_the_stale_tables_and_says_why(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    _stale_report(sweep)
    with pytest.raises(OSError):
        write_report(sweep)
    assert not list(sweep.glob("comparison.md")) and not list(sweep.glob("accuracy_vs_*"))
    assert not (sweep / "comparison.tex").exists()
    text = (sweep / FAILED_NAME).read_text()
    assert "IsADirectoryError" in text and f"slmexp report {sweep}" in text


@pytest.mark.slow
def test_sweep_whose_report_fails_exits_non_zero(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    _stale_report(sweep)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "slmexp", "-m", "eval.limit=0,-1", f"hydra.sweep.dir={sweep}",
                          f"paths.output_dir={tmp_path}/o"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 1, (out.returncode, out.stderr[-3000:])
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("slmexp: error: the sweep's report failed") and f"slmexp report {sweep}" in last
    assert not (sweep / "comparison.md").exists() and (sweep / FAILED_NAME).is_file()
    assert len(list(sweep.glob("*/run.json"))) == 2  # the jobs are recorded (failed on bad input), the sweep ended
