"""The comparison report on synthetic run dirs: values computed from the inputs, empty cells, stats, determinism.

Run dirs are built here (run.json written with the project's own atomic writer, plus lm_eval/samples.jsonl), so
the test needs no model and no real outputs: a baseline, a zero-shot SLM, a LoRA SLM with two seeds, a GGUF run
with a price, and a failed run, all scored on the same 20 example ids.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from slmexp.cache import write_json_atomic
from slmexp.report import (
    bootstrap_ci,
    build_table,
    collect,
    main,
    mcnemar_exact,
    pareto_front,
    short_label,
    write_report,
)

N = 20
IDS = [f"si-test-{i + 1:04d}" for i in range(N)]
TASK = "support-intent"


def _write_run(root: Path, rel: str, *, model: str, role: str = "slm", params_b: float = 0.135,
               adapter: str = "none", quant: dict[str, Any] | None = None, runtime: str = "transformers",
               seed: int = 1234, correct: list[int] | None = None, latency: tuple[float, float] | None = None,
               cost: dict[str, Any] | None = None, failed: bool = False) -> Path:
    """One run dir laid out as the pipeline writes it; `correct` is the per-example exact match (ids IDS)."""
    run_dir = root / rel
    quant_cfg = {"name": (quant or {}).get("name", "none"), "kind": (quant or {}).get("kind", "none")}
    config = {
        "name": f"{model}__{TASK}", "seed": seed, "optimized_metric": "exact_match",
        "model": {"name": model, "role": role, "params_b": params_b, "dtype": "float32"},
        "adapter": {"name": adapter, **({"peft": {"r": 16}} if adapter != "none" else {})},
        "quantization": quant_cfg,
        "runtime": {"name": runtime, "batch_size": 8},
        "task": {"name": TASK, "primary_metric": "exact_match"},
        "train": {"max_steps": 24, "seed": seed},
        "eval": {"split": "test", "limit": None, "bench": {"n": 20, "warmup": 2}},
        "cost": {"name": "none"},
        "paths": {"output_dir": str(root)},
    }
    record: dict[str, Any] = {
        "schema": 1,
        "run": {"name": config["name"], "sweep": None, "job": None, "status": "failed" if failed else "finished",
                "error": None, "started": "2026-11-23T06:00:00+00:00", "finished": "2026-11-23T06:10:00+00:00",
                "wall_s": 600.0, "stages_s": {}, "run_dir": f"/elsewhere/{rel}"},
        "config": config,
        "model": {"name": model, "role": role, "params_b": params_b, "dtype": "float32",
                  "bytes_on_disk": int(params_b * 4e9), "adapter": adapter if adapter != "none" else None},
        "train": None, "quantization": quant, "metrics": None, "speed": None, "cost": cost, "provenance": None,
    }
    if not adapter or adapter == "none":
        record["model"].pop("adapter")
    if failed:
        record["run"]["error"] = {"stage": "train", "type": "RuntimeError", "message": "out of memory",
                                  "traceback": "Traceback ..."}
    else:
        assert correct is not None and len(correct) == N
        acc = sum(correct) / N
        record["metrics"] = {
            "task": TASK, "split": "test", "n_examples": N, "formulation": "generate_until/chat_template/0-shot",
            "primary": "exact_match", "chance": 1 / 12,
            "values": {"exact_match": acc, "exact_match_stderr": math.sqrt(acc * (1 - acc) / (N - 1)),
                       "valid_label": 1.0, "valid_label_stderr": 0.0},
            "samples": "lm_eval/samples.jsonl", "lm_eval_results": "lm_eval/results.json",
        }
        speed: dict[str, Any] = {"load_s": 1.0, "eval_wall_s": 10.0, "eval_examples_per_s": 2.0}
        if latency is not None:
            speed.update(ttft_ms={"p50": latency[0] / 4, "p95": latency[1] / 4},
                         latency_ms={"p50": latency[0], "p95": latency[1]},
                         decode_tokens_per_s={"p50": 1000 * 16 / latency[0], "p95": 1000 * 16 / latency[1]},
                         requests_per_s=1000 / latency[0], peak_rss_mb=1234.5, gpu_max_memory_mb=None)
        record["speed"] = speed
        samples = run_dir / "lm_eval" / "samples.jsonl"
        samples.parent.mkdir(parents=True, exist_ok=True)
        with open(samples, "w") as f:
            for i, (ex_id, ok) in enumerate(zip(IDS, correct, strict=True)):
                f.write(json.dumps({"doc_id": i, "id": ex_id, "target": "cancel_order",
                                    "response": "cancel_order" if ok else "refund_status",
                                    "exact_match": float(ok), "valid_label": 1.0}) + "\n")
    write_json_atomic(run_dir / "run.json", record)
    return run_dir


# Baseline right on the first 10 ids. The zero-shot SLM is right on ids 1-17: it loses id 0 to the baseline (c=1)
# and wins ids 10-17 (b=8), so its two-sided exact McNemar p is 2 * (C(9,0) + C(9,1)) / 2**9 = 0.0390625.
BASE_CORRECT = [1] * 10 + [0] * 10
SLM_CORRECT = [0] + [1] * 17 + [0] * 2
LORA_S1 = [1] * 12 + [0] * 8   # 0.60
LORA_S2 = [1] * 14 + [0] * 6   # 0.70
GGUF_CORRECT = [1] * 11 + [0] * 9  # 0.55


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "multirun" / "2026-11-23" / "06-00-00"
    _write_run(root, "0", model="qwen2.5-coder-1.5b", role="baseline", params_b=1.54, correct=BASE_CORRECT,
               latency=(2000.0, 2600.0), cost={"usd_per_1k_requests": 0.5, "usd_per_1m_tokens": 2.0,
                                               "basis": "test price"})
    _write_run(root, "1", model="smollm2-135m", correct=SLM_CORRECT, latency=(400.0, 520.0))
    _write_run(root, "2", model="smollm2-135m", adapter="lora", seed=1, correct=LORA_S1, latency=(500.0, 650.0))
    _write_run(root, "3", model="smollm2-135m", adapter="lora", seed=2, correct=LORA_S2, latency=(600.0, 700.0))
    _write_run(root, "4", model="smollm2-135m", adapter="lora", runtime="llamacpp",
               quant={"kind": "gguf", "name": "gguf-q4_k_m", "gguf_type": "q4_k_m", "bytes": 105_000_000},
               correct=GGUF_CORRECT, latency=(250.0, 300.0),
               cost={"usd_per_1k_requests": 0.05, "usd_per_1m_tokens": 0.2, "basis": "test price"})
    _write_run(root, "5", model="gemma3-270m", params_b=0.27, adapter="lora", failed=True)
    return root


def _row(df, label: str, **match: Any) -> dict[str, Any]:
    sel = df[df["label"] == label]
    for k, v in match.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, f"{label} {match}: {len(sel)} rows"
    return sel.iloc[0].to_dict()


def test_collect_finds_every_record(sweep: Path) -> None:
    recs = collect(sweep)
    assert [r["_rel"] for r in recs] == ["0", "1", "2", "3", "4", "5"]
    assert all(Path(r["_dir"]).is_dir() for r in recs)


def test_rows_and_failed_row_is_empty_not_zero(sweep: Path) -> None:
    df = build_table(collect(sweep))
    assert len(df) == 5  # 6 runs, the two LoRA seeds collapse
    assert list(df["label"]) == [  # baseline first, then sorted by model, adapter, quantization, runtime
        "qwen2.5-coder-1.5b@transformers", "gemma3-270m+lora@transformers", "smollm2-135m+lora@transformers",
        "smollm2-135m+lora/q4_k_m@llamacpp", "smollm2-135m@transformers",
    ]
    failed = _row(df, "gemma3-270m+lora@transformers")
    assert failed["status"] == "failed"
    assert failed["error"] == "train: RuntimeError"
    for col in ("n", "accuracy", "ci95_low", "ci95_high", "retained_pct", "latency_p50_ms", "decode_tok_s",
                "peak_rss_mb", "usd_per_1k_req", "speedup", "cost_ratio", "mcnemar_p"):
        assert math.isnan(failed[col]), col
    md = (Path(write_report(sweep)["md"])).read_text()
    failed_line = next(line for line in md.splitlines() if line.startswith("| gemma3-270m"))
    assert "0.000" not in failed_line and "| failed |" in failed_line
    assert "train: RuntimeError" in failed_line


def test_relative_columns_from_inputs(sweep: Path) -> None:
    df = build_table(collect(sweep))
    base = _row(df, "qwen2.5-coder-1.5b@transformers")
    assert base["is_baseline"] and base["retained_pct"] == pytest.approx(100.0)
    assert base["speedup"] == pytest.approx(1.0)
    slm = _row(df, "smollm2-135m@transformers")
    assert slm["accuracy"] == pytest.approx(0.85)
    assert slm["retained_pct"] == pytest.approx(100 * 0.85 / 0.5)
    assert slm["speedup"] == pytest.approx(2000 / 400)
    assert slm["latency_p50_ms"] == 400 and slm["latency_p95_ms"] == 520
    assert slm["decode_tok_s"] == pytest.approx(40.0)
    assert slm["size_mb"] == pytest.approx(0.135 * 4e9 / 1e6)
    assert not slm["is_baseline"]
    # No price recorded: every cost column is empty, never 0.
    for col in ("usd_per_1k_req", "usd_per_1m_tok", "usd_per_1k_correct", "cost_ratio"):
        assert math.isnan(slm[col]), col
    gguf = _row(df, "smollm2-135m+lora/q4_k_m@llamacpp")
    assert gguf["size_mb"] == pytest.approx(105.0)  # the served GGUF, not the checkpoint
    assert gguf["quantization"] == "q4_k_m" and gguf["runtime"] == "llamacpp"
    assert gguf["cost_ratio"] == pytest.approx(0.05 / 0.5)
    assert gguf["usd_per_1k_correct"] == pytest.approx(0.05 / 0.55)
    assert gguf["speedup"] == pytest.approx(2000 / 250)
    assert base["usd_per_1k_correct"] == pytest.approx(0.5 / 0.5)


def test_bootstrap_ci_brackets_accuracy(sweep: Path) -> None:
    df = build_table(collect(sweep))
    done = df[df["status"] == "finished"]
    assert len(done) == 4
    for row in done.to_dict("records"):
        assert row["ci95_low"] <= row["accuracy"] <= row["ci95_high"], row["label"]
        assert row["ci95_low"] < row["ci95_high"]
    lo, hi = bootstrap_ci([1.0] * 17 + [0.0] * 3)
    assert 0.6 < lo < 0.85 < hi <= 1.0
    assert bootstrap_ci([1.0] * 17 + [0.0] * 3) == (lo, hi)  # fixed RNG seed
    assert bootstrap_ci([]) is None


def test_mcnemar_matches_hand_computed_value(sweep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = 2 * (math.comb(9, 0) + math.comb(9, 1)) / 2**9
    assert expected == 0.0390625
    assert mcnemar_exact(8, 1) == pytest.approx(expected)
    assert mcnemar_exact(1, 8) == pytest.approx(expected)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 3) == 1.0
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # the math.comb fallback gives the same value
    assert mcnemar_exact(8, 1) == expected
    df = build_table(collect(sweep))
    slm = _row(df, "smollm2-135m@transformers")
    assert (slm["mcnemar_b"], slm["mcnemar_c"], slm["n_paired"]) == (8, 1, N)
    assert slm["mcnemar_p"] == pytest.approx(expected)
    assert math.isnan(_row(df, "qwen2.5-coder-1.5b@transformers")["mcnemar_p"])  # not tested against itself


def test_seed_rows_collapse(sweep: Path) -> None:
    df = build_table(collect(sweep))
    lora = _row(df, "smollm2-135m+lora@transformers")
    assert lora["n_seeds"] == 2 and lora["seed"] == "1,2"
    assert lora["accuracy"] == pytest.approx(0.65)
    assert lora["accuracy_std"] == pytest.approx(math.sqrt(2 * 0.05**2))  # sample std, ddof=1
    assert lora["speedup"] == pytest.approx((2000 / 500 + 2000 / 600) / 2)
    assert lora["latency_p50_ms"] == pytest.approx(550.0)
    assert lora["run_dirs"] == "2;3"
    # McNemar per seed: (b, c) = (2, 0) and (4, 0), p = 0.5 and 0.125; the row reports the larger.
    assert lora["mcnemar_p"] == pytest.approx(0.5)
    assert lora["mcnemar_b"] == pytest.approx(3.0) and lora["mcnemar_c"] == 0
    assert math.isnan(_row(df, "smollm2-135m@transformers")["accuracy_std"])
    md = write_report(sweep)["md"].read_text()
    assert "0.650 ± 0.071" in md


def test_baseline_choice(sweep: Path) -> None:
    df = build_table(collect(sweep), baseline="smollm2-135m")
    base = _row(df, "smollm2-135m@transformers")
    assert base["is_baseline"] and int(df["is_baseline"].sum()) == 1
    assert _row(df, "qwen2.5-coder-1.5b@transformers")["retained_pct"] == pytest.approx(100 * 0.5 / 0.85)
    df = build_table([r for r in collect(sweep) if r["model"]["role"] != "baseline"])
    assert not df["is_baseline"].any()
    assert df["retained_pct"].isna().all() and df["speedup"].isna().all() and df["mcnemar_p"].isna().all()


def test_outputs_deterministic_and_well_formed(sweep: Path, tmp_path: Path) -> None:
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    paths_a = write_report(sweep, out_a)
    paths_b = write_report(sweep, out_b)
    assert set(paths_a) == {"md", "csv", "tex", "accuracy_vs_latency_png", "accuracy_vs_latency_svg",
                            "accuracy_vs_cost_png", "accuracy_vs_cost_svg"}
    for key in paths_a:
        assert paths_a[key].read_bytes() == paths_b[key].read_bytes(), key
    for path in paths_a.values():
        assert path.stat().st_size > 0
    md = paths_a["md"].read_text()
    assert md.startswith("**Comparison.**") and "n = 20 test examples" in md and "(ms)" in md
    assert "2026" not in md  # no timestamps
    tex = paths_a["tex"].read_text()
    for token in ("\\toprule", "\\midrule", "\\bottomrule", "\\caption{", "\\label{tab:slmexp-comparison}",
                  "q4\\_k\\_m", "exact\\_match"):
        assert token in tex, token
    assert re.search(r"(?<!\\)_", tex) is None  # every underscore escaped
    import pandas as pd

    csv = pd.read_csv(paths_a["csv"])
    assert len(csv) == 5 and "accuracy_std" in csv.columns
    assert csv.loc[csv["status"] == "failed", "accuracy"].isna().all()


def test_cost_plot_says_when_no_cost(sweep: Path, tmp_path: Path) -> None:
    recs = collect(sweep)
    for r in recs:
        r["cost"] = None
    import slmexp.report as report

    df = build_table(recs)
    assert df["usd_per_1k_req"].isna().all()
    png, svg = report._plot(df, "usd_per_1k_req", "cost per 1,000 requests (USD)", "Accuracy vs cost",
                            "no cost recorded", tmp_path / "accuracy_vs_cost")
    assert png.stat().st_size > 0 and "Accuracy vs cost: no cost recorded" in svg.read_text()


def test_pareto_front_and_labels() -> None:
    pts = [(100.0, 0.5), (200.0, 0.7), (150.0, 0.4), (300.0, 0.7), (50.0, 0.2)]
    assert pareto_front(pts) == [4, 0, 1]
    assert short_label("smollm2-135m", "lora", "q4_k_m", "llamacpp") == "smollm2-135m+lora/q4_k_m@llamacpp"
    assert short_label("smollm2-135m", "none", "none", "transformers") == "smollm2-135m@transformers"


def test_cli(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "slmexp.report", str(sweep), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "| model | role |" in proc.stdout
    assert f"md: {out / 'comparison.md'}" in proc.stdout
    assert (out / "accuracy_vs_latency.png").is_file()
    assert main([str(tmp_path / "empty_does_not_exist")]) == 2
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 1
