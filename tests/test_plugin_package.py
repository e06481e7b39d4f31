"""A plug-in package outside slmexp (examples/plugin, `slmexp-toy`) adds a runtime, a quantizer and a task kind
through entry points, installed as a wheel into a fresh venv; one sweep uses all three.

Nothing is patched: the wheel is built by pip from the example's pyproject.toml, installed into a venv that sees
this environment's packages (torch, slmexp) but not the example's source tree, and `python -m slmexp -m ...` runs
in that venv, so the registries, the config schema and Hydra's search path find the plug-in the way a user's
installation would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugin"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def toy_venv(tmp_path_factory) -> Path:
    """A fresh venv (system site-packages visible) with the example installed from its wheel."""
    tmp = tmp_path_factory.mktemp("plugin")
    src = tmp / "src"
    shutil.copytree(EXAMPLE, src)  # the build writes build/ and *.egg-info next to the sources: not in the checkout
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp / "dist"), str(src)], check=True, env=ENV)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    wheel = next((tmp / "dist").glob("slmexp_toy-*.whl"))
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True,
                   env=ENV)
    return venv


def _slmexp(venv: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "python"), "-m", "slmexp", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_one_sweep_uses_the_plugin_runtime_quantizer_and_task_kind(toy_venv, tiny_model_dir, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    done = _slmexp(toy_venv, ["-m", "runtime=toy", "quantization=none,toyq-4bit", "task=yesno",
                              f"model.source.path={tiny_model_dir}", "model.name=tiny-llama",
                              f"paths.cache_dir={tmp_path / 'c'}", f"paths.output_dir={tmp_path / 'o'}",
                              "eval.bench.n=2", "eval.bench.warmup=0", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = {json.loads(p.read_text())["config"]["quantization"]["name"]: json.loads(p.read_text())
            for p in sweep.glob("*/run.json")}
    assert set(runs) == {"none", "toyq-4bit"}
    for rec in runs.values():
        assert rec["run"]["status"] == "finished", rec["run"].get("error")
        assert rec["config"]["runtime"]["name"] == "toy" and rec["config"]["task"]["kind"] == "yesno"
        assert rec["metrics"]["n_examples"] == 6 and rec["metrics"]["chance"] == 0.5
        assert set(rec["metrics"]["values"]) >= {"exact_match", "valid_answer"}  # the kind's own template
        assert rec["speed"]["latency_ms"]["p50"] > 0
    quant = runs["toyq-4bit"]["quantization"]
    assert quant["kind"] == "toyq" and quant["bits"] == 4 and quant["tensors_quantized"] == 14  # 2 layers x 7 proj
    assert quant["mean_abs_error"] > 0  # the weights did move
    report = (sweep / "comparison.md").read_text()
    assert "Task yesno" in report and "tiny-llama/toyq-4bit@toy" in report  # its flips against the full model
    assert "runtime=toy" not in done.stderr


@pytest.mark.slow
def test_the_plugins_own_checks_refuse_bad_values_in_one_line_each(toy_venv, tiny_model_dir, tmp_path) -> None:
    bad = _slmexp(toy_venv, ["runtime=toy", "quantization=toyq-4bit", "task=yesno", "runtime.batch_size=0",
                             "quantization.bits=1", f"model.source.path={tiny_model_dir}",
                             f"paths.output_dir={tmp_path / 'o'}"], tmp_path)
    assert bad.returncode == 2, bad.stderr[-2000:]
    lines = [line for line in bad.stderr.splitlines() if line.startswith("slmexp: error:") or line.startswith("  ")]
    text = "\n".join(lines)
    assert "runtime.batch_size: must be >= 1" in text  # the plug-in's options model, checked by slmexp's schema
    assert "quantization.bits: toyq needs at least 2 bits, got 1" in text  # the plug-in quantizer's own check
    assert "Traceback" not in bad.stderr
