"""The whole job (validate -> resolve -> load -> lm-eval -> run.json) on a tiny random model, in seconds."""

from __future__ import annotations

import json

import pytest

from slmexp.pipeline import run_job
from slmexp.record import SCHEMA, load
from tests.conftest import compose


def test_job_writes_a_complete_record(tiny_overrides, tmp_path) -> None:
    cfg = compose(tiny_overrides)
    run_dir = tmp_path / "run"
    record = run_job(cfg, run_dir=run_dir)
    on_disk = load(run_dir)
    assert on_disk == json.loads(json.dumps(record, default=str))
    assert on_disk["schema"] == SCHEMA
    assert on_disk["run"]["status"] == "finished"
    metrics = on_disk["metrics"]
    assert metrics["n_examples"] == 6
    assert 0.0 <= metrics["values"]["exact_match"] <= 1.0
    assert "exact_match_stderr" in metrics["values"]
    assert metrics["formulation"] == "generate_until/chat_template/0-shot"
    assert metrics["chance"] == pytest.approx(1 / 12)
    assert on_disk["model"]["source"] == "path" and on_disk["model"]["bytes_on_disk"] > 0
    prov = on_disk["provenance"]
    assert set(prov["data_sha256"]) == {"test"} and len(prov["data_sha256"]["test"]) == 64
    assert prov["seed"] == 1234 and "torch" in prov["versions"] and prov["machine"]["cpu"]
    speed = on_disk["speed"]
    assert speed["n_requests"] == 3 * 3 and speed["warmup_requests"] == 1 and speed["concurrency"] == 1  # x 3 passes
    assert 0 < speed["ttft_ms"]["p50"] <= speed["latency_ms"]["p50"] <= speed["latency_ms"]["p95"]
    assert speed["peak_rss_mb"] > 0 and speed["load_s"] >= 0
    samples = [json.loads(line) for line in (run_dir / metrics["samples"]).read_text().splitlines()]
    assert len(samples) == 6 and {"target", "response", "exact_match"} <= set(samples[0])


def test_missing_data_file_fails_naming_key_and_path(tiny_overrides, tmp_path) -> None:
    from slmexp.errors import ConfigError

    cfg = compose([*tiny_overrides, "task.data.test=/missing.jsonl"])
    with pytest.raises(ConfigError, match=r"task.data.test: data file not found: /missing.jsonl"):
        run_job(cfg, run_dir=tmp_path / "run")
    rec = load(tmp_path / "run")
    assert rec["run"]["status"] == "failed" and rec["run"]["error"]["stage"] == "validate"


def test_malformed_jsonl_names_file_and_line(tiny_overrides, tmp_path) -> None:
    from slmexp.errors import DataError

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "where is my parcel", "label": "order_status"}\n{"text": "oops", "label": \n')
    cfg = compose([*tiny_overrides, f"task.data.test={bad}"])
    with pytest.raises(DataError, match=rf"{bad}:2: malformed JSON"):
        run_job(cfg, run_dir=tmp_path / "run")
    assert load(tmp_path / "run")["run"]["status"] == "failed"


def test_unknown_label_names_file_and_line(tiny_overrides, tmp_path) -> None:
    from slmexp.errors import DataError

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "where is my parcel", "label": "order_status"}\n{"text": "hi", "label": "greet"}\n')
    cfg = compose([*tiny_overrides, f"task.data.test={bad}"])
    with pytest.raises(DataError,
                       match=rf"{bad}:2: field 'label' \(task.fields.label\) label 'greet' is not in task.labels"):
        run_job(cfg, run_dir=tmp_path / "run")


def test_stream_yields_one_timed_chunk_per_token(tiny_model_dir) -> None:
    from slmexp.bench import time_request
    from slmexp.runtimes.transformers import TransformersRuntime

    with TransformersRuntime(str(tiny_model_dir), device="cpu") as rt:
        chunks = list(rt.stream("where is my order", max_new_tokens=5))
        assert 1 <= len(chunks) <= 5
        stamps = [t for _, t in chunks]
        assert stamps == sorted(stamps)
        timing = time_request(rt, "where is my order", max_new_tokens=5)
        assert 0 < timing["ttft_s"] <= timing["e2e_s"] and timing["n_tokens"] == len(chunks)


def test_redaction_hides_secrets_not_token_counts() -> None:
    from slmexp.secrets import REDACTED, redact

    cfg = {"runtime": {"api_key": "sk-123", "api_key_env": "OPENAI_API_KEY", "hf_token": "hf_x"},
           "eval": {"bench": {"max_new_tokens": 16}}, "db": {"password": "p"}, "x": {"secret": None}}
    out = redact(cfg)
    assert out["runtime"] == {"api_key": REDACTED, "api_key_env": "OPENAI_API_KEY", "hf_token": REDACTED}
    assert out["eval"]["bench"]["max_new_tokens"] == 16 and out["db"]["password"] == REDACTED


@pytest.mark.slow
def test_multirun_ends_in_a_report_and_survives_a_failed_job(tiny_model_dir, tmp_path) -> None:
    """Two jobs (one with a broken data file) through the real CLI: both recorded, the table written."""
    import os
    import subprocess
    import sys

    sweep = tmp_path / "sweep"
    args = [sys.executable, "-m", "slmexp", "-m", f"model.source.path={tiny_model_dir}", "model.name=tiny-llama",
            f"paths.cache_dir={tmp_path / 'c'}", "eval.limit=4", "eval.bench.n=2", "eval.bench.warmup=0",
            "task.generation.max_new_tokens=3", f"hydra.sweep.dir={sweep}",
            f"task.data.test={tmp_path / 'missing.jsonl'},${{paths.data_dir}}/support_intent/test.jsonl"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    statuses = sorted(load(p)["run"]["status"] for p in sweep.glob("*/run.json"))
    assert statuses == ["failed", "finished"]
    table = (sweep / "comparison.md").read_text()
    assert "failed" in table and (sweep / "comparison.csv").exists() and (sweep / "comparison.tex").exists()
    again = subprocess.run([sys.executable, "-m", "slmexp", "report", str(sweep), "--out", str(tmp_path / "r")],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "r" / "comparison.md").read_text() == table


@pytest.mark.parametrize("quant", ["bnb-nf4", "bnb-int8"])
def test_bitsandbytes_quantization_on_load(tiny_overrides, tmp_path, quant) -> None:
    rec = run_job(compose([*tiny_overrides, f"quantization={quant}"]), run_dir=tmp_path / "run")
    q = rec["quantization"]
    assert rec["run"]["status"] == "finished" and q["kind"] == "bnb" and q["name"] == quant
    assert 0 < q["memory_footprint_bytes"] < q["full_precision_bytes"]
    assert rec["metrics"]["n_examples"] == 6 and rec["speed"]["peak_rss_mb"] > 0


def test_finished_job_is_skipped_on_relaunch_and_changed_job_reruns(tiny_overrides, tmp_path) -> None:
    import time

    run_dir = tmp_path / "run"
    first = run_job(compose(tiny_overrides), run_dir=run_dir)
    before = (run_dir / "run.json").read_bytes()
    t0 = time.perf_counter()
    again = run_job(compose(tiny_overrides), run_dir=run_dir)
    assert again["run"]["skipped"] and time.perf_counter() - t0 < 5
    assert (run_dir / "run.json").read_bytes() == before, "a skipped job must not rewrite its record"
    assert again["metrics"] == first["metrics"]
    # Only location keys may differ; anything else is a different experiment and runs again.
    moved = run_job(compose([*tiny_overrides, f"paths.output_dir={tmp_path / 'elsewhere'}"]), run_dir=run_dir)
    assert moved["run"].get("skipped")
    changed = run_job(compose([*tiny_overrides, "eval.limit=5"]), run_dir=run_dir)
    assert not changed["run"].get("skipped") and changed["metrics"]["n_examples"] == 5


def test_interrupted_job_runs_again(tiny_overrides, tmp_path) -> None:
    """A record left `running` (the process was killed) is not a finished run: the relaunch recomputes it."""
    from slmexp.cache import write_json_atomic

    run_dir = tmp_path / "run"
    rec = run_job(compose(tiny_overrides), run_dir=run_dir)
    rec["run"]["status"] = "running"
    write_json_atomic(run_dir / "run.json", rec)
    again = run_job(compose(tiny_overrides), run_dir=run_dir)
    assert not again["run"].get("skipped") and load(run_dir)["run"]["status"] == "finished"


def test_peak_rss_is_per_job_not_per_process() -> None:
    """Multirun jobs share one process: the peak must be reset at each job start (Linux VmHWM).

    In a fresh interpreter: in the suite's own process, memory other tests left behind (threads, caches) can keep
    the current RSS at the old peak, and then no reset can lower it (the order-dependent failure seen in CI)."""
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from slmexp.system import peak_rss_mb, reset_peak_rss\n"
        "big = np.ones(200_000_000 // 8)\n"
        "big += 1\n"
        "del big\n"
        "before = peak_rss_mb()\n"
        "reset_peak_rss()\n"
        "print(before, peak_rss_mb())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    before, after = map(float, out.stdout.split())
    assert after < before - 150, f"VmHWM was not reset ({before} -> {after} MiB)"


def test_fingerprint_ignores_where_the_data_dir_is(tiny_overrides, tmp_path) -> None:
    import shutil

    from slmexp.config import DATA_DIR

    run_dir = tmp_path / "run"
    run_job(compose(tiny_overrides), run_dir=run_dir)
    moved = tmp_path / "data"
    shutil.copytree(DATA_DIR, moved)
    again = run_job(compose([*tiny_overrides, f"paths.data_dir={moved}"]), run_dir=run_dir)
    assert again["run"].get("skipped")
