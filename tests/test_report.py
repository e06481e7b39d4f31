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


def _merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v


def _write_run(root: Path, rel: str, *, model: str, role: str = "slm", params_b: float = 0.135,
               adapter: str = "none", quant: dict[str, Any] | None = None, runtime: str = "transformers",
               seed: int = 1234, correct: list[float] | None = None, latency: tuple[float, float] | None = None,
               cost: dict[str, Any] | None = None, failed: bool = False, ids: list[str] | None = None,
               split: str = "test", metric: str = "exact_match", extra: dict[str, Any] | None = None) -> Path:
    """One run dir laid out as the pipeline writes it; `correct` is the per-example `metric` (ids `ids`, default
    IDS); `extra` is deep-merged into the record (fields other stages add: speed.contended, ...)."""
    ids = IDS if ids is None else ids
    run_dir = root / rel
    quant_cfg = {"name": (quant or {}).get("name", "none"), "kind": (quant or {}).get("kind", "none")}
    config = {
        "name": f"{model}__{TASK}", "seed": seed, "optimized_metric": "exact_match",
        "model": {"name": model, "role": role, "params_b": params_b, "dtype": "float32"},
        "adapter": {"name": adapter, **({"peft": {"r": 16}} if adapter != "none" else {})},
        "quantization": quant_cfg,
        "runtime": {"name": runtime, "batch_size": 8},
        "task": {"name": TASK, "primary_metric": metric},
        "train": {"max_steps": 24, "seed": seed},
        "eval": {"split": split, "limit": None, "bench": {"n": 20, "warmup": 2}},
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
        assert correct is not None and len(correct) == len(ids)
        n = len(ids)
        acc = sum(correct) / n
        record["metrics"] = {
            "task": TASK, "split": split, "n_examples": n, "formulation": "generate_until/chat_template/0-shot",
            "primary": metric, "chance": 1 / 12,
            "values": {metric: acc, f"{metric}_stderr": math.sqrt(acc * (1 - acc) / (n - 1)),
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
            for i, (ex_id, ok) in enumerate(zip(ids, correct, strict=True)):
                f.write(json.dumps({"doc_id": i, "id": ex_id, "target": "cancel_order",
                                    "response": "cancel_order" if ok else "refund_status",
                                    metric: float(ok), "valid_label": 1.0}) + "\n")
    _merge(record, extra or {})
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
    # McNemar per seed: (b, c) = (2, 0) and (4, 0); every seed's discordant pairs are pooled: (6, 0), so
    # p = 2 * C(6, 0) / 2**6 = 0.03125 (was the larger per-seed p, 0.5, which threw away the second seed).
    assert lora["mcnemar_p"] == pytest.approx(2 / 2**6)
    assert lora["mcnemar_b"] == 6 and lora["mcnemar_c"] == 0
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
    assert set(paths_a) == {"md", "csv", "tex", "tex_macros", "accuracy_vs_latency_png", "accuracy_vs_latency_svg",
                            "accuracy_vs_cost_png", "accuracy_vs_cost_svg", "flips_json", "html"}
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


# --- issue 15: intervals that mean what they say, paired statistics, refusals, and the fields other stages add ---
# Each test below fails on the report of HEAD~ (percentile bootstrap at p = 0, no paired CIs, max-over-seeds
# McNemar, no Holm, ratios printed across different example sets, no contended/provenance/split/strict columns).


def test_wilson_matches_published_values_and_is_never_zero_width() -> None:
    import slmexp.report as report

    # Newcombe (1998), Stat Med 17:857, Table II, method 3 (Wilson score without continuity correction)
    for (k, n), (lo, hi) in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605), (0, 20): (0.0, 0.1611),
                             (1, 29): (0.0061, 0.1718), (0, 10): (0.0, 0.2775)}.items():
        assert report.wilson_ci(k, n) == pytest.approx((lo, hi), abs=5e-5), (k, n)
    lo, hi = report.wilson_ci(0, 100)  # the case the table printed as [0.000, 0.000]
    z2 = 1.959963984540054**2
    assert lo == 0.0 and hi == pytest.approx(z2 / (100 + z2)) and hi > 0.036
    lo, hi = report.wilson_ci(100, 100)
    assert hi == 1.0 and lo == pytest.approx(1 - z2 / (100 + z2))
    assert report.wilson_ci(0, 0) is None


def test_table_ci_at_zero_accuracy_is_wilson_and_f1_keeps_bootstrap(tmp_path: Path) -> None:
    import slmexp.report as report

    ids = [f"ex-{i:03d}" for i in range(100)]
    root = tmp_path / "sweep"
    _write_run(root, "0", model="qwen2.5-coder-1.5b", role="baseline", ids=ids, correct=[1] * 50 + [0] * 50)
    _write_run(root, "1", model="smollm2-135m", ids=ids, correct=[0] * 100)
    df = build_table(collect(root))
    slm = _row(df, "smollm2-135m@transformers")
    assert slm["accuracy"] == 0.0
    assert slm["ci95_low"] == 0.0 and slm["ci95_high"] == pytest.approx(0.03699, abs=5e-5)  # HEAD: [0, 0]
    assert slm["ci_method"] == "wilson"
    assert "| 0.000 | [0.000, 0.037] |" in report.to_markdown(df)
    # a non-binary metric keeps the percentile bootstrap over examples, and says so
    f1 = [0.5, 1.0, 0.25, 0.75] * 5
    _write_run(tmp_path / "f1", "0", model="smollm2-135m", metric="field_f1", correct=f1)
    row = build_table(collect(tmp_path / "f1")).iloc[0].to_dict()
    assert row["ci_method"] == "bootstrap"
    assert (row["ci95_low"], row["ci95_high"]) == report.bootstrap_ci(f1)
    assert "percentile bootstrap" in report.to_markdown(build_table(collect(tmp_path / "f1")))


def test_paired_bootstrap_ci_on_hand_made_vectors() -> None:
    import slmexp.report as report
    from slmexp.report import stats

    ci = report.paired_bootstrap_ci
    # Every example scores 0.2 more than the baseline: the paired CI of the difference is exactly 0.2, whatever
    # the resample (an unpaired interval would be as wide as the spread of the scores).
    base = [0.1, 0.5, 0.3, 0.7, 0.0, 0.6, 0.2, 0.4]
    row = [b + 0.2 for b in base]
    assert ci(row, base, stats.ACCURACY_DELTA) == pytest.approx((0.2, 0.2))
    # Twice the baseline's score on every example: retained is 200 % in every resample.
    assert ci([2 * b for b in base], base, stats.RETAINED_PCT) == pytest.approx((200.0, 200.0))
    # 0/1 scores, the row right on 3 more examples and never worse (b=3, c=0): each resampled difference is a mean
    # of values in {0, 1/20}, so the interval stays within [0, 1]; an unpaired one would dip below 0.
    y = [1] * 10 + [0] * 10
    x = [1] * 13 + [0] * 7
    lo, hi = ci(x, y, stats.ACCURACY_DELTA)
    assert lo == 0.0 and 0.15 < hi <= 0.35
    assert ci(x, y, stats.ACCURACY_DELTA) == (lo, hi)  # seeded
    # The same numbers by hand: the same seeded index draw applied to both vectors.
    import numpy as np

    idx = np.random.default_rng(report.BOOTSTRAP_SEED).integers(0, 20, size=(report.BOOTSTRAP_RESAMPLES, 20))
    d = (np.asarray(x)[idx].mean(axis=1) - np.asarray(y)[idx].mean(axis=1))
    assert (lo, hi) == pytest.approx(tuple(np.percentile(d, [2.5, 97.5])))
    # Speed-up: each request 2x or 4x faster than the baseline's same request -> the median ratio lies in [2, 4].
    base_lat = [1000.0 + 37 * i for i in range(20)]
    row_lat = [b / (2 if i % 2 else 4) for i, b in enumerate(base_lat)]
    lo, hi = ci(row_lat, base_lat, stats.SPEEDUP)
    assert 2.0 <= lo < hi <= 4.0
    assert ci([1.0], [1.0, 2.0], stats.ACCURACY_DELTA) is None  # not aligned
    assert ci([1.0, 1.0], [0.0, 0.0], stats.RETAINED_PCT) is None  # baseline 0: undefined, not infinite


def test_holm_on_known_p_values_and_in_the_table(sweep: Path) -> None:
    import slmexp.report as report

    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert report.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert report.holm([0.5, 0.9]) == [1.0, 1.0]
    assert report.holm([]) == []
    df = build_table(collect(sweep))
    # raw p: zero-shot 0.0390625 (b/c 8/1), LoRA pooled over 2 seeds 2/2**6 (6/0), GGUF 1.0 (1/0); m = 3
    holm = {lab: _row(df, lab)["mcnemar_p_holm"] for lab in
            ("smollm2-135m@transformers", "smollm2-135m+lora@transformers", "smollm2-135m+lora/q4_k_m@llamacpp")}
    assert holm == pytest.approx({"smollm2-135m@transformers": 3 * 2 / 2**6,
                                  "smollm2-135m+lora@transformers": 3 * 2 / 2**6,
                                  "smollm2-135m+lora/q4_k_m@llamacpp": 1.0})
    assert _row(df, "smollm2-135m@transformers")["mcnemar_p"] == pytest.approx(0.0390625)  # raw kept too
    md = write_report(sweep)["md"].read_text()
    assert "| McNemar p (raw) | p (Holm) |" in md and "Holm-adjusted" in md


def test_paired_cis_in_the_table(sweep: Path) -> None:
    import slmexp.report as report
    from slmexp.report import stats

    df = build_table(collect(sweep))
    slm = _row(df, "smollm2-135m@transformers")
    assert slm["n_paired"] == N and slm["accuracy_delta"] == pytest.approx(0.35)
    assert (slm["retained_pct_ci95_low"], slm["retained_pct_ci95_high"]) == report.paired_bootstrap_ci(
        SLM_CORRECT, BASE_CORRECT, stats.RETAINED_PCT)
    assert slm["retained_pct_ci95_low"] < slm["retained_pct"] < slm["retained_pct_ci95_high"]
    # GGUF vs baseline: b=1, c=0, never worse on a paired example: the paired CI of the delta starts at 0
    gguf = _row(df, "smollm2-135m+lora/q4_k_m@llamacpp")
    assert gguf["accuracy_delta_ci95_low"] == 0.0 and gguf["accuracy_delta_ci95_high"] > 0.0
    md = write_report(sweep)["md"].read_text()
    assert "| +0.350 [+0.100, +0.600] | 170.0 [114.3, 300.0] |" in md  # value [paired CI] in one cell
    assert "| n_paired |" in md


def _requests(lat: list[float], ids: list[str] = IDS) -> list[dict[str, Any]]:
    return [{"id": i, "latency_ms": v} for i, v in zip(ids, lat, strict=True)]


def test_speedup_and_cost_ratio_get_paired_cis_from_per_request_latencies(tmp_path: Path) -> None:
    base_lat = [1000.0 + 37 * i for i in range(N)]
    row_lat = [b / (2 if i % 2 else 4) for i, b in enumerate(base_lat)]
    hw = {"basis": "hardware"}
    root = tmp_path / "sweep"
    _write_run(root, "0", model="qwen2.5-coder-1.5b", role="baseline", correct=BASE_CORRECT, latency=(1000.0, 1700.0),
               cost={"usd_per_1k_requests": 0.5, **hw}, extra={"speed": {"requests": _requests(base_lat)}})
    _write_run(root, "1", model="smollm2-135m", correct=SLM_CORRECT, latency=(333.0, 500.0),
               cost={"usd_per_1k_requests": 0.1, **hw}, extra={"speed": {"requests": _requests(row_lat)}})
    slm = _row(build_table(collect(root)), "smollm2-135m@transformers")
    assert 2.0 <= slm["speedup_ci95_low"] < slm["speedup_ci95_high"] <= 4.0
    # cost ratio 0.2 recorded; per-request time ratios between 1/4 and 1/2 rescale it, so the CI brackets 0.2
    assert slm["cost_ratio"] == pytest.approx(0.2)
    assert slm["cost_ratio_ci95_low"] < 0.2 < slm["cost_ratio_ci95_high"]
    # timed requests on other examples: no speed-up at all, and the row says why
    _write_run(root, "1", model="smollm2-135m", correct=SLM_CORRECT, latency=(333.0, 500.0),
               extra={"speed": {"requests": _requests(row_lat, [f"other-{i}" for i in range(N)])}})
    slm = _row(build_table(collect(root)), "smollm2-135m@transformers")
    assert math.isnan(slm["speedup"]) and "different timed requests" in slm["compare_note"]
    assert slm["retained_pct"] == pytest.approx(170.0)  # accuracy was scored on the same examples


def test_rows_on_different_example_sets_are_not_compared(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    _write_run(root, "0", model="qwen2.5-coder-1.5b", role="baseline", correct=BASE_CORRECT, latency=(2000.0, 2600.0))
    other = IDS[:10] + [f"si-test-{i:04d}" for i in range(101, 111)]  # 10 shared ids, 10 others
    _write_run(root, "1", model="smollm2-135m", correct=SLM_CORRECT, ids=other, latency=(400.0, 520.0))
    _write_run(root, "2", model="gemma3-270m", correct=SLM_CORRECT, split="validation", latency=(400.0, 520.0))
    df = build_table(collect(root))
    slm = _row(df, "smollm2-135m@transformers")
    for col in ("retained_pct", "accuracy_delta", "speedup", "mcnemar_p", "mcnemar_p_holm",
                "retained_pct_ci95_low"):
        assert math.isnan(slm[col]), col
    assert slm["n_paired"] == 10 and slm["accuracy"] == pytest.approx(0.85)
    assert "different example sets" in slm["compare_note"] and "10 shared" in slm["compare_note"]
    val = _row(df, "gemma3-270m@transformers")
    assert math.isnan(val["retained_pct"]) and "split validation" in val["compare_note"]
    md = write_report(root)["md"].read_text()
    line = next(x for x in md.splitlines() if x.startswith("| smollm2-135m "))
    assert "different example sets" in line
    assert "Relative cells left empty: smollm2-135m@transformers: not compared" in md
    assert "| split |" in md  # rows on two splits: each row says which


def test_contended_provenance_split_strict_selection_and_no_correct_answer(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    q41 = "dequantized from GGUF Q4_1"
    _write_run(root, "0", model="qwen2.5-coder-1.5b", role="baseline", correct=BASE_CORRECT, latency=(2000.0, 2600.0),
               extra={"speed": {"contended": False}})
    # same config and seed range, different weights: two rows, never one averaged row
    _write_run(root, "1", model="smollm2-135m", seed=1, correct=SLM_CORRECT, latency=(400.0, 520.0),
               extra={"speed": {"contended": True, "contention": {"contended": True, "other_cpu_share": 0.4}},
                      "model": {"weights_provenance": q41}, "provenance": {"model_sha256": "a" * 64},
                      "metrics": {"values": {"strict_match": 0.25}}})
    _write_run(root, "2", model="smollm2-135m", seed=2, correct=SLM_CORRECT, latency=(400.0, 520.0),
               extra={"model": {"weights_provenance": q41}, "provenance": {"model_sha256": "b" * 64}})
    _write_run(root, "3", model="smollm2-135m", adapter="lora", correct=[0] * N, latency=(500.0, 600.0),
               cost={"usd_per_1k_requests": 0.02, "usd_per_correct": None, "usd_per_correct_note": "no correct answer"},
               extra={"metrics": {"selection": {"chosen_on": "validation", "metric": "exact_match",
                                                "validation": 0.72, "n_validation": 50, "test": 0.0, "n_test": 20,
                                                "params": ["adapter.peft.r=16"], "n_finished": 8}}})
    df = build_table(collect(root))
    rows = df[df["model"] == "smollm2-135m"]
    zs = rows[rows["adapter"] == "none"]
    assert len(zs) == 2 and set(zs["n_seeds"]) == {1}  # different sha256: not collapsed
    assert set(zs["weights_provenance"]) == {q41}
    contended = dict(zip(zs["seed"], zs["contended"], strict=True))
    assert contended == {"1": True, "2": None}  # absent = empty, never False
    assert bool(_row(df, "qwen2.5-coder-1.5b@transformers")["contended"]) is False
    md = write_report(root)["md"].read_text()
    lines = {x.split(" | ")[0]: x for x in md.splitlines() if x.startswith("| ")}
    assert f"| smollm2-135m ({q41})" in lines
    contended_line = next(x for x in md.splitlines() if x.startswith(f"| smollm2-135m ({q41})") and "| yes |" in x)
    assert "| 0.250 |" in contended_line  # strict_match column, present because one row has it
    assert "| strict |" in md and "| contended |" in md
    assert "figures not comparable): smollm2-135m@transformers [weights.sha256=aaaaaaaaaaaa]." in md
    assert "from the test split" in md
    lora_line = next(x for x in md.splitlines() if x.startswith("| smollm2-135m | slm | 0.135 | lora"))
    assert "no correct answer" in lora_line
    assert "chosen on validation (exact_match 0.720, n=50, best of 8 trials: adapter.peft.r=16); test 0.000 (n=20)" \
        in lora_line
    assert "chosen on the validation split" in md
    tex = write_report(root)["tex"].read_text()
    assert "(dequantized from GGUF Q4\\_1)" in tex and "(contended)" in tex


def test_rss_at_load_is_shown_next_to_the_serving_peak(tmp_path: Path, sweep: Path) -> None:
    """A multirun's jobs share one process, so a later job's serving peak starts from what earlier jobs left: the
    table prints that floor (speed.rss_before_load_mb) beside the peak, and leaves the column out when no run has
    it (records written before the field existed)."""
    root = tmp_path / "shared-process"
    _write_run(root, "0", model="qwen2.5-coder-1.5b", role="baseline", params_b=1.54, correct=BASE_CORRECT,
               latency=(2000.0, 2600.0), extra={"speed": {"peak_rss_mb": 1239.6, "rss_before_load_mb": 66.6}})
    _write_run(root, "1", model="smollm2-135m", correct=SLM_CORRECT, latency=(400.0, 520.0),
               extra={"speed": {"peak_rss_mb": 2264.5, "rss_before_load_mb": 1523.6}})
    df = build_table(collect(root))
    assert _row(df, "smollm2-135m@transformers")["rss_at_load_mb"] == pytest.approx(1523.6)
    lines = Path(write_report(root)["md"]).read_text().splitlines()
    header = next(line for line in lines if line.startswith("| model |")).split(" | ")
    slm = next(line for line in lines if line.startswith("| smollm2-135m")).split(" | ")
    at = header.index("RSS at load (MiB)")
    assert header[at - 1] == "peak RSS (MiB)" and (slm[at - 1], slm[at]) == ("2264", "1524")
    plain = Path(write_report(sweep)["md"]).read_text()
    assert "RSS at load" not in next(line for line in plain.splitlines() if line.startswith("| model |"))
