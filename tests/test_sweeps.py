"""Sweeps through the real CLI on the tiny model: `kill -9` in the middle of a job and resume, local parallel jobs
(hydra-joblib-launcher), and an Optuna search (hydra-optuna-sweeper)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def base_args(tiny_model_dir: Path, tmp_path: Path, sweep: Path) -> list[str]:
    return [sys.executable, "-m", "slmexp", "-m", f"model.source.path={tiny_model_dir}", "model.name=tiny-llama",
            f"paths.cache_dir={tmp_path / 'c'}", f"paths.output_dir={tmp_path / 'o'}", "eval.limit=4",
            "eval.bench.n=2", "eval.bench.warmup=0", "task.generation.max_new_tokens=3", f"hydra.sweep.dir={sweep}",
            "train.max_length=1024"]  # the tiny tokenizer (600 tokens) spells the support-intent prompt out long


def records(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep.glob("*/run.json"))}


@pytest.mark.slow
def test_kill_9_mid_job_then_rerun_keeps_finished_and_reruns_the_interrupted(tiny_model_dir, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    # job 1 trains (slow enough to be caught mid-run); jobs 0 and 2 only evaluate
    args = [*base_args(tiny_model_dir, tmp_path, sweep), "adapter=none,lora,none", "train.max_steps=300",
            "train.eval_steps=0", "train.logging_steps=1", "seed=1"]
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline:  # wait until job 1 is inside its train stage
        rec = records(sweep).get("1")
        if rec and rec["run"]["status"] == "running" and rec["run"].get("stage") == "train":
            time.sleep(1.0)  # inside training (300 steps take ~20 s here)
            break
        assert proc.poll() is None, "the sweep ended before it could be killed"
        time.sleep(0.05)
    else:
        pytest.fail("job 1 never started")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = records(sweep)
    assert before["0"]["run"]["status"] == "finished"
    assert before["1"]["run"]["status"] == "running"  # a killed run never looks finished
    assert "2" not in before
    job0 = (sweep / "0" / "run.json").read_bytes()

    out = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    after = records(sweep)
    assert (sweep / "0" / "run.json").read_bytes() == job0  # finished: not recomputed, not rewritten
    assert before["1"]["run"]["stage"] == "train"
    assert after["1"]["run"]["status"] == "finished" and after["1"]["train"]["steps"] == 300  # ran again, whole
    assert after["1"]["train"]["cached"] is False  # the killed training left no cache entry: it trained again
    assert after["2"]["run"]["status"] == "finished"
    assert "lora" in (sweep / "comparison.md").read_text()


@pytest.mark.slow
def test_joblib_launcher_runs_jobs_in_parallel_workers(tiny_model_dir, tmp_path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    args = [*base_args(tiny_model_dir, tmp_path, sweep), "hydra/launcher=parallel", "seed=1,2"]
    out = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    recs = records(sweep)
    assert sorted(recs) == ["0", "1"] and all(r["run"]["status"] == "finished" for r in recs.values())
    assert len({r["provenance"]["pid"] for r in recs.values()} - {os.getpid()}) == 2  # two worker processes
    md = (sweep / "comparison.md").read_text()
    assert "±" in md  # the two seeds collapsed into one mean ± std row


@pytest.mark.slow
def test_optuna_sweeper_searches_and_records_every_trial(tiny_model_dir, tmp_path) -> None:
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "sweep"
    args = [*base_args(tiny_model_dir, tmp_path, sweep), "sweep=hpo", "hydra.sweeper.n_trials=3",
            "train.max_steps=2", "train.eval_steps=0", "eval.limit=4", f"hydra.sweep.dir={sweep}"]
    out = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    recs = records(sweep)
    assert len(recs) == 3 and all(r["run"]["status"] == "finished" for r in recs.values())
    lrs = {r["config"]["train"]["learning_rate"] for r in recs.values()}
    assert len(lrs) == 3 and all(1e-4 <= lr <= 3e-3 for lr in lrs)
    best = json.loads(json.dumps(__import__("yaml").safe_load((sweep / "optimization_results.yaml").read_text())))
    assert best["name"] == "optuna" and "train.learning_rate" in best["best_params"]
