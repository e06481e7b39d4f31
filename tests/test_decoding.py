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
# twice the longest gold value (STRING_SLACK), numbers by one digit more than the largest gold value (never
# negative: no gold value is), and no other key is allowed.
INVOICE_SCHEMA = {
    "type": "object",
    "properties": {
        "vendor": {"type": "string", "maxLength": 102},
        "invoice_number": {"type": "string", "maxLength": 26},
        "date": {"type": "string", "maxLength": 20},
        "currency": {"type": "string", "maxLength": 16},
        "total": {"type": "number", "minimum": 0, "maximum": 99999},
        "tax": {"type": "number", "minimum": 0, "maximum": 99999},
        "line_items": {"type": "integer", "minimum": 0, "maximum": 999},
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
    assert schema["properties"]["a"] == {"type": "number", "minimum": 0, "maximum": 999}
    assert schema["properties"]["b"] == {"type": ["null", "string"], "maxLength": 16}
    assert schema["properties"]["c"] == {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 999}}
    assert derive_schema([-3, 12345])["minimum"] == -999999  # a negative gold value: negatives allowed
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
    (["task=invoice-extraction", "decoding=constrained", "decoding.budget=huge"], "decoding.budget", "not one of"),
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


def _longest(schema: dict) -> str:
    """The longest JSON text `schema` admits as llama.cpp's converter writes it (a space after every token, every
    string character an escape, numbers at their longest), built by hand: what `max_chars` must bound."""
    if "anyOf" in schema:
        return max((_longest(b) for b in schema["anyOf"]), key=len)
    if "enum" in schema:
        return max((json.dumps(v) for v in schema["enum"]), key=len) + " "
    t = schema["type"]
    if isinstance(t, list):
        return max((_longest({**schema, "type": x}) for x in t), key=len)
    if t == "string":
        return '"' + "\\n" * schema["maxLength"] + '" '
    if t == "integer":
        return "-" + "9" * 16 + " "
    if t == "number":
        return "-" + "9" * 16 + "." + "9" * 16 + "e-" + "9" * 16 + " "
    if t == "null":
        return "null "
    if t == "boolean":
        return "false "
    if t == "array":
        return "[ " + ", ".join(_longest(schema["items"]) for _ in range(schema["maxItems"])) + "] "
    keys = [f'"{k}" : {_longest(v)}' for k, v in schema["properties"].items()]
    return "{ " + ", ".join(keys) + "} "


def test_max_chars_bounds_the_longest_answer_and_knows_unbounded_ones() -> None:
    from slmexp.decoding.schema import max_chars

    schema = {"type": "object", "additionalProperties": False, "properties": {
        "s": {"type": "string", "maxLength": 7}, "n": {"type": ["number", "null"], "maximum": 10},
        "i": {"type": "integer", "minimum": 0, "maximum": 5}, "e": {"enum": ["a", "bbbb"]}, "b": {"type": "boolean"},
        "a": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 3}},
        "o": {"anyOf": [{"type": "null"}, {"type": "object", "additionalProperties": False,
                                           "properties": {"x": {"type": "integer"}}}]}}}
    longest = _longest(schema)
    assert len(longest) <= max_chars(schema), (len(longest), max_chars(schema))
    assert max_chars(INVOICE_SCHEMA) >= len(_longest(INVOICE_SCHEMA))
    assert max_chars({"type": "string"}) is None  # no maxLength: no bound
    assert max_chars({"type": "array", "items": {"type": "integer"}}) is None  # no maxItems
    assert max_chars({"type": "object", "properties": {"a": {"type": "null"}}}) is None  # open to other keys


def test_fit_budget_gives_the_grammar_room_to_close_the_answer() -> None:
    """The task's 128 tokens cannot hold the longest invoice the schema admits (a looping vendor name cut the JSON
    on 2026-12-03): `fit` raises the budget in the job's config every later stage reads (a copy: the validate stage
    returns it, nothing writes into the composed config), `task` keeps it, labels fit anyway."""
    cfg, task = _task(["task=invoice-extraction", "decoding=constrained"])
    block = decoding.fit_budget(cfg, decoding.build(cfg, task))
    asked, cfg = cfg, decoding.with_budget(cfg, block)  # the job's config: a copy with the raised budget
    assert asked.task.generation.max_new_tokens == 128  # the composed config itself is not written into
    assert block["rule"] == "fit" and block["task_max_new_tokens"] == 128
    assert block["max_new_tokens"] == block["answer_max_chars"] == cfg.task.generation.max_new_tokens > 128
    cfg, task = _task(["task=invoice-extraction", "decoding=constrained", "decoding.budget=task"])
    block = decoding.fit_budget(cfg, decoding.build(cfg, task))
    cfg = decoding.with_budget(cfg, block)
    assert block["max_new_tokens"] == 128 == cfg.task.generation.max_new_tokens
    cfg, task = _task(["task=support-intent", "decoding=constrained"])
    assert decoding.fit_budget(cfg, decoding.build(cfg, task))["max_new_tokens"] == 16
    cfg, task = _task(["task=tool-call", "decoding=constrained"])
    spec = decoding.build(cfg, task)
    assert decoding.fit_budget(cfg, spec)["max_new_tokens"] == spec.max_chars > 96  # the rows' tools, all bounded
    cfg, task = _task(["task=invoice-extraction"])
    assert decoding.fit_budget(cfg, decoding.build(cfg, task)) is None  # free decoding: nothing to fit


def test_engines_bound_what_the_schema_cannot() -> None:
    """llguidance gets `multipleOf` (at most FRACTION_DIGITS decimals) in its own copy of the schema only, since
    jsonschema's float division would reject a gold 396.81; the GBNF leaves \\uXXXX escapes out."""
    from slmexp.decoding import Constraint
    from slmexp.decoding.grammar import gbnf
    from slmexp.decoding.schema import FRACTION_DIGITS, engine_copy

    copy = engine_copy(INVOICE_SCHEMA)
    assert copy["properties"]["total"]["multipleOf"] == 10.0 ** -FRACTION_DIGITS
    assert "multipleOf" not in INVOICE_SCHEMA["properties"]["total"]
    assert "multipleOf" not in copy["properties"]["line_items"]
    assert Draft202012Validator(INVOICE_SCHEMA).is_valid({"vendor": "a", "invoice_number": "1", "date": "d",
                                                          "currency": "USD", "total": 396.81, "tax": 0.07,
                                                          "line_items": 3})
    grammar = gbnf(Constraint("extraction", schema=INVOICE_SCHEMA))
    assert '"u"' not in grammar and "char ::=" in grammar


def test_the_fitted_budget_does_not_change_what_training_is_keyed_on(tmp_path) -> None:
    """A constrained arm trains nothing new: fit_budget raises task.generation.max_new_tokens, which the adapter
    does not depend on, so its train key equals the free arm's (2026-12-03: the LoRA of invoice-constrained was
    retrained, 15 min, because the key held the raised budget)."""
    from slmexp.train import train_key

    keys = []
    for extra in ([], ["decoding=constrained"]):
        cfg, task = _task(["task=invoice-extraction", "adapter=lora", *extra])
        cfg = decoding.with_budget(cfg, decoding.fit_budget(cfg, decoding.build(cfg, task)))
        keys.append(train_key(cfg, task, "0" * 64, tmp_path))
    assert cfg.task.generation.max_new_tokens > 128  # the budget was raised ...
    assert keys[0] == keys[1]  # ... and the training is the same one
