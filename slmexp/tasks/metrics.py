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

_SEP = re.compile(r"[\s\-]+")
_STRIP = re.compile(r"^[^a-z0-9_]+|[^a-z0-9_]+$")
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.S)
_WS = re.compile(r"\s+")


# ---------------------------------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------------------------------


def normalize_label(text: str) -> str:
    """First line, lower case, `Intent:`-style prefix and quotes/punctuation dropped, spaces -> underscores."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    line = line.strip().lower()
    if ":" in line:  # "intent: cancel_order" -> "cancel_order"
        line = line.rsplit(":", 1)[1]
    line = _SEP.sub("_", line.strip())
    return _STRIP.sub("", line)


def classification_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """exact_match: the normalised generation equals the gold label; valid_label: it is any known label."""
    pred = normalize_label(results[0] if results else "")
    return {
        "exact_match": float(pred == doc["target"]),
        "valid_label": float(pred in doc["choices"]),
    }


# ---------------------------------------------------------------------------------------------------------------------
# JSON out of free text
# ---------------------------------------------------------------------------------------------------------------------


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
            return json.loads(cand), "strict"
        except (json.JSONDecodeError, RecursionError):
            pass
    decoder = json.JSONDecoder()
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
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def values_equal(pred: Any, gold: Any, tol: float = 0.005) -> bool:
    """Typed equality: strings ignore case and runs of whitespace; numbers must be JSON numbers within `tol`
    (an integer gold accepts 3.0, not "3"); booleans must be booleans; lists and dicts compare element-wise."""
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
        return isinstance(pred, dict) and set(pred) == set(gold) and all(
            values_equal(pred[k], gold[k], tol) for k in gold)
    return pred == gold


def field_scores(pred: Any, gold: dict[str, Any]) -> tuple[int, int, int]:
    """(correct, predicted, gold) field counts; keys predicted as null do not count as predictions."""
    if not isinstance(pred, dict):
        return 0, 0, len(gold)
    predicted = [k for k, v in pred.items() if v is not None]
    correct = sum(1 for k in gold if k in pred and values_equal(pred[k], gold[k]))
    return correct, len(predicted), len(gold)


def f1_from_counts(correct: int, predicted: int, gold: int) -> float:
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
    object (a code fence allowed); field_f1: F1 of typed field values; exact_match: every gold field right and no
    extra keys."""
    gold = _gold(doc)
    pred, status = parse_json_output(results[0] if results else "")
    is_obj = isinstance(pred, dict)
    correct, n_pred, n_gold = field_scores(pred, gold)
    exact = is_obj and correct == n_gold and set(k for k, v in pred.items() if v is not None) <= set(gold)
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
            args = json.loads(args)
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
    args_exact_match / exact_match: right tool and exactly the gold arguments (typed); args_f1: F1 over
    (argument, value) pairs, 0 when the tool is wrong."""
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


def token_f1(pred: str, gold: str) -> float:
    """SQuAD token F1 between normalised strings (bag of tokens)."""
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def qa_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """exact_match and f1 (SQuAD), each the max over the gold answers; the first line of the generation, with
    an `Answer:` prefix dropped, is the prediction."""
    answers = _gold(doc)
    answers = [answers] if isinstance(answers, str) else list(answers)
    text = (results[0] if results else "").strip()
    pred = _ANSWER_PREFIX.sub("", text.splitlines()[0] if text else "")
    return {
        "exact_match": max(float(normalize_answer(pred) == normalize_answer(a)) for a in answers),
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
        obj = json.loads(text[start:end + 1])
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
