"""decoding=constrained on the local runtimes: every answer parses and validates, in the accuracy pass and in the
timed `stream` requests, on the tiny random llama (fast) and on the real SmolLM2-135M (slow).

A random model is the hard case: left free it writes byte soup (valid_label 0, json_valid 0), so every valid answer
below is the grammar's doing; an answer the grammar lets run past the token budget would fail the checks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from slmexp import decoding
from slmexp.tasks import load_task, render_prompt
from slmexp.tasks.metrics import classification_results, extraction_results, tool_call_results
from tests.conftest import compose

pytest.importorskip("llguidance")

TASKS = ("support-intent", "invoice-extraction", "tool-call")
BUDGET = {"support-intent": 16, "invoice-extraction": 256, "tool-call": 256}


def _spec(task_name: str):
    cfg = compose([f"task={task_name}", "decoding=constrained"])
    task = load_task(cfg.task, ["test"])
    return task, decoding.build(cfg, task)


def _valid(task, constraint, text: str, engine: str = "llguidance") -> None:
    """The answer is in the answer space: one label exactly, or JSON valid under the constraint's schema."""
    if constraint.choices is not None:
        assert text in constraint.choices, text
        return
    value = json.loads(text)
    # A random model's byte soup can hold invalid UTF-8, which decodes to one U+FFFD per bad byte: a string the
    # grammar counted as N characters then reads longer. Real models write text; every other check stays.
    schema = _without("maxLength", constraint.schema) if "\ufffd" in text else constraint.schema
    if engine == "gbnf":  # llama-cpp-python's converter ignores minimum/maximum (docs/structured-outputs.md)
        schema = _without("maximum", _without("minimum", schema))
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(value)]
    assert errors == [], (text, errors)


def _without(key: str, schema):
    if isinstance(schema, dict):
        return {k: _without(key, v) for k, v in schema.items() if k != key}
    if isinstance(schema, list):
        return [_without(key, v) for v in schema]
    return schema


def _check_stream(runtime, task_name: str, n: int = 2, engine: str = "llguidance") -> list[str]:
    task, spec = _spec(task_name)
    runtime.constrain(spec)
    out = []
    for row in task.splits["test"][:n]:
        prompt = render_prompt(task.cfg, row)
        text = "".join(chunk for chunk, _t in runtime.stream(prompt, BUDGET[task_name],
                                                              stop=list(task.cfg.generation.until)))
        _valid(task, spec.for_text(prompt), text, engine)
        out.append(text)
    return out


# Classification answers are a few tokens; a random model's JSON fills most of its budget (~10 s a request on
# the reference machine's shared 2 cores), so those variants are in the slow tier.
KINDS = [pytest.param(t, marks=() if t == "support-intent" else pytest.mark.slow) for t in TASKS]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir) -> Path:
    return tiny_model_dir


@pytest.mark.parametrize("task_name", KINDS)
def test_transformers_stream_is_constrained_tiny(tiny, task_name) -> None:
    from slmexp.runtimes.transformers import TransformersRuntime

    with TransformersRuntime(str(tiny), device="cpu", batch_size=2) as rt:
        _check_stream(rt, task_name)


@pytest.fixture(scope="module")
def tiny_gguf(tiny, tmp_path_factory) -> Path:
    pytest.importorskip("llama_cpp")
    from slmexp.quantize.gguf import export_gguf

    return export_gguf(tiny, tmp_path_factory.mktemp("constrained-gguf"), "f16").path


@pytest.mark.parametrize("task_name", KINDS)
def test_llamacpp_stream_is_constrained_tiny(tiny, tiny_gguf, task_name) -> None:
    from slmexp.runtimes.llamacpp import LlamaCppRuntime

    with LlamaCppRuntime(str(tiny), artifact_path=str(tiny_gguf), n_ctx=2048, n_threads=2) as rt:
        _check_stream(rt, task_name, engine="gbnf")


def _accuracy_pass(tmp_path, overrides: list[str]) -> dict:
    """One job through the pipeline (accuracy pass + timed requests); its run record."""
    from slmexp.pipeline import run_job

    cfg = compose(overrides)
    return run_job(cfg, tmp_path / "run")


@pytest.mark.slow  # a whole job each (~25 s on the shared reference machine)
@pytest.mark.parametrize("runtime", ["transformers", "llamacpp"])
@pytest.mark.parametrize("task_name, metric", [("support-intent", "valid_label"),
                                               ("invoice-extraction", "json_valid"), ("tool-call", "valid_call")])
def test_accuracy_pass_and_speed_stage_are_constrained_tiny(tiny_overrides, tmp_path, runtime, task_name,
                                                             metric) -> None:
    if runtime == "llamacpp":
        pytest.importorskip("llama_cpp")
    rec = _accuracy_pass(tmp_path, [*tiny_overrides, f"task={task_name}", f"runtime={runtime}",
                                    "decoding=constrained", "eval.limit=3", "eval.bench.n=2", "eval.bench.warmup=0",
                                    f"task.generation.max_new_tokens={BUDGET[task_name]}",
                                    *(["runtime.n_ctx=2048"] if runtime == "llamacpp" else [])])
    metrics = rec["metrics"]
    assert metrics["decoding"] == "constrained"
    assert metrics["values"][metric] == 1.0, metrics["values"]
    assert rec["speed"]["n_requests"] == 2 * 3 and rec["speed"]["output_tokens"]["total"] > 0  # x 3 passes
    budget = metrics["decoding_budget"]  # decoding.budget=fit: the accuracy pass and the timed requests alike
    assert budget["task_max_new_tokens"] == BUDGET[task_name]
    assert rec["speed"]["max_new_tokens"] == budget["max_new_tokens"] >= BUDGET[task_name]


def test_results_functions_accept_constrained_answers() -> None:
    """The metric parsers score a grammar-shaped answer (no prose, json.dumps separators) as valid."""
    assert classification_results({"choices": ["a_b", "c"], "target": "c"}, ["c"])["valid_label"] == 1.0
    gold = {"vendor": "X", "total": 1.5}
    assert extraction_results({"gold": json.dumps(gold)}, [json.dumps(gold)])["json_strict"] == 1.0
    tools = [{"name": "f", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]
    call = {"name": "f", "arguments": {"q": "x"}}
    assert tool_call_results({"gold": json.dumps(call), "tools": json.dumps(tools)},
                             [json.dumps(call)])["valid_call"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["transformers", "llamacpp"])
def test_real_smollm2_constrained_outputs_validate(runtime, tmp_path) -> None:
    """The real SmolLM2-135M-Instruct (shipped wheel): every constrained answer validates, in the accuracy pass and
    in the timed requests, for classification, extraction and tool calling."""
    if runtime == "llamacpp":
        pytest.importorskip("llama_cpp")
    for task_name, metric in (("support-intent", "valid_label"), ("invoice-extraction", "json_valid"),
                              ("tool-call", "valid_call")):
        rec = _accuracy_pass(tmp_path / task_name, [f"task={task_name}", f"runtime={runtime}", "decoding=constrained",
                                                    "eval.limit=5", "eval.bench.n=2", "eval.bench.warmup=0",
                                                    f"paths.output_dir={tmp_path}/o"])
        assert rec["metrics"]["values"][metric] == 1.0, (task_name, rec["metrics"]["values"])
