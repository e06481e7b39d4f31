"""SLM-first routing: composing a threshold from per-request measurements, the validity checks for generation tasks,
and a routed job end to end on tiny models (both models' answers cached: a second threshold measures nothing)."""

from __future__ import annotations

import json

import pytest

from slmexp.errors import ConfigError
from tests.conftest import compose


def _req(conf: float | None, correct: float, lat: float, usd: float) -> dict:
    return {"confidence": conf, "correct": correct, "latency_s": lat, "cost_usd": usd}


SLM = [_req(0.9, 1.0, 0.1, 1e-6), _req(0.4, 0.0, 0.1, 1e-6), _req(0.6, 0.0, 0.2, 2e-6)]
LLM = [_req(None, 1.0, 1.0, 1e-5), _req(None, 1.0, 2.0, 2e-5), _req(None, 0.0, 1.0, 1e-5)]


def test_threshold_composes_accuracy_latency_and_cost_per_request() -> None:
    from slmexp.router import compose as route

    r = route(SLM, LLM, 0.5)  # only request 1 (confidence 0.4) is escalated
    assert r["_escalated"] == [False, True, False] and r["escalated_share"] == pytest.approx(1 / 3)
    assert r["accuracy"] == pytest.approx(2 / 3)  # SLM right on 0, LLM right on 1, SLM wrong on 2
    assert r["latency_ms"]["p50"] == pytest.approx(200.0) and r["latency_ms"]["mean"] == pytest.approx(800.0)
    assert r["usd_per_1k_requests"] == pytest.approx(1000 * (1e-6 + 1e-6 + 2e-5 + 2e-6) / 3)
    assert route(SLM, LLM, 0.0)["escalated_share"] == 0 and route(SLM, LLM, 1.01)["escalated_share"] == 1
    slm_only, llm_only = route(SLM, LLM, None, "slm"), route(SLM, LLM, None, "llm")
    assert slm_only["accuracy"] == pytest.approx(1 / 3) and slm_only["usd_per_1k_requests"] == pytest.approx(4e-3 / 3)
    assert llm_only["accuracy"] == pytest.approx(2 / 3) and llm_only["usd_per_1k_requests"] == pytest.approx(4e-2 / 3)
    assert llm_only["latency_ms"]["mean"] == pytest.approx(4000 / 3)  # no SLM pass in front


def test_routed_dollars_per_correct_at_accuracy_zero_says_no_correct_answer_and_ci_has_width() -> None:
    """A routed system with no correct answer gets the cost stage's note, not an empty "not measured" cell, and its
    accuracy a Wilson interval (never [0, 0])."""
    from slmexp.report.router import router_rows
    from slmexp.router import compose as route

    wrong = [{**r, "correct": 0.0} for r in SLM]
    llm_wrong = [{**r, "correct": 0.0} for r in LLM]
    routed = route(wrong, llm_wrong, 0.5)
    assert routed["usd_per_correct"] is None and routed["usd_per_correct_note"] == "no correct answer"
    assert route(SLM, LLM, 0.5)["usd_per_correct_note"] == ""
    block = {"llm": "big", "n": 3, "threshold": 0.5, "routed": routed,
             "slm_only": route(wrong, llm_wrong, None, "slm"), "llm_only": route(wrong, llm_wrong, None, "llm")}
    rec = {"router": block, "run": {"status": "finished"}, "model": {"name": "small"}, "metrics": {"split": "test"}}
    rows = router_rows([rec])
    assert [r["system"] for r in rows] == ["slm-only", "routed", "llm-only"]
    for r in rows:
        assert r["usd_per_1k_correct"] is None and r["usd_per_1k_correct_note"] == "no correct answer"
        lo, hi = r["accuracy_ci"]
        assert lo == 0.0 and hi > 0.3  # Wilson at 0/3


def test_label_softmax_is_stable_and_normalised() -> None:
    from slmexp.label_scoring import label_softmax

    p = label_softmax([-1000.0, -1001.0, -1e6])
    assert p.sum() == pytest.approx(1.0) and p[0] == pytest.approx(1 / (1 + pytext_e()))


def pytext_e() -> float:
    import math

    return math.exp(-1)


@pytest.mark.parametrize(("kind", "output", "valid"), [
    ("extraction", '{"invoice_number": "A-1", "total": 12.5}', 1.0),
    ("extraction", 'Here it is:\n```json\n{"total": 3}\n```', 1.0),
    ("extraction", '{"total": 3,', 0.0),
    ("extraction", "[1, 2]", 0.0),
    ("tool_call", '{"name": "get_weather", "arguments": {"city": "Oslo"}}', 1.0),
    ("tool_call", '{"name": "get_weather", "arguments": "Oslo"}', 0.0),
    ("tool_call", "I would call get_weather", 0.0),
    ("qa", "Paris", 1.0),
    ("qa", "   ", 0.0),
])
def test_validity_confidence_on_hand_made_outputs(kind: str, output: str, valid: float) -> None:
    from slmexp.tasks.kinds import KINDS

    assert KINDS[kind].validity(output, None) == valid


def test_validity_uses_the_tasks_own_lists() -> None:
    from omegaconf import OmegaConf

    from slmexp.tasks.metrics import valid_extraction, valid_tool_call

    tools = OmegaConf.create({"tools": [{"name": "get_weather"}, "book_flight"]})
    assert valid_tool_call('{"name": "book_flight", "arguments": {}}', tools) == 1.0
    assert valid_tool_call('{"name": "delete_db", "arguments": {}}', tools) == 0.0
    keys = OmegaConf.create({"required_keys": ["total", "date"]})
    assert valid_extraction('{"total": 1}', keys) == 0.0 and valid_extraction('{"total": 1, "date": "x"}', keys) == 1.0


def test_router_config_errors_name_the_key() -> None:
    from slmexp.router import validate

    with pytest.raises(ConfigError, match=r"^router\.threshold: must be a number"):
        validate(compose(["router=slm-first", "router.threshold=-1"]))
    with pytest.raises(ConfigError, match=r"^router\.confidence"):
        validate(compose(["router=slm-first", "router.confidence=vibes"]))
    validate(compose(["sweep=router"]))


def test_routed_job_end_to_end_on_tiny_models_and_report(tiny_model_dir, tiny_overrides, tmp_path) -> None:
    from slmexp.pipeline import run_job
    from slmexp.record import load
    from slmexp.report import write_report

    base = [*tiny_overrides, "eval.limit=4", "router=slm-first", "runtime@router.llm.runtime=transformers",
            f"router.llm.model.source.path={tiny_model_dir}", "router.llm.model.name=tiny-llm"]
    run_job(compose([*base, "router.threshold=0.5"]), tmp_path / "sweep" / "0")
    rec = load(tmp_path / "sweep" / "0")
    r = rec["router"]
    assert r["measured_now"] == {"slm": 4, "llm": 4} and r["confidence"] == "label_prob"
    assert r["split"] == rec["metrics"]["split"] == "test"  # the report keeps validation and test rows apart
    assert rec["metrics"]["values"]["exact_match"] == r["routed"]["accuracy"]
    assert rec["cost"]["basis"] == "routed" and rec["cost"]["usd_per_1k_requests"] > 0
    assert rec["speed"]["latency_ms"]["p50"] > 0 and rec["run"]["stages_s"].get("route") is not None
    from slmexp.summary import print_summary

    print_summary(rec)  # the CLI's closing summary reads the routed blocks
    samples = [json.loads(x) for x in (tmp_path / "sweep" / "0" / r["samples"]).read_text().splitlines()]
    assert len(samples) == 4 and all(0 < s["slm_confidence"] <= 1 for s in samples)
    assert sum(s["escalated"] for s in samples) == r["n_escalated"]

    run_job(compose([*base, "router.threshold=1.01"]), tmp_path / "sweep" / "1")  # another threshold: all cached
    r1 = load(tmp_path / "sweep" / "1")["router"]
    assert r1["measured_now"] == {"slm": 0, "llm": 0} and r1["escalated_share"] == 1.0
    assert r1["slm_only"] == r["slm_only"] and r1["llm_only"] == r["llm_only"]

    paths = write_report(tmp_path / "sweep")
    md = paths["router_md"].read_text()
    assert [line.split(" | ")[2] for line in md.splitlines()[4:]] == ["slm-only", "routed", "routed", "llm-only"]
    assert paths["router_png"].stat().st_size > 0
    assert "transformers→tiny-llm" in paths["md"].read_text()


def test_router_sweep_chooses_its_threshold_on_validation_accuracy_then_fewest_escalations(tmp_path) -> None:
    import yaml

    from slmexp.callbacks import choose, trials

    # (threshold, validation accuracy, escalated share): 0.8 and 0.9 tie on accuracy; 0.8 escalates less
    for job, (thr, acc, esc) in enumerate([(0.0, 0.55, 0.0), (0.8, 0.70, 0.30), (0.9, 0.70, 0.45),
                                           (1.01, 0.69, 1.0)]):
        d = tmp_path / str(job)
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"router.threshold={thr}"]))
        (d / "run.json").write_text(json.dumps({
            "run": {"status": "finished"}, "config": {"optimized_metric": "exact_match"}, "router": {"threshold": thr},
            "metrics": {"split": "validation", "primary": "exact_match",
                        "values": {"exact_match": acc, "escalated_share": esc}}}))
    pick = {"metric": "exact_match", "prefer_lowest": "metrics.values.escalated_share"}
    assert choose(trials(tmp_path), **pick).record["router"]["threshold"] == 0.8
    assert choose(trials(tmp_path), tolerance=0.2, **pick).record["router"]["threshold"] == 0.0  # all tie: cheapest
    assert choose(trials(tmp_path), tolerance=0.01, **pick).record["router"]["threshold"] == 0.8


def _labels_and_hflm_reference(tiny_model_dir):
    """(runtime, chat context, label continuations, HFLM's loglikelihood of each): what both scorers must match."""
    from lm_eval.api.instance import Instance

    from slmexp.runtimes.transformers import TransformersRuntime

    rt = TransformersRuntime(str(tiny_model_dir), device="cpu", batch_size=4)
    lm = rt.lm_eval_model()
    ctx = lm.apply_chat_template([{"role": "user", "content": "Where is my parcel?"}])
    conts = ["order_status", "cancel_order", "speak_to_human", "x"]
    ref = [x[0] for x in lm.loglikelihood([Instance("loglikelihood", {}, (ctx, c), i) for i, c in enumerate(conts)],
                                          disable_tqdm=True)]
    return rt, ctx, conts, ref


def test_shared_prefix_scoring_equals_lm_evals_loglikelihood(tiny_model_dir) -> None:
    from slmexp.runtimes._label_scores import shared_prefix_logprobs

    rt, ctx, conts, ref = _labels_and_hflm_reference(tiny_model_dir)
    got = shared_prefix_logprobs(rt.model, [rt.lm_eval_model()._encode_pair(ctx, c) for c in conts])
    assert got == pytest.approx(ref, abs=1e-3)


def test_runtime_label_scoring_equals_lm_evals_loglikelihood(tiny_model_dir) -> None:
    """The runtime capability the router and the choice speed stage call (through slmexp.runtimes.score_labels)
    gives HFLM's numbers: on transformers the shared-prefix kernel, elsewhere lm-eval's own requests."""
    from slmexp.runtimes import score_labels

    rt, ctx, conts, ref = _labels_and_hflm_reference(tiny_model_dir)
    assert score_labels(rt, ctx, conts) == pytest.approx(ref, abs=1e-3)
    assert rt.score_labels(ctx, conts) == score_labels(rt, ctx, conts)
