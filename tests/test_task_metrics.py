"""Metric functions on hand-made model outputs, including the malformed ones small models produce."""

from __future__ import annotations

import json

import pytest

from slmexp.tasks.metrics import (
    extraction_results,
    normalize_answer,
    parse_json_output,
    parse_tool_call,
    qa_results,
    schema_errors,
    token_f1,
    tool_call_results,
    values_equal,
)

INVOICE = {"vendor": "Brightline Office Supply Ltd", "invoice_number": "INV-2024-0183", "date": "2024-03-05",
           "currency": "GBP", "total": 1234.5, "tax": 205.75, "line_items": 3}
DOC = {"gold": json.dumps(INVOICE)}


def _ex(output: str) -> dict[str, float]:
    return extraction_results(DOC, [output])


# --- JSON parsing -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "status"), [
    ('{"a": 1}', "strict"),
    ('```json\n{"a": 1}\n```', "strict"),
    ('Sure! Here is the JSON: {"a": 1} Let me know.', "embedded"),
    ('{"a": 1} {"b": 2}', "embedded"),  # two objects: the whole is not JSON, the first one is taken
    ('{"a": 1,', "invalid"),
    ("no json here", "invalid"),
    ("   ", "empty"),
])
def test_parse_json_output_status(text: str, status: str) -> None:
    value, got = parse_json_output(text)
    assert got == status
    if status in ("strict", "embedded"):
        assert value == {"a": 1}


# --- extraction -------------------------------------------------------------------------------------------------------


def test_extraction_perfect_answer() -> None:
    assert _ex(json.dumps(INVOICE)) == {"json_valid": 1.0, "json_strict": 1.0, "field_f1": 1.0, "exact_match": 1.0}


def test_extraction_tolerates_case_whitespace_and_integral_floats() -> None:
    pred = dict(INVOICE, vendor="  brightline office   supply ltd", line_items=3.0, total=1234.50)
    assert _ex(json.dumps(pred))["exact_match"] == 1.0


def test_extraction_prose_around_json_is_valid_but_not_strict() -> None:
    out = _ex("Here you go:\n" + json.dumps(INVOICE) + "\nHope this helps!")
    assert out == {"json_valid": 1.0, "json_strict": 0.0, "field_f1": 1.0, "exact_match": 1.0}


def test_extraction_invalid_json_scores_zero() -> None:
    out = _ex('{"vendor": "Brightline Office Supply Ltd", "total": 1234.5')  # cut off by max_new_tokens
    assert out == {"json_valid": 0.0, "json_strict": 0.0, "field_f1": 0.0, "exact_match": 0.0}


def test_extraction_wrong_types_are_wrong_values() -> None:
    pred = dict(INVOICE, total="1234.50", line_items="3")  # numbers as strings
    out = _ex(json.dumps(pred))
    assert out["json_valid"] == 1.0 and out["exact_match"] == 0.0
    assert out["field_f1"] == pytest.approx(5 / 7)  # 5 of 7 predicted fields right, 5 of 7 gold found


def test_extraction_missing_and_extra_fields_field_f1() -> None:
    pred = {k: INVOICE[k] for k in ("vendor", "invoice_number", "date")} | {"due_date": "2024-04-05"}
    out = _ex(json.dumps(pred))
    precision, recall = 3 / 4, 3 / 7
    assert out["field_f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert out["exact_match"] == 0.0


def test_extraction_extra_key_breaks_exact_match_only() -> None:
    out = _ex(json.dumps(dict(INVOICE, note="paid")))
    assert out["exact_match"] == 0.0 and out["field_f1"] == pytest.approx(2 * (7 / 8) * 1 / (7 / 8 + 1))


def test_extraction_null_values_are_not_predictions() -> None:
    pred = dict.fromkeys(INVOICE) | {"vendor": INVOICE["vendor"]}
    out = _ex(json.dumps(pred))
    assert out["field_f1"] == pytest.approx(2 * 1 * (1 / 7) / (1 + 1 / 7))


# gold null: satisfied by a missing key or a null; a predicted null is not a prediction; F1 never leaves [0, 1]
NULL_DOC = {"gold": json.dumps({"vendor": "Acme", "tax": None, "due_date": None})}


@pytest.mark.parametrize(("pred", "f1", "exact"), [
    ({"vendor": "Acme", "tax": None, "due_date": None}, 1.0, 1.0),  # the nulls left null (1.333 before)
    ({"vendor": "Acme"}, 1.0, 1.0),                                 # the nulls left out
    ({"vendor": "Acme", "tax": None}, 1.0, 1.0),
    ({"vendor": "Acme", "tax": 5.0, "due_date": None}, 2 * 0.5 * 1 / 1.5, 0.0),  # a value where gold has none
    ({"vendor": "Other", "tax": None, "due_date": None}, 0.0, 0.0),
    ({"vendor": None, "tax": None, "due_date": None}, 0.0, 0.0),   # nothing predicted, one gold value missed
])
def test_extraction_gold_nulls(pred: dict, f1: float, exact: float) -> None:
    out = extraction_results(NULL_DOC, [json.dumps(pred)])
    assert out["field_f1"] == pytest.approx(f1) and out["exact_match"] == exact


def test_extraction_all_null_gold_left_empty_is_perfect() -> None:
    doc = {"gold": json.dumps({"tax": None})}
    assert extraction_results(doc, ["{}"])["field_f1"] == 1.0
    assert extraction_results(doc, ['{"tax": null}'])["exact_match"] == 1.0
    assert extraction_results(doc, ['{"tax": 3}'])["field_f1"] == 0.0


def test_tool_call_gold_null_argument() -> None:
    call = {"name": "get_weather", "arguments": {"city": "Lisbon", "unit": None}}
    doc = {"gold": json.dumps(call), "tools": json.dumps(TOOLS)}
    for args in ({"city": "Lisbon", "unit": None}, {"city": "Lisbon"}):
        out = _tc(json.dumps({"name": "get_weather", "arguments": args}), doc)
        assert out["args_f1"] == 1.0 and out["exact_match"] == 1.0, args  # args_f1 was 1.333 for the first
    out = _tc(json.dumps({"name": "get_weather", "arguments": {"city": "Lisbon", "unit": "celsius"}}), doc)
    assert out["args_f1"] == pytest.approx(2 * 0.5 * 1 / 1.5) and out["exact_match"] == 0.0


def test_f1_stays_in_unit_interval_on_hand_made_null_mixes() -> None:
    golds = [{"a": 1, "b": None}, {"a": None}, {"a": "x", "b": None, "c": [1]}]
    preds = [{}, {"a": None}, {"a": 1, "b": None}, {"a": 1, "b": 2, "z": None}, {"b": None, "c": [1]}, {"z": 1}]
    for gold in golds:
        for pred in preds:
            f1 = extraction_results({"gold": json.dumps(gold)}, [json.dumps(pred)])["field_f1"]
            assert 0.0 <= f1 <= 1.0, (gold, pred, f1)
    assert values_equal({"a": 1}, {"a": 1, "b": None}) and not values_equal({"a": 1, "z": 2}, {"a": 1})


def test_extraction_array_instead_of_object() -> None:
    out = _ex(json.dumps([INVOICE]))
    assert out["json_valid"] == 0.0 and out["field_f1"] == 0.0


def test_values_equal_is_typed() -> None:
    assert values_equal(12.504, 12.5) and not values_equal(12.51, 12.5)
    assert not values_equal(True, 1) and not values_equal(1, True)
    assert not values_equal("12.5", 12.5) and not values_equal(None, "x")
    assert values_equal([1, "A"], [1.0, "a"]) and not values_equal([1], [1, 2])


# --- tool calls -------------------------------------------------------------------------------------------------------

TOOLS = [
    {"name": "get_weather", "description": "Current weather.",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                     "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                    "required": ["city"]}},
    {"name": "set_timer", "description": "Start a timer.",
     "parameters": {"type": "object", "properties": {"minutes": {"type": "integer"}, "label": {"type": "string"}},
                    "required": ["minutes"]}},
]
CALL = {"name": "get_weather", "arguments": {"city": "Lisbon", "unit": "fahrenheit"}}
TDOC = {"gold": json.dumps(CALL), "tools": json.dumps(TOOLS)}


def _tc(output: str, doc: dict | None = None) -> dict[str, float]:
    return tool_call_results(doc or TDOC, [output])


def test_tool_call_correct_in_several_shapes() -> None:
    openai_shape = {"type": "function", "function": {"name": "get_weather",
                                                     "arguments": json.dumps(CALL["arguments"])}}
    for out in (json.dumps(CALL), f"<tool_call>\n{json.dumps(CALL)}\n</tool_call>",
                json.dumps({"tool_calls": [openai_shape]}), json.dumps([CALL]),
                json.dumps({"name": "get_weather", "parameters": CALL["arguments"]})):
        assert _tc(out) == {"valid_call": 1.0, "name_accuracy": 1.0, "args_f1": 1.0, "exact_match": 1.0}, out


def test_tool_call_wrong_tool_is_valid_but_wrong() -> None:
    out = _tc('{"name": "set_timer", "arguments": {"minutes": 5}}')
    assert out == {"valid_call": 1.0, "name_accuracy": 0.0, "args_f1": 0.0, "exact_match": 0.0}


def test_tool_call_unknown_tool_is_invalid() -> None:
    assert _tc('{"name": "get_forecast", "arguments": {"city": "Lisbon"}}')["valid_call"] == 0.0


def test_tool_call_wrong_argument_type_and_enum() -> None:
    out = _tc('{"name": "get_weather", "arguments": {"city": "Lisbon", "unit": "kelvin"}}')
    assert out["valid_call"] == 0.0 and out["name_accuracy"] == 1.0
    assert out["args_f1"] == pytest.approx(0.5) and out["exact_match"] == 0.0
    doc = {"gold": json.dumps({"name": "set_timer", "arguments": {"minutes": 5}}), "tools": json.dumps(TOOLS)}
    out = _tc('{"name": "set_timer", "arguments": {"minutes": "5"}}', doc)
    assert out == {"valid_call": 0.0, "name_accuracy": 1.0, "args_f1": 0.0, "exact_match": 0.0}


def test_tool_call_missing_optional_argument_partial_credit() -> None:
    out = _tc('Calling: {"name": "get_weather", "arguments": {"city": "lisbon"}} now.')
    assert out["valid_call"] == 1.0 and out["exact_match"] == 0.0
    assert out["args_f1"] == pytest.approx(2 * 1 * 0.5 / 1.5)


@pytest.mark.parametrize("output", ["get_weather(city='Lisbon')", '{"name": "get_weather", "arguments": "{bad"}',
                                    '{"arguments": {"city": "Lisbon"}}', "", '{"name": 3, "arguments": {}}'])
def test_tool_call_malformed_scores_zero(output: str) -> None:
    assert parse_tool_call(output) is None
    assert _tc(output) == {"valid_call": 0.0, "name_accuracy": 0.0, "args_f1": 0.0, "exact_match": 0.0}


def test_huge_numeral_is_a_json_number_but_nan_and_infinity_are_not_json() -> None:
    """A grammar lets a model write `2554204553E20395` (valid JSON, a JSON-Schema number; Python reads inf): the
    call is valid, as a JSON-Schema validator says. `NaN` / `Infinity` are Python's extensions, not JSON."""
    tools = [{"name": "search", "parameters": {"type": "object", "properties": {"max_price": {"type": "number"}},
                                               "required": ["max_price"]}}]
    doc = {"gold": json.dumps({"name": "search", "arguments": {"max_price": 20}}), "tools": json.dumps(tools)}
    out = _tc('{"name": "search", "arguments": {"max_price": 2554204553E20395}}', doc)
    assert out == {"valid_call": 1.0, "name_accuracy": 1.0, "args_f1": 0.0, "exact_match": 0.0}
    for literal in ("NaN", "Infinity", "-Infinity"):
        call = json.dumps({"name": "search", "arguments": {"max_price": "X"}}).replace('"X"', literal)
        assert _tc(call, doc)["valid_call"] == 0.0
        assert parse_json_output('{"total": X}'.replace("X", literal))[1] == "invalid"


def test_schema_errors_names_each_problem() -> None:
    params = TOOLS[1]["parameters"]
    assert schema_errors({"minutes": 5}, params) == []
    errs = schema_errors({"minutes": True, "colour": "red"}, params)
    assert any("minutes" in e and "integer" in e for e in errs) and any("unknown argument 'colour'" in e for e in errs)
    assert schema_errors({}, params) == ["missing required argument 'minutes'"]


# --- QA ---------------------------------------------------------------------------------------------------------------


def test_normalize_answer_squad_rules() -> None:
    assert normalize_answer("The  30-day Window!") == "30day window"


def test_qa_exact_and_f1_max_over_aliases() -> None:
    doc = {"gold": json.dumps(["30 days", "thirty days"])}
    assert qa_results(doc, ["30 days."]) == {"exact_match": 1.0, "f1": 1.0}
    assert qa_results(doc, ["Answer: Thirty days"]) == {"exact_match": 1.0, "f1": 1.0}
    out = qa_results(doc, ["You have 30 days to return it\nmore text"])
    assert out["exact_match"] == 0.0 and out["f1"] == pytest.approx(2 * (2 / 7) * 1 / (2 / 7 + 1))  # 7 tokens, 2 shared
    assert qa_results(doc, [""]) == {"exact_match": 0.0, "f1": 0.0}
    assert qa_results({"gold": json.dumps("$4.99")}, ["4.99"]) == {"exact_match": 1.0, "f1": 1.0}


def test_token_f1_counts_repeated_tokens_once_each() -> None:
    assert token_f1("days days days", "30 days") == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


def test_qa_gold_empty_after_normalisation_needs_that_text() -> None:
    """SQuAD normalisation empties a gold like "The" or "?": an empty or unrelated output must not match it."""
    doc = {"gold": json.dumps("The")}
    assert qa_results(doc, [""]) == {"exact_match": 0.0, "f1": 0.0}  # 1.0 before: "" == ""
    assert qa_results(doc, ["A"]) == {"exact_match": 0.0, "f1": 0.0}  # an article normalises to "" too
    assert qa_results(doc, ["  the "]) == {"exact_match": 1.0, "f1": 1.0}
    assert qa_results({"gold": json.dumps(["?", "unknown"])}, ["Unknown"]) == {"exact_match": 1.0, "f1": 1.0}
    assert token_f1("", "The") == 0.0 and token_f1("x", "30 days") == 0.0
