"""The whole job (validate -> resolve -> load -> lm-eval -> run.json) on a tiny random model, in seconds."""

from __future__ import annotations

import json

import pytest

from slmexp.pipeline import run_job
from slmexp.record import load
from tests.conftest import compose


def test_job_writes_a_complete_record(tiny_overrides, tmp_path) -> None:
    cfg = compose(tiny_overrides)
    run_dir = tmp_path / "run"
    record = run_job(cfg, run_dir=run_dir)
    on_disk = load(run_dir)
    assert on_disk == json.loads(json.dumps(record, default=str))
    assert on_disk["schema"] == 1
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
    assert speed["n_requests"] == 3 and speed["warmup_requests"] == 1 and speed["concurrency"] == 1
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
    with pytest.raises(DataError, match=rf"{bad}:2: label 'greet' is not in task.labels"):
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
