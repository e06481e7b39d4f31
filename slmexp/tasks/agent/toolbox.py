"""An agent task's tools: loading the tools module a task names, and running one call against an episode's data.

Why a module of its own: the episode loop, the checker and `slmexp rescore` all run calls, and must run them the
same way, so that replaying a stored episode rebuilds exactly the data the model saw. Every way a call can go
wrong (unknown tool, arguments the tool's schema rejects, the tool refusing) becomes the tool's error, fed back
to the model as the tool message and counted; nothing a model writes can crash the job.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from slmexp.errors import DataError

# The tool the agent answers through under decoding=constrained (every constrained turn is a call), as inspect_ai's
# react agent's `submit`: its `answer` argument is the final answer. Offered only when turns are constrained.
FINAL_ANSWER = "final_answer"
FINAL_ANSWER_SCHEMA = {"name": FINAL_ANSWER, "description": "Give the user your final answer and end the task.",
                       "parameters": {"type": "object", "properties": {"answer": {"type": "string"}},
                                      "required": ["answer"], "additionalProperties": False}}


@dataclass(frozen=True)
class Toolbox:
    """A loaded tools module: schemas by name, functions by name, and the episode's starting data."""

    source: str
    schemas: Mapping[str, Mapping[str, Any]]
    functions: Mapping[str, Callable[..., Any]]
    new_state: Callable[[Mapping[str, Any]], dict[str, Any]]

    def offered(self, names: list[str] | None) -> list[dict[str, Any]]:
        """The schemas of the tools one episode offers (all of them when the row names none)."""
        return [dict(self.schemas[n]) for n in (names or list(self.schemas))]


def _default_state(row: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(row.get("state") or {}))


def _import(source: str) -> Any:
    """A tools module from a file path (`.py`) or an importable module name."""
    if source.endswith(".py"):
        path = Path(source).expanduser().resolve()
        if not path.is_file():
            raise DataError(f"task.agent.tools: no such file {path}")
        name = "slmexp_agent_tools_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return module
    return importlib.import_module(source)


@cache
def load(source: str) -> Toolbox:
    """The tools module `source` names (task.agent.tools), checked: every schema has a function of its name."""
    module = _import(str(source))
    schemas = {str(s["name"]): s for s in getattr(module, "SCHEMAS", None) or []}
    if not schemas:
        raise DataError(f"task.agent.tools: {source} defines no SCHEMAS (a list of function schemas)")
    missing = [n for n in schemas if not callable(getattr(module, n, None))]
    if missing:
        raise DataError(f"task.agent.tools: {source} has schemas without a function: {', '.join(missing)}")
    if FINAL_ANSWER in schemas:
        raise DataError(f"task.agent.tools: {source}: {FINAL_ANSWER!r} is reserved for the agent's final answer")
    return Toolbox(str(source), schemas, {n: getattr(module, n) for n in schemas},
                   getattr(module, "new_state", _default_state))


def _argument_problem(schema: Mapping[str, Any], arguments: Any) -> str | None:
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema.get("parameters") or {}).iter_errors(arguments),
                    key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    where = "/".join(str(p) for p in errors[0].absolute_path)
    return f"{where + ': ' if where else ''}{errors[0].message}"


def run_call(box: Toolbox, state: dict[str, Any], name: str, arguments: Any,
             offered: list[str] | None) -> tuple[Any, str | None]:
    """(result, None) of one call, or (None, the error the model is told): unknown or not-offered tool, arguments
    that are not a JSON object or break the tool's schema, or the tool refusing (ValueError, KeyError, TypeError).
    `state` is changed in place only by a call that succeeds."""
    allowed = offered or list(box.schemas)
    if name not in allowed:
        return None, f"unknown tool {name!r}; available: {', '.join(allowed)}"
    if not isinstance(arguments, dict):
        return None, f"arguments of {name} must be a JSON object, got {json.dumps(arguments, default=str)[:80]}"
    if why := _argument_problem(box.schemas[name], arguments):
        return None, f"bad arguments for {name}: {why}"
    trial = copy.deepcopy(state)  # a tool that fails half-way leaves no trace
    try:
        result = box.functions[name](trial, **arguments)
    except (ValueError, KeyError, TypeError) as e:
        return None, f"{name} failed: {e.args[0] if e.args else type(e).__name__}"
    state.clear()
    state.update(trial)
    return result, None
