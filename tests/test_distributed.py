"""Data-parallel training through `accelerate launch`: two CPU processes (gloo) train the tiny model with half the
per-device batch, and their loss curve is the one-process curve with the same global batch; rank 0 alone writes the
run directory and the record and evaluates. And the launch that looks right but is not: `--cpu --num_processes 2`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_sweeps import ENV

ROOT = Path(__file__).resolve().parents[1]
CPU_DDP = ROOT / "configs" / "accelerate" / "cpu-ddp.yaml"


def train_args(tiny_model_dir: Path, out: Path, per_device: int) -> list[str]:
    # lora_dropout=0: dropout draws differ per rank; with it off the two curves differ only by float summation order
    # (fp32: bf16 autocast rounds differently for different batch shapes)
    return ["-m", "slmexp", f"model.source.path={tiny_model_dir}", "model.name=tiny-llama", "adapter=lora",
            "adapter.peft.lora_dropout=0", "train.precision=fp32", "train.max_steps=6", "train.logging_steps=1",
            "train.eval_steps=0",
            "train.train_limit=48", "train.warmup_ratio=0", f"train.per_device_train_batch_size={per_device}",
            "train.max_length=1024", "eval.limit=4", "eval.bench.n=0", "task.generation.max_new_tokens=3",
            f"paths.cache_dir={out / 'cache'}", f"paths.output_dir={out / 'outputs'}"]


def the_run(out: Path) -> tuple[Path, dict]:
    runs = sorted((out / "outputs").glob("*/*/*/run.json"))
    assert len(runs) == 1, runs  # one run directory, whatever the number of processes
    return runs[0].parent, json.loads(runs[0].read_text())


def losses(run_dir: Path) -> list[tuple[int, float]]:
    history = json.loads((run_dir / "train" / "log_history.json").read_text())
    return [(h["step"], h["loss"]) for h in history if "loss" in h]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_with_the_same_global_batch(tiny_model_dir, tmp_path) -> None:
    accelerate = shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("accelerate's CLI is not installed")
    t0 = time.perf_counter()
    ddp = subprocess.run([accelerate, "launch", "--config_file", str(CPU_DDP),
                          *train_args(tiny_model_dir, tmp_path / "ddp", 2)],
                         env=ENV, capture_output=True, text=True, timeout=900, cwd=ROOT)
    ddp_wall = time.perf_counter() - t0
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = subprocess.run([sys.executable, *train_args(tiny_model_dir, tmp_path / "one", 4)],
                         env=ENV, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert one.returncode == 0, one.stderr[-3000:]

    ddp_dir, ddp_rec = the_run(tmp_path / "ddp")
    one_dir, one_rec = the_run(tmp_path / "one")
    assert ddp_rec["train"]["data_parallel"]["processes"] == 2
    assert ddp_rec["train"]["data_parallel"]["backend"] == "gloo"
    assert "data_parallel" not in one_rec["train"]
    assert ddp_rec["run"]["status"] == "finished" and ddp_rec["metrics"]["n_examples"] == 4  # rank 0 evaluated all
    assert list((tmp_path / "ddp" / "outputs").rglob(".hydra")) == [ddp_dir / ".hydra"]  # no rank-1 run dir
    a, b = losses(ddp_dir), losses(one_dir)
    assert [s for s, _ in a] == [s for s, _ in b] == list(range(1, 7))
    for (step, x), (_, y) in zip(a, b, strict=True):
        assert abs(x - y) <= 1e-3 * abs(y), (step, x, y)
    assert a[-1][1] != a[0][1]  # it trained: the curve moves
    rate = {k: r["train"]["tokens_seen"] / r["train"]["wall_s"] for k, r in (("ddp", ddp_rec), ("one", one_rec))}
    print(f"\nstep  2 procs x 2  1 proc x 4   (accelerate launch wall {ddp_wall:.0f} s)")
    for (step, x), (_, y) in zip(a, b, strict=True):
        print(f"{step:4d}  {x:10.4f}  {y:10.4f}")
    print(f"train tokens/s: 2 processes {rate['ddp']:.0f}, 1 process {rate['one']:.0f}")


@pytest.mark.slow
def test_accelerate_cpu_flag_with_two_processes_is_refused_not_run_once(tiny_model_dir, tmp_path) -> None:
    accelerate = shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("accelerate's CLI is not installed")
    out = subprocess.run([accelerate, "launch", "--num_processes", "2", "--num_machines", "1", "--cpu",
                          "--mixed_precision", "no", "--dynamo_backend", "no",
                          *train_args(tiny_model_dir, tmp_path, 2)],
                         env=ENV, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode != 0
    assert "starts one process, not 2" in out.stderr and "configs/accelerate/cpu-ddp.yaml" in out.stderr
    assert out.stderr.startswith("slmexp: error: ")  # one line from slmexp (accelerate then reports the exit status)
    assert 'slmexp/' not in "".join(line for line in out.stderr.splitlines() if line.lstrip().startswith("File "))
    assert not (tmp_path / "outputs").exists()  # refused before Hydra made a run dir
