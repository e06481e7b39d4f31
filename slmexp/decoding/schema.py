"""JSON Schemas for constrained decoding: derived from a task's gold objects, or the tool-call and label shapes.

Why derive: a task's gold objects already say what an answer looks like (field names, value types, which fields
every answer has, which may be null), so a user task needs no hand-written schema; `task.schema` overrides the
derived one where the data cannot say enough (an enum, a pattern). The derived schema is closed
(`additionalProperties: false`): an answer with invented keys is exactly the kind of wrong thing constraining is
meant to rule out. Pure Python (json only): imported at config time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Derived string fields may be at most this many times the longest gold value (and at least `_MIN_STRING`
# characters): a small model under a grammar otherwise repeats a word until the token budget cuts the JSON short.
STRING_SLACK = 2
_MIN_STRING = 16
# Derived numbers: at most one more digit than the largest magnitude seen (`number_bound`), never negative unless a
# gold value was. Same reason: a model under a grammar otherwise writes digits ("line_items": 1000000...) until the
# budget cuts the object.
_MIN_NUMBER = 999
# Decimals a number may have under llguidance (as `multipleOf` in the engine's copy of the schema only: jsonschema
# checks multipleOf by float division, which would reject a gold 396.81). llama.cpp's converter allows 16.
FRACTION_DIGITS = 6
_LLAMACPP_NUMBER = 1 + 16 + 1 + 16 + 2 + 16  # sign, integral, ".", decimals, exponent: its converter's longest number
_LLAMACPP_INTEGER = 1 + 16  # its converter ignores minimum/maximum but stops at 16 digits
_ESCAPED = 2  # a string character is at most an escape like \\n (the GBNF leaves \\uXXXX out)

_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null",
               dict: "object", list: "array"}


def _type_name(value: Any) -> str:
    for py, name in _JSON_TYPES.items():
        if type(value) is py:
            return name
    raise TypeError(f"not a JSON value: {value!r}")


def _merge_types(types: set[str]) -> list[str]:
    if {"integer", "number"} <= types:  # 3 and 3.5 in one field: a number
        types = types - {"integer"}
    return sorted(types)


def derive_schema(values: Iterable[Any]) -> dict[str, Any]:
    """The JSON Schema every one of `values` (parsed JSON) satisfies: types seen, per object key whether it is
    always present (`required`) and whether it was ever null (its type includes "null"), no other keys, strings
    bounded by `STRING_SLACK` x the longest value seen. Key order is the order keys first appear (a grammar
    emits them in this order)."""
    values = list(values)
    types = {_type_name(v) for v in values}
    schema: dict[str, Any] = {}
    if "object" in types:
        objs = [v for v in values if isinstance(v, dict)]
        keys: dict[str, list[Any]] = {}
        for obj in objs:
            for k, v in obj.items():
                keys.setdefault(k, []).append(v)
        schema["properties"] = {k: derive_schema(vs) for k, vs in keys.items()}
        schema["required"] = [k for k in keys if all(k in obj for obj in objs)]
        schema["additionalProperties"] = False
    if "array" in types:
        items = [x for v in values if isinstance(v, list) for x in v]
        if items:
            schema["items"] = derive_schema(items)
    if "string" in types:
        longest = max(len(v) for v in values if isinstance(v, str))
        schema["maxLength"] = max(_MIN_STRING, STRING_SLACK * longest)
    if types & {"integer", "number"}:
        nums = [v for v in values if type(v) in (int, float)]
        bound = number_bound(nums)
        schema["minimum"] = -bound if any(v < 0 for v in nums) else 0
        schema["maximum"] = bound
    merged = _merge_types(types)
    schema = {"type": merged[0] if len(merged) == 1 else merged, **schema}
    return schema


def closed(schema: Mapping[str, Any], max_string: int | None = None, max_number: int | None = None) -> dict[str, Any]:
    """A copy of an object schema that admits no keys it does not list (nested objects too), as a tool's
    arguments are scored (slmexp.tasks.metrics.schema_errors counts unknown keys as errors); free strings (no
    enum, no length of their own) at most `max_string` characters and free numbers within +-`max_number` when
    given."""
    out = dict(schema)
    if out.get("type") == "object" or "properties" in out:
        out.setdefault("properties", {})
        out["properties"] = {k: closed(v, max_string, max_number) if isinstance(v, Mapping) else v
                             for k, v in out["properties"].items()}
        out.setdefault("additionalProperties", False)
    if isinstance(out.get("items"), Mapping):
        out["items"] = closed(out["items"], max_string, max_number)
    if max_string and out.get("type") == "string" and not ({"enum", "const", "maxLength"} & set(out)):
        out["maxLength"] = max_string
    if max_number and out.get("type") in ("integer", "number") and not ({"enum", "const"} & set(out)):
        out.setdefault("minimum", -max_number)
        out.setdefault("maximum", max_number)
    return out


def number_bound(values: Iterable[Any]) -> int:
    """All nines with one digit more than the largest magnitude among the numbers anywhere in `values` (nested
    too), at least `_MIN_NUMBER`: the bound of free numbers derived from a task's gold answers."""
    largest = max([0.0, *(abs(x) for v in values for x in _leaves(v) if type(x) in (int, float))])
    return max(_MIN_NUMBER, 10 ** (len(str(int(largest))) + 1) - 1)


def max_chars(schema: Any) -> int | None:
    """The most characters an answer valid under `schema` can take as either engine writes it (llama.cpp's GBNF
    converter: one optional space after each token, numbers up to its 16-digit parts; llguidance: json.dumps'
    separators, `FRACTION_DIGITS` decimals), or None when something in it is unbounded (a string without
    maxLength, an array without maxItems). Every generated token adds at least one character, so a token budget
    of this many always lets the grammar close the answer (slmexp.decoding.fit_budget)."""
    if not isinstance(schema, Mapping):
        return None
    if "const" in schema:
        return len(json.dumps(schema["const"])) + 1
    if "enum" in schema:
        return max(len(json.dumps(v)) for v in schema["enum"]) + 1
    for key in ("anyOf", "oneOf"):
        if key in schema:
            sizes = [max_chars({**{k: v for k, v in schema.items() if k != key}, **dict(b)}) for b in schema[key]]
            return None if None in sizes else max(sizes)
    types = schema.get("type")
    if isinstance(types, list):
        sizes = [max_chars({**schema, "type": t}) for t in types]
        return None if None in sizes else max(sizes)
    if types == "null":
        return 5
    if types == "boolean":
        return 6
    if types == "integer":
        digits = [len(str(int(abs(schema[k])))) for k in ("minimum", "maximum") if k in schema]
        return max([_LLAMACPP_INTEGER, *(1 + d for d in digits)]) + 1  # sign + digits, a space
    if types == "number":
        digits = [len(str(int(abs(schema[k])))) for k in ("minimum", "maximum") if k in schema]
        return max(_LLAMACPP_NUMBER, 1 + max([0, *digits]) + 1 + FRACTION_DIGITS) + 1
    if types == "string":
        return None if "maxLength" not in schema else 2 + _ESCAPED * int(schema["maxLength"]) + 1
    if types == "array":
        items = max_chars(schema.get("items")) if "items" in schema else None
        if items is None or "maxItems" not in schema:
            return None
        return 2 + int(schema["maxItems"]) * (items + 2) + 1
    if types == "object" or "properties" in schema:
        if schema.get("additionalProperties", True) is not False:
            return None
        total = 2 + 1  # braces, a space
        for key, sub in (schema.get("properties") or {}).items():
            value = max_chars(sub)
            if value is None:
                return None
            total += len(json.dumps(key)) + 1 + 2 + value + 2  # "key" :<space> value ,<space>
        return total
    return None


def engine_copy(schema: Any) -> Any:
    """`schema` with every number limited to `FRACTION_DIGITS` decimals (`multipleOf`), for llguidance only: its
    JSON numbers otherwise take decimals without end."""
    if isinstance(schema, list):
        return [engine_copy(v) for v in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {k: engine_copy(v) for k, v in schema.items()}
    if out.get("type") == "number" and "multipleOf" not in out:
        out["multipleOf"] = 10.0 ** -FRACTION_DIGITS
    return out


def _leaves(value: Any) -> Iterable[Any]:
    """Every scalar inside a parsed JSON value (object values and array items, nested)."""
    if isinstance(value, Mapping):
        for x in value.values():
            yield from _leaves(x)
    elif isinstance(value, list):
        for x in value:
            yield from _leaves(x)
    else:
        yield value


def string_bound(values: Iterable[Any]) -> int:
    """`STRING_SLACK` x the longest string anywhere in `values` (nested too), at least `_MIN_STRING`: the bound
    of free strings derived from a task's gold answers."""
    return max([_MIN_STRING, *(STRING_SLACK * len(s) for v in values for s in _leaves(v) if isinstance(s, str))])


def tool_call_schema(tools: Sequence[Mapping[str, Any]], max_string: int | None = None,
                     max_number: int | None = None) -> dict[str, Any]:
    """A call `{"name": <one offered tool>, "arguments": <valid under that tool's parameters>}`: one branch per
    tool, so the arguments are checked against the schema of the tool actually named. Free string arguments at
    most `max_string` characters, free numbers within +-`max_number`, when given (bounds derived from the gold
    calls: `string_bound`, `number_bound`)."""
    branches = []
    for tool in tools:
        fn = tool.get("function", tool)
        params = closed(fn.get("parameters") or {"type": "object", "properties": {}}, max_string, max_number)
        branches.append({"type": "object", "properties": {"name": {"const": fn["name"]}, "arguments": params},
                         "required": ["name", "arguments"], "additionalProperties": False})
    return branches[0] if len(branches) == 1 else {"anyOf": branches}


def schema_problem(schema: Any) -> str | None:
    """Why `schema` is not a usable JSON Schema (checked by jsonschema's meta-schema), or None."""
    if not isinstance(schema, Mapping) or not schema:
        return f"must be a non-empty JSON Schema object, got {json.dumps(schema, default=str)[:80]}"
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(dict(schema))
    except SchemaError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        return f"is not a valid JSON Schema at {where}: {e.message}"
    if schema.get("type") not in ("object", None) and "anyOf" not in schema:
        return f"must describe a JSON object (type: object), got type {schema.get('type')!r}"
    return None


def first_violation(schema: Mapping[str, Any], values: Iterable[tuple[str, Any]]) -> str | None:
    """`where: why` for the first value (paired with where it came from) the schema rejects, or None: a schema
    that rejects a gold answer would force every model to be wrong on it."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(dict(schema))
    for where, value in values:
        err = next(iter(validator.iter_errors(value)), None)
        if err is not None:
            path = "/".join(str(p) for p in err.absolute_path) or "(root)"
            return f"{where}: the gold answer fails it at {path}: {err.message}"
    return None
