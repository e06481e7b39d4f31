"""task.formulation=choice: each label's log-likelihood as the answer (lm-eval's multiple choice), the likeliest
label is the answer; the record and the table say so, and the speed stage times label scoring."""

from __future__ import annotations

import json

import pytest

from slmexp.tasks.metrics import classification_choice_results
from tests.conftest import compose


def test_choice_results_pick_the_likeliest_label() -> None:
    doc = {"choices": ["order_status", "cancel_order", "speak_to_human"], "target": "cancel_order"}
    right = classification_choice_results(doc, [(-5.0, False), (-1.0, True), (-3.0, False)])
    assert right == {"exact_match": 1.0, "strict_match": 1.0, "valid_label": 1.0, "acc_norm": 1.0}
    wrong = classification_choice_results(doc, [(-0.5, True), (-1.0, False), (-3.0, False)])
    assert wrong["exact_match"] == 0.0 and wrong["valid_label"] == 1.0
    # per byte, speak_to_human (14 bytes) at -2.8 beats cancel_order (12 bytes) at -2.7: acc_norm may differ
    normed = classification_choice_results(doc, [(-9.0, False), (-2.7, False), (-2.8, False)])
    assert normed["exact_match"] == 1.0 and normed["acc_norm"] == 0.0


@pytest.mark.slow  # a whole job on the tiny model (~25 s on the shared reference machine)
@pytest.mark.parametrize("runtime", ["transformers", "llamacpp"])
def test_choice_job_records_formulation_and_times_label_scoring(tiny_overrides, tmp_path, runtime) -> None:
    if runtime == "llamacpp":
        pytest.importorskip("llama_cpp")
    from slmexp.pipeline import run_job
    from slmexp.report.table import build_table

    cfg = compose([*tiny_overrides, f"runtime={runtime}", "task.formulation=choice", "eval.limit=4",
                   "eval.bench.n=3", "eval.bench.warmup=1"])
    rec = run_job(cfg, tmp_path / "run")
    m = rec["metrics"]
    assert m["formulation"].startswith("multiple_choice/") and m["decoding"] == "free"
    assert m["values"]["valid_label"] == 1.0 and m["n_examples"] == 4
    assert 0.0 <= m["values"]["exact_match"] <= 1.0 and "acc_norm" in m["values"]
    samples = [json.loads(x) for x in (tmp_path / "run" / m["samples"]).read_text().splitlines()]
    assert all(isinstance(s["response"], int) for s in samples)  # the index of the likeliest label
    speed = rec["speed"]
    assert speed["formulation"] == "choice" and speed["n_requests"] == 3 * 3  # x eval.bench.passes
    assert speed["latency_ms"]["p50"] > 0 and speed["usage"]["output_tokens"] == 0
    rec["_dir"] = str(tmp_path / "run")
    row = build_table([rec]).iloc[0]
    assert row["formulation"] == "choice" and row["decoding"] == "free" and row["validity"] == 1.0


def test_summary_of_a_choice_run_has_no_decode_rate(capsys) -> None:
    """A choice run's speed block has no decode rate (labels are scored, nothing is generated): the end-of-run
    summary says so instead of failing the job with a KeyError (seen 2026-12-03 on a LoRA choice job)."""
    import json as _json
    from pathlib import Path as _Path

    from slmexp.summary import print_summary

    speed = {"load_s": 0.5, "eval_wall_s": 10.0, "n_requests": 5, "warmup_requests": 1, "requests_per_s": 1.6,
             "ttft_ms": {"p50": 594.0, "p95": 693.0}, "latency_ms": {"p50": 594.0, "p95": 693.0},
             "timing_note": "formulation=choice: ... no decode rate"}
    record = {"run": {"name": "t", "status": "finished", "run_dir": str(_Path("/tmp/x")), "stages_s": {}},
              "model": {"name": "smollm2-135m", "role": "slm", "params_b": 0.135, "dtype": "float32",
                        "bytes_on_disk": 1, "source": "wheel"}, "speed": speed}
    print_summary(_json.loads(_json.dumps(record)))
    err = " ".join(capsys.readouterr().err.split())
    assert "no decode (labels scored, nothing generated)" in err and "594" in err
