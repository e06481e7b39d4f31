"""Faults injected for real, each answered by the config key that fixes it: a disk that fills up (a small tmpfs
mounted as the output or cache dir), an endpoint that dies mid-evaluation (the scripted OpenAI-compatible server
closes its socket), a training run that diverges (NaN loss), and `kill -9` in each stage of a sweep followed by a
relaunch (finished jobs kept, the killed one redone, no half-written cache entry used).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest

from slmexp.errors import ConfigError
from slmexp.pipeline import run_job
from tests.conftest import compose

pytestmark = pytest.mark.slow  # each runs a real (tiny) job: 10-60 s on 2 busy cores


def _tmpfs(path: Path, size: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                         text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    return path


@pytest.fixture
def small_disk(tmp_path):
    mounted: list[Path] = []

    def make(name: str, size: str) -> Path:
        mounted.append(_tmpfs(tmp_path / name, size))
        return mounted[-1]

    yield make
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_output_disk_names_paths_output_dir_and_keeps_run_json_valid(tiny_overrides, small_disk) -> None:
    disk = small_disk("out", "48k")
    run_dir = disk / "run"
    with pytest.raises(ConfigError, match=r"^paths\.output_dir: the disk holding .* is full") as e:
        run_job(compose([*tiny_overrides, f"paths.output_dir={disk}"]), run_dir=run_dir)
    assert "during the evaluate stage" in str(e.value) or "during the" in str(e.value)
    rec = json.loads((run_dir / "run.json").read_text())  # whole JSON: written atomically before the disk filled
    assert rec["run"]["status"] in ("running", "failed")


def test_full_cache_disk_names_paths_cache_dir(tiny_overrides, small_disk, tmp_path) -> None:
    disk = small_disk("cache", "64k")
    with pytest.raises(ConfigError, match=r"^paths\.cache_dir: the disk holding .* is full") as e:
        run_job(compose([*tiny_overrides, f"paths.cache_dir={disk}", "adapter=lora", "train.max_steps=1",
                         "train.eval_steps=0"]), run_dir=tmp_path / "run")
    assert "during the train stage" in str(e.value)
    assert not [p for p in disk.rglob("*") if p.is_dir() and ".partial" in p.name], "a half-built entry was left"
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["run"]["status"] == "failed" and rec["run"]["error"]["message"].startswith("paths.cache_dir:")


def test_nan_loss_names_train_learning_rate(tiny_overrides, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^train\.learning_rate: training diverged"):
        run_job(compose([*tiny_overrides, "adapter=lora", "train.max_steps=2", "train.logging_steps=1",
                         "train.merge=false", "train.eval_steps=0", "train.learning_rate=3e38",
                         "train.warmup_ratio=0"]),
                run_dir=tmp_path / "run")
    assert not list((tmp_path / "cache").rglob("trained/*/adapter_model.safetensors")), "a diverged adapter cached"


def test_endpoint_dying_mid_evaluation_names_runtime_base_url(tmp_path) -> None:
    pytest.importorskip("openai")
    from slmexp.config import DATA_DIR
    from tests.test_scripted_server import _free_port, _golds, _Server

    class Dying(_Server):
        answered = 0

        def answer(self, req: dict) -> str:
            Dying.answered += 1
            if Dying.answered > 3:  # the process behind the endpoint dies: no answer, no more connections
                self.server_close()
                raise ConnectionAbortedError("endpoint died")
            return super().answer(req)

    srv = Dying(_free_port(), _golds([DATA_DIR / "support_intent" / "test.jsonl"]))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    try:
        with pytest.raises(Exception, match=r"runtime\.base_url") as e:
            run_job(compose(["runtime=openai", f"runtime.base_url={base}", "runtime.model=plain",
                             "runtime.max_retries=1", "runtime.timeout_s=5", "model.name=scripted",
                             "model.source.hub=null", "model.source.wheel=null", "eval.limit=8", "eval.bench.n=0",
                             f"paths.output_dir={tmp_path}/o", f"paths.cache_dir={tmp_path}/c"]),
                    run_dir=tmp_path / "run")
    finally:
        srv.shutdown()
    assert base in str(e.value)
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["run"]["status"] == "failed" and rec["run"]["error"]["stage"] == "evaluate"


def test_relaunch_after_the_endpoint_died_asks_only_what_was_not_answered(tmp_path) -> None:
    """eval.cache=true on an endpoint: the answers given before it died are kept (written as they arrive), and the
    relaunch sends the endpoint only the requests it never answered."""
    pytest.importorskip("openai")
    from slmexp.config import DATA_DIR
    from tests.test_scripted_server import _free_port, _golds, _Server

    class Counting(_Server):
        asked: ClassVar[list[str]] = []
        die_after: ClassVar[int | None] = 3

        def answer(self, req: dict) -> str:
            if self.die_after is not None and len(self.asked) >= self.die_after:
                self.server_close()
                raise ConnectionAbortedError("endpoint died")
            self.asked.append(str(req["messages"][-1]["content"]))
            return super().answer(req)

    port = _free_port()
    golds = _golds([DATA_DIR / "support_intent" / "test.jsonl"])
    overrides = ["runtime=openai", f"runtime.base_url=http://127.0.0.1:{port}/v1", "runtime.model=plain",
                 "runtime.max_retries=1", "runtime.timeout_s=5", "runtime.concurrency=1", "model.name=scripted",
                 "model.source.hub=null", "model.source.wheel=null", "eval.limit=8", "eval.bench.n=0",
                 "eval.cache=true", f"paths.output_dir={tmp_path}/o", f"paths.cache_dir={tmp_path}/c"]
    first = Counting(port, golds)
    threading.Thread(target=first.serve_forever, daemon=True).start()
    try:
        with pytest.raises(Exception, match=r"runtime\.base_url"):
            run_job(compose(overrides), run_dir=tmp_path / "run")
    finally:
        first.shutdown()
    answered = list(Counting.asked)
    assert len(answered) == 3
    Counting.asked, Counting.die_after = [], None
    second = Counting(port, golds)
    threading.Thread(target=second.serve_forever, daemon=True).start()
    try:
        rec = run_job(compose(overrides), run_dir=tmp_path / "run")
    finally:
        second.shutdown()
        second.server_close()
    assert rec["run"]["status"] == "finished" and rec["metrics"]["n_examples"] == 8
    assert len(Counting.asked) == 5 and not set(Counting.asked) & set(answered)  # only the 5 never answered
    cache = rec["metrics"]["generation_cache"]
    assert cache["keyed_by"] == "endpoint" and cache["from_cache"] == 3 and cache["answered_now"] == 5
    assert rec["metrics"]["values"]["exact_match"] == 1.0  # the kept answers score as the fresh ones


# --- kill -9 in each stage of a sweep, then relaunch --------------------------------------------------------------


def _sweep(tiny_model_dir: Path, tmp_path: Path, sweep: list[str]) -> list[str]:
    return [sys.executable, "-m", "slmexp", "-m", f"model.source.path={tiny_model_dir}", "model.name=tiny-llama",
            f"paths.cache_dir={tmp_path}/cache", f"paths.output_dir={tmp_path}/o", f"hydra.sweep.dir={tmp_path}/sweep",
            "eval.limit=4", "runtime.batch_size=2", "task.generation.max_new_tokens=4", "eval.bench.n=2",
            "eval.bench.warmup=1", "train.max_length=1024", "train.max_steps=2", "train.eval_steps=0", *sweep]


def _record(run_json: Path) -> dict:
    try:
        return json.loads(run_json.read_text())["run"]
    except (OSError, ValueError, KeyError):
        return {}


# Job 1 of each sweep is killed in `stage`: training (a LoRA job), quantizing (a GGUF export; job 0 exported another
# type), evaluating, timing; "report": once job 1 has finished, i.e. while the sweep's report callback runs.
SWEEPS = {"train": ["adapter=none,lora"], "evaluate": ["adapter=none,lora"], "benchmark": ["adapter=none,lora"],
          "quantize": ["runtime=llamacpp", "runtime.n_ctx=2048", "quantization=gguf-f16,gguf-q8_0"],
          "report": ["adapter=none,lora"]}


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(SWEEPS))
def test_kill_9_in_a_stage_then_relaunch_keeps_finished_jobs(tiny_model_dir, tmp_path, stage) -> None:
    if stage == "quantize":
        pytest.importorskip("llama_cpp")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = _sweep(tiny_model_dir, tmp_path, SWEEPS[stage])
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    target = tmp_path / "sweep" / "1" / "run.json"
    deadline = time.time() + 300

    def reached() -> bool:
        run = _record(target)
        return run.get("status") == "finished" if stage == "report" else run.get("stage") == stage

    while not reached():
        assert proc.poll() is None, f"the sweep ended before job 1 reached {stage}"
        assert time.time() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group, as the OOM killer or a preempted node would
    proc.wait()
    first = json.loads((tmp_path / "sweep" / "0" / "run.json").read_text())
    killed = json.loads(target.read_text())
    assert first["run"]["status"] == "finished"
    assert killed["run"]["status"] == ("finished" if stage == "report" else "running")
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    again = json.loads((tmp_path / "sweep" / "0" / "run.json").read_text())
    assert again == first, "a finished job was redone or rewritten"
    redone = json.loads(target.read_text())
    assert redone["run"]["status"] == "finished" and redone["metrics"]["n_examples"] == 4
    if stage == "report":
        assert redone == killed, "a job finished before the kill was redone"
    table = (tmp_path / "sweep" / "comparison.md").read_text()
    assert table.count("tiny-llama") >= 2 and not (tmp_path / "sweep" / "REPORT_FAILED.md").exists()
    cache = tmp_path / "cache"
    assert not [p for p in cache.rglob("*.partial*")], "a killed build's temp dir survived the relaunch"
