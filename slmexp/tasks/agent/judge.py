"""The checker of an agent episode: replay the model's calls on a fresh copy of the episode's data, replay the gold
calls likewise, and compare the final data and the final answer. Deterministic, so a stored transcript is scored
again with no model (`slmexp rescore` calls `process_results` as lm-eval would).

Success = the model answered within max_steps, its calls left the data exactly as the gold calls do, and the
answer states every gold fact (a number matches any number in the answer to the cent; text, case-insensitively).
The other per-episode metrics count what happened: model calls, tool calls, valid calls (an offered tool with
arguments its schema accepts), tool errors (any call answered with an error), tokens and seconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from slmexp.tasks.agent.episode import final_answer_of
from slmexp.tasks.agent.toolbox import FINAL_ANSWER, Toolbox, load, run_call

_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
# The per-episode metrics, primary first (the task kind's record declares their directions).
METRICS = ("success", "steps", "tool_calls", "valid_calls", "tool_errors", "input_tokens", "output_tokens",
           "wall_s", "answer_s")


def replay(box: Toolbox, row: Mapping[str, Any], calls: list[Mapping[str, Any]],
           offered: list[str] | None) -> tuple[dict[str, Any], list[str | None]]:
    """(final data, each call's error or None) after running `calls` in order on the episode's starting data."""
    state = box.new_state(row)
    errors = [run_call(box, state, str(c.get("name")), c.get("arguments"), offered)[1] for c in calls]
    return state, errors


def _diff(got: Any, want: Any, path: str = "") -> str | None:
    """The first place two JSON values differ, as `path: got X, expected Y`."""
    if isinstance(got, dict) and isinstance(want, dict):
        for key in sorted(set(got) | set(want), key=str):
            if (why := _diff(got.get(key), want.get(key), f"{path}.{key}" if path else str(key))) is not None:
                return why
        return None
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return next((w for i, (g, e) in enumerate(zip(got, want, strict=True))
                     if (w := _diff(g, e, f"{path}[{i}]")) is not None), None)
    return None if got == want else f"{path or 'data'}: got {json.dumps(got)[:60]}, expected {json.dumps(want)[:60]}"


def missing_facts(answer: str, facts: list[str]) -> list[str]:
    """The gold facts the answer does not state."""
    numbers = [float(n.replace(",", ".")) for n in _NUMBER.findall(answer)]
    out = []
    for fact in facts:
        try:
            value = float(fact)
        except ValueError:
            if fact.lower() not in answer.lower():
                out.append(fact)
            continue
        if not any(abs(n - value) < 0.005 for n in numbers):
            out.append(fact)
    return out


def _loop_note(calls: list[Mapping[str, Any]]) -> str:
    keys = [json.dumps([c.get("name"), c.get("arguments")], sort_keys=True, default=str) for c in calls]
    top = max(set(keys), key=keys.count) if keys else None
    return f" (the same {json.loads(top)[0]} call {keys.count(top)} times)" if top and keys.count(top) > 1 else ""


def judge(box: Toolbox, row: Mapping[str, Any], gold: Mapping[str, Any], offered: list[str] | None,
          transcript: Mapping[str, Any]) -> tuple[dict[str, float], str]:
    """(the episode's metrics, why it failed or "solved")."""
    turns = transcript.get("turns") or []
    calls = [c for t in turns for c in t["calls"] if c.get("name") != FINAL_ANSWER]
    state, errors = replay(box, row, calls, offered)
    want, _ = replay(box, row, list(gold.get("calls") or []), offered)
    final = final_answer_of(turns[-1]) if turns else None
    bad_args = sum(1 for e in errors if e is not None and e.startswith(("unknown tool", "bad arguments", "arguments")))
    wall = float(transcript.get("wall_s") or 0.0)
    answer_s = transcript.get("answer_s")
    metrics = {"steps": float(len(turns)), "tool_calls": float(len(calls)), "valid_calls": float(len(calls) - bad_args),
               "tool_errors": float(sum(e is not None for e in errors)),
               "input_tokens": float(sum(t.get("input_tokens") or 0 for t in turns)),
               "output_tokens": float(sum(t.get("output_tokens") or 0 for t in turns)),
               "wall_s": wall, "answer_s": float(answer_s) if answer_s is not None else wall}
    if final is None:
        reason = f"no final answer within max_steps={transcript.get('max_steps')} model calls{_loop_note(calls)}"
    elif (why := _diff(state, want)) is not None:
        first_error = next((e for e in errors if e), None)
        reason = f"wrong final data: {why}" + (f" (a call failed: {first_error})" if first_error else "")
    elif lacking := missing_facts(final, [str(f) for f in gold.get("answer") or []]):
        reason = f"the final answer does not state {', '.join(repr(f) for f in lacking)}"
    else:
        reason = "solved"
    return {"success": float(reason == "solved"), **metrics}, reason


def _episode(doc: Mapping[str, Any]) -> tuple[Toolbox, dict[str, Any], dict[str, Any], list[str] | None]:
    tools = json.loads(doc["tools"]) if doc.get("tools") else None
    return load(str(doc["toolbox"])), json.loads(doc["row"]), json.loads(doc["gold"]), tools


def judge_raw(doc: Mapping[str, Any], raw: str) -> tuple[dict[str, float], str]:
    """`judge` of a stored episode: the doc the runner wrote and the transcript as JSON text."""
    box, row, gold, offered = _episode(doc)
    try:
        transcript = json.loads(raw)
    except (TypeError, ValueError):
        transcript = {}
    return judge(box, row, gold, offered, transcript if isinstance(transcript, dict) else {})


def process_results(doc: Mapping[str, Any], results: list[Any]) -> dict[str, float]:
    """lm-eval's `process_results` form (what `slmexp rescore` calls): the episode's metrics."""
    return judge_raw(doc, results[0])[0]


def extract(doc: Mapping[str, Any], raw: str) -> dict[str, Any]:
    """The kind's answer extraction: the final answer and the checker's verdict, for the per-example store."""
    try:
        final = json.loads(raw).get("final")
    except (TypeError, ValueError, AttributeError):
        final = None
    return {"final": final, "reason": judge_raw(doc, raw)[1]}
