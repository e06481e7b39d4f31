"""Pydantic's validation errors as slmexp's one-line ConfigErrors: the dotted key, what it must be, what it got.

Why here and not pydantic's own text: its messages ("Input should be a valid integer") name neither the key as
the user overrides it nor the file:line that set it; slmexp.origin finds the latter from the key.
"""

from __future__ import annotations

import re
from typing import Any

from slmexp.errors import ConfigError
from slmexp.origin import fail
from slmexp.schema.types import FORMS

_TYPES = {"int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
          "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
          "bool_parsing": "true or false", "string_type": "a string", "list_type": "a list", "dict_type": "a mapping",
          "model_type": "a mapping of keys", "model_attributes_type": "a mapping of keys"}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _shown(value: Any) -> str:
    text = repr(value)
    return (text[:60] + "...") if len(text) > 63 else text


def key_of(loc: tuple[Any, ...], data: Any, error_type: str) -> str:
    """The dotted config key of a pydantic error location: the prefix of `loc` that indexes into `data` (union
    branches add tags such as 'int' or "literal['auto']" that are not keys), plus the missing key itself."""
    parts: list[str] = []
    node = data
    for i, part in enumerate(loc):
        if (isinstance(node, dict) and part in node) or (
                isinstance(node, list) and isinstance(part, int) and part < len(node)):
            node = node[part]
        elif error_type == "missing" and i == len(loc) - 1:
            pass
        else:
            break
        parts.append(str(part))
    return ".".join(parts)


def message(err: dict[str, Any]) -> str:
    """What a value must be, said from the error's type and context."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    got = f"got {_shown(value)} ({type(value).__name__})"
    if kind == "missing":
        return "must be set"
    if kind == "extra_forbidden":
        return "is not a key slmexp reads (a typo, or a key of another option?)"
    if kind in _TYPES:
        return f"must be {_TYPES[kind]}, {got}"
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()), "?")  # {'ge': 1}
        return f"must be {_BOUNDS[kind]} {bound:g}, {got}" if isinstance(bound, int | float) else \
            f"must be {_BOUNDS[kind]} {bound}, {got}"
    if kind == "finite_number":
        return f"must be a finite number, {got}"
    if kind == "literal_error":
        choices = [a or b for a, b in re.findall(r"'([^']*)'|([\w.-]+)", ctx.get("expected", ""))
                   if (a or b) != "or"]
        return f"{_shown(value)} is not one of {', '.join(choices)}"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern")
        return f"{_shown(value)} is not {FORMS[pattern]}" if pattern in FORMS else \
            f"{_shown(value)} does not match the form {pattern}"
    if kind in ("too_short", "string_too_short"):
        return f"must not be empty, {got}"
    return f"{err.get('msg', kind)}, {got}"


def to_config_errors(exc: Any, data: dict[str, Any], prefix: str) -> list[ConfigError]:
    """One ConfigError per key (a union's branches each report the same bad value: the first says it)."""
    out: dict[str, ConfigError] = {}
    for err in exc.errors(include_url=False):
        key = key_of(tuple(err["loc"]), data, err["type"])
        full = ".".join(k for k in (prefix, key) if k)
        if full not in out:
            out[full] = fail(full, message(err))
    return list(out.values())
