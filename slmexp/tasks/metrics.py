"""Metric functions lm-eval calls per example (`process_results`); pure Python so they are unit-testable.

Every task kind scores the model's raw generation, so each parser here has to survive what small models
actually emit: prose around the answer, Markdown code fences, a second JSON object after the first, numbers as
strings, a call wrapped in the OpenAI `tool_calls` shape. Leniency is deliberate in *finding* the answer (a valid
object inside prose still counts as JSON) and strict in *judging* it (a number given as a string is a wrong
value: code downstream of an extractor would break on it just the same).

Structured golds travel through lm-eval as JSON strings (`doc["gold"]`, `doc["tools"]`): the `json` dataset
loader would otherwise merge the differing argument dicts of different tools into one Arrow struct, inventing
null-valued keys.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from typing import Any

from slmexp.tasks.extract import extract_label, same_label, strict_match

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.S)
_WS = re.compile(r"\s+")


# ---------------------------------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------------------------------


def classification_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """exact_match: the label extracted from the generation (slmexp.tasks.extract) is the gold label;
    strict_match: the generation's first line is the gold label (case and whitespace aside); valid_label: some
    label was extracted. Gold, `choices` (task.labels) and answer go through the one normaliser."""
    raw = results[0] if results else ""
    labels = list(doc.get("choices") or [])
    pred = extract_label(raw, labels, doc.get("answer_prefix"))
    return {
        "exact_match": float(same_label(pred, doc["target"])),
        "strict_match": float(strict_match(raw, doc["target"], labels)),
        "valid_label": float(pred is not None),
    }


def classification_choice_results(doc: dict[str, Any], results: list[Any]) -> dict[str, float]:
    """task.formulation=choice (lm-eval multiple_choice): `results` holds one (log-likelihood, is_greedy) per label
    in `choices`; the answer is the likeliest label, so it is always a label (valid_label 1.0) and is written
    exactly (strict_match = exact_match). acc_norm: lm-eval's byte-length-normalised variant, alongside."""
    lls = [float(r[0]) for r in results]
    labels = list(doc.get("choices") or [])
    pred = labels[max(range(len(lls)), key=lls.__getitem__)]
    norm = [ll / max(len(label.encode("utf-8")), 1) for ll, label in zip(lls, labels, strict=True)]
    exact = float(same_label(pred, doc["target"]))
    return {
        "exact_match": exact,
        "strict_match": exact,
        "valid_label": 1.0,
        "acc_norm": float(same_label(labels[max(range(len(norm)), key=norm.__getitem__)], doc["target"])),
    }


# ---------------------------------------------------------------------------------------------------------------------
# JSON out of free text
# ---------------------------------------------------------------------------------------------------------------------


def _not_json(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON value", name, 0)


# Python's json accepts NaN, Infinity and -Infinity, which JSON does not; a model that writes them wrote invalid JSON.
# A numeral too large for a float (`2554204553E20395`) is valid JSON and a JSON-Schema number; it reads as inf.
_DECODER = json.JSONDecoder(parse_constant=_not_json)


def loads_json(text: str) -> Any:
    """`json.loads` that refuses the non-JSON literals NaN/Infinity (raises json.JSONDecodeError)."""
    return _DECODER.decode(text)


def parse_json_output(text: str) -> tuple[Any, str]:
    """The JSON value a model meant to emit, and how it was found.

    Returns (value, status) with status `strict` (the whole output, or one fenced block, is JSON), `embedded`
    (the first decodable object or array inside surrounding prose), `invalid` (no JSON found) or `empty`.
    """
    text = (text or "").strip()
    if not text:
        return None, "empty"
    candidates = [text]
    fence = _FENCE.search(text)
    if fence:
        candidates.insert(0, fence.group(1).strip())
    for cand in candidates:
        try:
            return loads_json(cand), "strict"
        except (json.JSONDecodeError, RecursionError):
            pass
    decoder = _DECODER
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                value, _end = decoder.raw_decode(text, i)
            except (json.JSONDecodeError, RecursionError):
                continue
            if isinstance(value, dict | list):
                return value, "embedded"
    return None, "invalid"


def _norm_text(value: str) -> str:
    return _WS.sub(" ", value.strip()).casefold()


def _is_number(x: Any) -> bool:
    """A JSON number: not a bool; inf only comes from a numeral too large for a float (NaN/Infinity literals are
    refused by `loads_json`), which JSON and JSON Schema count as a number, as the grammars do."""
    return isinstance(x, int | float) and not isinstance(x, bool) and not math.isnan(x)


def values_equal(pred: Any, gold: Any, tol: float = 0.005) -> bool:
    """Typed equality: strings ignore case and runs of whitespace; numbers must be JSON numbers within `tol`
    (an integer gold accepts 3.0, not "3"); booleans must be booleans; lists compare element-wise; dicts key by key
    under the null rule of `field_scores` (a gold null is met by a missing key or a null; a key the gold lacks may
    only be null)."""
    if isinstance(gold, bool) or gold is None:
        return pred is gold or (gold is None and pred is None)
    if isinstance(gold, int):
        return _is_number(pred) and float(pred) == float(gold)
    if isinstance(gold, float):
        return _is_number(pred) and abs(float(pred) - gold) <= tol
    if isinstance(gold, str):
        return isinstance(pred, str) and _norm_text(pred) == _norm_text(gold)
    if isinstance(gold, list):
        return isinstance(pred, list) and len(pred) == len(gold) and all(
            values_equal(p, g, tol) for p, g in zip(pred, gold, strict=True))
    if isinstance(gold, dict):
        return isinstance(pred, dict) and all(values_equal(pred.get(k), gold[k], tol) for k in gold) and all(
            v is None for k, v in pred.items() if k not in gold)
    return pred == gold


def field_scores(pred: Any, gold: dict[str, Any]) -> tuple[int, int, int]:
    """(correct, predicted, gold) field counts under explicit null semantics.

    A gold field that is null says "no value here": it is not a gold field to find, and a prediction meets it by
    leaving the key out or null. A predicted null is not a prediction. So: gold = gold keys with a value;
    predicted = predicted keys with a value (a value where the gold has null counts, and is wrong); correct =
    gold keys with a value predicted equal. correct <= predicted and correct <= gold, so F1 stays in [0, 1].
    """
    n_gold = sum(1 for v in gold.values() if v is not None)
    if not isinstance(pred, dict):
        return 0, 0, n_gold
    predicted = [k for k, v in pred.items() if v is not None]
    correct = sum(1 for k in predicted if gold.get(k) is not None and values_equal(pred[k], gold[k]))
    return correct, len(predicted), n_gold


def f1_from_counts(correct: int, predicted: int, gold: int) -> float:
    """F1 from counts; nothing to find and nothing predicted is a perfect 1.0 (an all-null gold left empty)."""
    if gold == 0 and predicted == 0:
        return 1.0
    if correct == 0:
        return 0.0
    precision, recall = correct / predicted, correct / gold
    return 2 * precision * recall / (precision + recall)


def _gold(doc: dict[str, Any]) -> Any:
    gold = doc.get("gold", doc.get("target"))
    return json.loads(gold) if isinstance(gold, str) else gold


# ---------------------------------------------------------------------------------------------------------------------
# extraction
# ---------------------------------------------------------------------------------------------------------------------


def extraction_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """json_valid: a JSON object was found (prose around it allowed); json_strict: the output is only that
    object (a code fence allowed); field_f1: F1 of typed field values (nulls as in `field_scores`); exact_match:
    every gold value right, every gold null missing or null, no other key with a value."""
    gold = _gold(doc)
    pred, status = parse_json_output(results[0] if results else "")
    is_obj = isinstance(pred, dict)
    correct, n_pred, n_gold = field_scores(pred, gold)
    exact = is_obj and values_equal(pred, gold)
    return {
        "json_valid": float(is_obj),
        "json_strict": float(is_obj and status == "strict"),
        "field_f1": f1_from_counts(correct, n_pred, n_gold) if is_obj else 0.0,
        "exact_match": float(exact),
    }


# ---------------------------------------------------------------------------------------------------------------------
# tool calling
# ---------------------------------------------------------------------------------------------------------------------


def parse_tool_call(text: str) -> dict[str, Any] | None:
    """A `{"name", "arguments"}` call from a generation, or None.

    Accepts the shapes models are trained on: our own `{"name", "arguments"}`, Llama's `"parameters"`,
    OpenAI's `{"type": "function", "function": {...}}` and `{"tool_calls": [...]}` with `arguments` as a JSON
    string, a one-element list, and Qwen's `<tool_call>...</tool_call>` wrapper (prose around it is ignored).
    """
    value, _status = parse_json_output(text)
    for _ in range(4):  # unwrap at most a few levels
        if isinstance(value, list):
            value = value[0] if value else None
        elif isinstance(value, dict) and "tool_calls" in value:
            value = value["tool_calls"]
        elif isinstance(value, dict) and isinstance(value.get("function"), dict):
            value = value["function"]
        else:
            break
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    args = value.get("arguments", value.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = loads_json(args)
        except json.JSONDecodeError:
            return None
    if not isinstance(args, dict):
        return None
    return {"name": value["name"], "arguments": args}


_JSON_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}


def schema_errors(args: dict[str, Any], parameters: dict[str, Any]) -> list[str]:
    """What is wrong with `args` under a tool's JSON-Schema `parameters` (required, unknown keys, type, enum):
    the subset of JSON Schema that function-calling APIs use."""
    props = parameters.get("properties") or {}
    errors = [f"missing required argument {k!r}" for k in parameters.get("required") or [] if k not in args]
    for key, value in args.items():
        spec = props.get(key)
        if spec is None:
            errors.append(f"unknown argument {key!r}")
            continue
        types = spec.get("type")
        types = [types] if isinstance(types, str) else list(types or [])
        if types and not any(_JSON_TYPES.get(t, lambda v: True)(value) for t in types):
            errors.append(f"argument {key!r} should be {'/'.join(types)}, got {type(value).__name__}")
        elif "enum" in spec and value not in spec["enum"]:
            errors.append(f"argument {key!r}={value!r} is not one of {spec['enum']}")
    return errors


def _tool_list(doc: dict[str, Any]) -> list[dict[str, Any]]:
    tools = doc.get("tools") or []
    tools = json.loads(tools) if isinstance(tools, str) else tools
    return [t.get("function", t) for t in tools]  # accept OpenAI's {"type": "function", "function": {...}}


def tool_call_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """valid_call: parses to a call of an offered tool whose arguments satisfy its schema; name_accuracy;
    exact_match: right tool and exactly the gold arguments (typed; a gold null argument met by leaving it out or
    null); args_f1: F1 over (argument, value) pairs with `field_scores`' null rule, 0 when the tool is wrong."""
    gold = _gold(doc)
    call = parse_tool_call(results[0] if results else "")
    tools = {t["name"]: t for t in _tool_list(doc)}
    if call is None:
        return {"valid_call": 0.0, "name_accuracy": 0.0, "args_f1": 0.0, "exact_match": 0.0}
    tool = tools.get(call["name"])
    valid = tool is not None and not schema_errors(call["arguments"], tool.get("parameters") or {})
    name_ok = call["name"] == gold["name"]
    gold_args = gold.get("arguments") or {}
    correct, n_pred, n_gold = field_scores(call["arguments"], gold_args)
    exact = name_ok and values_equal(call["arguments"], gold_args)
    return {
        "valid_call": float(valid),
        "name_accuracy": float(name_ok),
        "args_f1": f1_from_counts(correct, n_pred, n_gold) if name_ok else 0.0,
        "exact_match": float(exact),
    }


# ---------------------------------------------------------------------------------------------------------------------
# question answering
# ---------------------------------------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
_ANSWER_PREFIX = re.compile(r"^\s*(answer|a)\s*:\s*", re.I)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, punctuation and English articles dropped, whitespace collapsed."""
    text = "".join(ch for ch in (text or "").lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _empty_gold_match(pred: str, gold: str) -> float | None:
    """The score when SQuAD normalisation leaves the gold empty (`"The"`, `"?"`, `"$"`), else None.

    SQuAD's rule would score such a gold 1.0 against ANY prediction that also normalises to nothing, the empty
    output included. Here such a gold is matched on its raw text, case and whitespace aside, and an empty
    prediction is never right: 1.0 iff the stripped prediction equals the stripped gold that way.
    """
    if normalize_answer(gold):
        return None
    p, g = _norm_text(pred or ""), _norm_text(gold or "")
    return float(bool(p) and p == g)


def token_f1(pred: str, gold: str) -> float:
    """SQuAD token F1 between normalised strings (bag of tokens); a gold empty after normalisation is scored by
    `_empty_gold_match`, and an empty prediction scores 0."""
    empty = _empty_gold_match(pred, gold)
    if empty is not None:
        return empty
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    if not p:
        return 0.0
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def qa_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """exact_match and f1 (SQuAD), each the max over the gold answers; the first line of the generation, with
    an `Answer:` prefix dropped, is the prediction. A gold that SQuAD normalisation empties is matched on its
    raw text (`_empty_gold_match`): EM = F1 = 1 iff the prediction is that text, never for an empty output."""
    answers = _gold(doc)
    answers = [answers] if isinstance(answers, str) else list(answers)
    text = (results[0] if results else "").strip()
    pred = _ANSWER_PREFIX.sub("", text.splitlines()[0] if text else "")

    def em(a: str) -> float:
        empty = _empty_gold_match(pred, a)
        return empty if empty is not None else float(normalize_answer(pred) == normalize_answer(a))

    return {
        "exact_match": max(em(a) for a in answers),
        "f1": max(token_f1(pred, a) for a in answers),
    }


# ---------------------------------------------------------------------------------------------------------------------
# validity: a generated answer's shape, with no gold (the router's confidence for generation kinds)
# ---------------------------------------------------------------------------------------------------------------------


def _json_object(text: str) -> dict[str, Any] | None:
    """The JSON object spanning the first `{` to the last `}` of a model's output (a ```json fence or surrounding
    prose tolerated), or None. Stricter than `parse_json_output`: two objects in one output are not valid."""
    text = (text or "").strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fence:
        text = fence.group(1).strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        obj = loads_json(text[start:end + 1])
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def valid_extraction(output: str, task_cfg: Any = None) -> float:
    """1.0 when the output holds a JSON object (with every `task.required_keys`, if the task lists them)."""
    obj = _json_object(output)
    if obj is None:
        return 0.0
    required = list((task_cfg.get("required_keys") if task_cfg is not None else None) or [])
    return float(all(k in obj for k in required))


def valid_tool_call(output: str, task_cfg: Any = None) -> float:
    """1.0 when the output is a JSON call {"name": str, "arguments": object}, naming a known tool if the task
    lists them (`task.tools`: names, or objects with a `name`)."""
    obj = _json_object(output)
    if obj is None or not isinstance(obj.get("name"), str) or not isinstance(obj.get("arguments"), dict):
        return 0.0
    tools = (task_cfg.get("tools") if task_cfg is not None else None) or []
    names = {t if isinstance(t, str) else t.get("name") for t in tools}
    return float(not names or obj["name"] in names)


def valid_answer(output: str, task_cfg: Any = None) -> float:
    """1.0 for a non-empty answer (free-form QA: the weakest useful check)."""
    return float(bool((output or "").strip()))
