"""slmexp.decoding: the answer spaces of decoding=constrained (schemas, labels, tool calls) and the config checks
that refuse what cannot be constrained, before any model loads. No model is loaded here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from jsonschema import Draft202012Validator

from slmexp import decoding
from slmexp.decoding.schema import derive_schema, tool_call_schema
from slmexp.errors import ConfigError
from slmexp.tasks import load_task, render_prompt
from tests.conftest import compose

# The schema derived from the shipped invoice task's gold objects (train + validation + test): every field is in
# every gold object, none is ever null, money is a number and the line count an integer, strings are bounded by
# twice the longest gold value (STRING_SLACK), and no other key is allowed.
INVOICE_SCHEMA = {
    "type": "object",
    "properties": {
        "vendor": {"type": "string", "maxLength": 102},
        "invoice_number": {"type": "string", "maxLength": 26},
        "date": {"type": "string", "maxLength": 20},
        "currency": {"type": "string", "maxLength": 16},
        "total": {"type": "number"},
        "tax": {"type": "number"},
        "line_items": {"type": "integer"},
    },
    "required": ["vendor", "invoice_number", "date", "currency", "total", "tax", "line_items"],
    "additionalProperties": False,
}


def _task(overrides: list[str]):
    cfg = compose(overrides)
    return cfg, load_task(cfg.task, ["train", "validation", "test"])


def test_derived_schema_of_the_shipped_invoice_task() -> None:
    cfg, task = _task(["task=invoice-extraction", "decoding=constrained"])
    spec = decoding.build(cfg, task)
    assert spec is not None and spec.default is not None
    assert spec.default.schema == INVOICE_SCHEMA
    validator = Draft202012Validator(INVOICE_SCHEMA)
    gold = task.splits["test"][0]["target"]
    assert validator.is_valid(gold)
    assert not validator.is_valid({**gold, "total": "340.52"})  # a number as a string
    assert not validator.is_valid({**gold, "note": "x"})  # an invented key
    assert not validator.is_valid({k: v for k, v in gold.items() if k != "date"})  # a missing field


def test_derived_schema_types_nullability_and_optional_keys() -> None:
    schema = derive_schema([{"a": 1, "b": None, "c": [1, 2]}, {"a": 2.5, "b": "x"}])
    assert schema["properties"]["a"] == {"type": "number"}
    assert schema["properties"]["b"] == {"type": ["null", "string"], "maxLength": 16}
    assert schema["properties"]["c"] == {"type": "array", "items": {"type": "integer"}}
    assert schema["required"] == ["a", "b"]


def test_tool_call_constraint_is_the_rows_own_tools() -> None:
    cfg, task = _task(["task=tool-call", "decoding=constrained"])
    spec = decoding.build(cfg, task)
    row = task.splits["test"][0]
    prompt = render_prompt(task.cfg, row)
    constraint = spec.for_text(f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n")
    assert constraint is spec.for_doc({"prompt": prompt})
    validator = Draft202012Validator(constraint.schema)
    assert validator.is_valid(row["target"])
    offered = {t["name"] for t in row["tools"]}
    other = next(t for r in task.splits["test"] for t in r["tools"] if t["name"] not in offered)
    assert not validator.is_valid({"name": other["name"], "arguments": {}})  # a tool this row does not offer
    args = dict(row["target"]["arguments"])
    assert not validator.is_valid({"name": row["target"]["name"], "arguments": {**args, "bogus": 1}})
    tool = next(t for t in row["tools"] if t["name"] == row["target"]["name"])
    for key in tool["parameters"].get("required", []):  # a required argument left out
        assert not validator.is_valid({"name": tool["name"],
                                       "arguments": {k: v for k, v in args.items() if k != key}})


def test_tool_call_schema_one_branch_per_tool() -> None:
    tools = [{"name": "a", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}},
                                          "required": ["x"]}},
             {"type": "function", "function": {"name": "b", "parameters": {"type": "object", "properties": {}}}}]
    v = Draft202012Validator(tool_call_schema(tools))
    assert v.is_valid({"name": "a", "arguments": {"x": 1}}) and v.is_valid({"name": "b", "arguments": {}})
    assert not v.is_valid({"name": "b", "arguments": {"x": 1}})  # a's arguments under b's name


def test_labels_are_the_answer_space_of_classification() -> None:
    cfg, task = _task(["decoding=constrained"])
    spec = decoding.build(cfg, task)
    assert spec.default.choices == tuple(task.labels) and "order_status" in spec.default.choices


def test_free_decoding_builds_nothing() -> None:
    cfg, task = _task([])
    assert decoding.mode(cfg) == "free" and decoding.build(cfg, task) is None


@pytest.mark.parametrize("overrides, key, words", [
    (["task=faq-qa", "decoding=constrained"], "decoding.name", "free text"),
    (["runtime=ortgenai", "decoding=constrained"], "decoding.name", "runtime=ortgenai cannot constrain"),
    (["runtime=vllm", "decoding=constrained"], "decoding.name", "runtime=vllm cannot constrain"),
    (["task=lm-eval", "task.names=[arc_easy]", "decoding=constrained"], "decoding.name", "lm-eval"),
    (["decoding=constrained", "decoding.name=strict"], "decoding.name", "not one of"),
    (["task.formulation=choice", "runtime=openai", "runtime.base_url=http://127.0.0.1:9/v1"], "task.formulation",
     "log-likelihood"),
    (["task.formulation=choice", "decoding=constrained"], "decoding.name", "already answers"),
    (["task=invoice-extraction", "+task.formulation=choice"], "task.formulation", "without labels"),
    (["task.formulation=pick"], "task.formulation", "not one of"),
    (["task=invoice-extraction", "decoding=constrained", "task.schema={type: objekt}"], "task.schema",
     "not a valid JSON Schema"),
    (["task=invoice-extraction", "decoding=constrained", "task.schema={type: array}"], "task.schema",
     "JSON object"),
])
def test_config_check_refuses_with_the_key(overrides, key, words) -> None:
    cfg = compose(overrides)
    with pytest.raises(ConfigError) as err:
        decoding.check(cfg)
    assert err.value.key == key
    assert words in str(err.value)


def test_a_schema_that_rejects_a_gold_answer_is_refused_with_the_row() -> None:
    cfg, task = _task(["task=invoice-extraction", "decoding=constrained",
                       "task.schema={type: object, properties: {total: {type: integer}}}"])
    decoding.check(cfg)  # a valid JSON Schema ...
    with pytest.raises(ConfigError) as err:
        decoding.build(cfg, task)  # ... that no gold total (340.52) satisfies
    assert err.value.key == "task.schema"
    assert "train.jsonl:1" in str(err.value) and "total" in str(err.value)


@pytest.mark.slow  # a CLI process (~10 s of imports)
def test_cli_refuses_before_any_model_loads(tmp_path) -> None:
    """Through the real CLI: one line naming the key and where it was set, no traceback, nothing loaded."""
    out = subprocess.run(
        [sys.executable, "-m", "slmexp", "task=invoice-extraction", "decoding=constrained",
         "task.schema={type: objekt}", f"paths.output_dir={tmp_path}/o"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "task.schema" in out.stderr and "command-line override" in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    rec = json.loads(next((tmp_path / "o").rglob("run.json")).read_text())
    assert rec["run"]["status"] == "failed" and rec["run"]["error"]["stage"] == "validate"
    assert rec.get("model") is None  # refused before the model was even resolved
