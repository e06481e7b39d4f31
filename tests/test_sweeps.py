"""Sweeps through the real CLI on the tiny model: `kill -9` in the middle of a job and resume, local parallel jobs
(hydra-joblib-launcher), an Optuna search (hydra-optuna-sweeper) and the router's threshold sweep, both choosing on
validation and measuring the choice once on test; and that choice's parts on hand-made trial records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

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


def chosen_line(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("chosen on validation: ")]
    assert len(lines) == 1, stdout[-3000:]
    return lines[0]


@pytest.mark.slow
def test_hpo_trials_score_on_validation_and_the_choice_is_measured_once_on_test(tiny_model_dir, tmp_path) -> None:
    """Acceptance (issue 15): `slmexp sweep=hpo` prints the validation-chosen configuration and its test figure."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "sweep"
    args = [*base_args(tiny_model_dir, tmp_path, sweep), "sweep=hpo", "hydra.sweeper.n_trials=3",
            "train.max_steps=2", "train.eval_steps=0", "eval.limit=4", f"hydra.sweep.dir={sweep}"]
    out = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    recs = records(sweep)
    chosen = recs.pop("chosen")
    assert len(recs) == 3 and all(r["run"]["status"] == "finished" for r in recs.values())
    assert {r["metrics"]["split"] for r in recs.values()} == {"validation"}  # no trial saw a test example
    lrs = {r["config"]["train"]["learning_rate"] for r in recs.values()}
    assert len(lrs) == 3 and all(1e-4 <= lr <= 3e-3 for lr in lrs)
    opt = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert opt["name"] == "optuna" and "train.learning_rate" in opt["best_params"]

    # the best trial on validation (first of equals, as Optuna's best_trial), re-run once on test
    best = min(recs, key=lambda k: (-recs[k]["metrics"]["values"]["exact_match"], int(k)))
    assert opt["best_value"] == recs[best]["metrics"]["values"]["exact_match"]
    assert chosen["run"]["status"] == "finished" and chosen["metrics"]["split"] == "test"
    assert chosen["config"]["train"]["learning_rate"] == recs[best]["config"]["train"]["learning_rate"]
    assert chosen["config"]["adapter"]["peft"]["r"] == recs[best]["config"]["adapter"]["peft"]["r"]
    assert chosen["train"]["cached"] is True  # the chosen trial's adapter, not a new training run
    sel = chosen["metrics"]["selection"]
    val, test = recs[best]["metrics"]["values"]["exact_match"], chosen["metrics"]["values"]["exact_match"]
    assert sel["chosen_on"] == "validation" and sel["trial"] == best and sel["metric"] == "exact_match"
    assert (sel["validation"], sel["test"], sel["n_validation"], sel["n_test"]) == (val, test, 4, 4)
    assert sorted(p.split("=")[0] for p in sel["params"]) == ["adapter.peft.r", "train.learning_rate"]
    line = chosen_line(out.stdout)
    assert f"adapter.peft.r={chosen['config']['adapter']['peft']['r']}" in line
    assert f"(validation exact_match {val:.3f}, n=4, best of 3 trials); test exact_match {test:.3f} (n=4)" in line


@pytest.mark.slow
def test_router_threshold_is_chosen_on_validation_and_measured_once_on_test(tiny_model_dir, tmp_path) -> None:
    """Acceptance (issue 15): `slmexp sweep=router` prints the validation-chosen threshold and its test figures."""
    sweep = tmp_path / "sweep"
    args = [*base_args(tiny_model_dir, tmp_path, sweep), "sweep=router", "router.threshold=0.0,0.5,1.01",
            "runtime@router.llm.runtime=transformers", f"router.llm.model.source.path={tiny_model_dir}",
            "router.llm.model.name=tiny-llm", "train.max_steps=2", "train.eval_steps=0"]
    out = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    recs = records(sweep)
    chosen = recs.pop("chosen")
    assert sorted(recs) == ["0", "1", "2"]
    assert {(r["metrics"]["split"], r["router"]["split"]) for r in recs.values()} == {("validation", "validation")}

    def rank(k: str) -> tuple:  # best validation accuracy, then fewest escalations, then the earlier job
        v = recs[k]["metrics"]["values"]
        return (-v["exact_match"], v["escalated_share"], int(k))

    best = min(recs, key=rank)
    thr = recs[best]["router"]["threshold"]
    assert chosen["metrics"]["split"] == "test" and chosen["router"]["split"] == "test"
    assert chosen["router"]["threshold"] == thr
    assert chosen["router"]["measured_now"] == {"slm": 4, "llm": 4}  # test answers: measured now, never before
    sel = chosen["metrics"]["selection"]
    val, test = recs[best]["metrics"]["values"]["exact_match"], chosen["metrics"]["values"]["exact_match"]
    assert (sel["chosen_on"], sel["validation"], sel["test"], sel["trial"]) == ("validation", val, test, best)
    line = chosen_line(out.stdout)
    assert line.startswith(f"chosen on validation: router.threshold={recs[best]['config']['router']['threshold']} ")
    assert f"(validation exact_match {val:.3f}, n=4, best of 3 trials); test exact_match {test:.3f} (n=4)" in line


# --- the sweeps' selection wiring, composed (fast) ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hpo", "router"])
def test_tuning_sweeps_score_trials_on_validation_and_choose_there(name: str) -> None:
    from hydra import compose, initialize_config_dir

    from slmexp.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="slmexp"):
        cfg = compose(config_name="config", overrides=[f"sweep={name}"], return_hydra_config=True)
    assert cfg.eval.split == "validation"
    callbacks = list(cfg.hydra.callbacks)
    assert cfg.hydra.callbacks.choose._target_ == "slmexp.callbacks.ChooseOnValidation"
    assert callbacks.index("choose") > callbacks.index("report")  # Hydra ends in reverse: choose, then report


def _trial(tmp: Path, job: str, split: str, values: dict, status: str = "finished", metric: str = "exact_match",
           overrides: tuple[str, ...] = ()) -> tuple[Path, dict]:
    d = tmp / job
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    rec = {"run": {"status": status}, "config": {"optimized_metric": metric},
           "metrics": {"split": split, "primary": "exact_match", "n_examples": 50, "values": values}}
    (d / "run.json").write_text(json.dumps(rec))
    return d, rec


def test_objective_is_the_optimized_metric_not_the_primary() -> None:
    from slmexp.errors import ConfigError
    from slmexp.objective import objective

    rec = {"config": {"optimized_metric": "strict_match"},
           "metrics": {"primary": "exact_match", "values": {"exact_match": 0.9, "strict_match": 0.4}}}
    assert objective(rec) == 0.4
    rec["config"]["optimized_metric"] = "f1"
    with pytest.raises(ConfigError, match=r"^optimized_metric: 'f1' is not a metric this run recorded"):
        objective(rec)
    assert objective({"run": {"status": "failed"}}) is None


def test_choose_picks_the_best_validation_trial_and_refuses_test_scored_trials(tmp_path) -> None:
    from slmexp.callbacks import SelectionError, choose, trials

    _trial(tmp_path, "0", "validation", {"exact_match": 0.5, "strict_match": 0.9})
    _trial(tmp_path, "1", "validation", {"exact_match": 0.7, "strict_match": 0.1})
    _trial(tmp_path, "2", "validation", {"exact_match": 0.7, "strict_match": 0.2})  # ties with 1: the earlier wins
    _trial(tmp_path, "3", "validation", {}, status="failed")
    _trial(tmp_path, "chosen", "test", {"exact_match": 1.0})  # the final job is not a trial
    c = choose(trials(tmp_path))
    assert (c.job_dir.name, c.value, c.metric, c.n_trials, c.n_finished) == ("1", 0.7, "exact_match", 4, 3)
    assert choose(trials(tmp_path), metric="strict_match").job_dir.name == "0"
    assert choose(trials(tmp_path), direction="minimize").job_dir.name == "0"
    _trial(tmp_path, "4", "test", {"exact_match": 0.99})  # a trial scored on test: choosing there is refused
    with pytest.raises(SelectionError, match=r"scored on eval.split=test"):
        choose(trials(tmp_path))


def test_the_chosen_trial_reruns_with_its_overrides_on_test_and_the_line_names_both_splits(tmp_path) -> None:
    from slmexp.callbacks import choose, describe, final_command, job_overrides, selection_block, trials

    ov = ("train.learning_rate=0.0012345678", "adapter.peft.r=8", "sweep=hpo", "eval.split=validation")
    _trial(tmp_path, "0", "validation", {"exact_match": 0.42}, overrides=ov)
    c = choose(trials(tmp_path))
    cmd = final_command(job_overrides(c.job_dir), tmp_path / "chosen")
    assert cmd[1:3] == ["-m", "slmexp"] and "eval.split=validation" not in cmd
    assert cmd[-3:] == ["eval.split=test", "hydra.mode=RUN", f"hydra.run.dir={tmp_path / 'chosen'}"]
    c.params = list(ov[:2])
    test = {"metrics": {"split": "test", "n_examples": 100, "values": {"exact_match": 0.375}}}
    sel = selection_block(c, test, "maximize", 0.0, None)
    assert (sel["chosen_on"], sel["validation"], sel["test"], sel["n_test"]) == ("validation", 0.42, 0.375, 100)
    assert describe(sel) == ("chosen on validation: train.learning_rate=0.00123, adapter.peft.r=8 (validation "
                             "exact_match 0.420, n=50, best of 1 trials); test exact_match 0.375 (n=100)")
