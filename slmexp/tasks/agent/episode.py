"""One agent episode: the user's goal, the model's turns through the runtime's `chat` capability, each tool call
run in process and its result (or error) sent back as a `tool` message, until the model answers or `max_steps`
model calls were made.

The episode is kept as a transcript (every turn's raw output, parsed calls, tokens and timings, every tool result):
the checker (slmexp.tasks.agent.judge) scores it by replaying its calls, so a stored transcript is re-scored
later with no model (`slmexp rescore`), and a reviewer reads the episode turn by turn.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from slmexp.tasks.agent.toolbox import FINAL_ANSWER, FINAL_ANSWER_SCHEMA, Toolbox, run_call


def _call_record(call: Mapping[str, Any]) -> dict[str, Any]:
    """A parsed call as the transcript keeps it: name and arguments (an endpoint's unparsable arguments kept as
    they came, so the replay fails them the same way)."""
    args = call.get("arguments") if "invalid_arguments" not in call else call["invalid_arguments"]
    return {"id": call.get("id"), "name": call.get("name"), "arguments": args}


def _turn_record(turn: Any) -> dict[str, Any]:
    return {"raw": turn.raw, "text": turn.text, "calls": [_call_record(c) for c in turn.tool_calls],
            "input_tokens": turn.input_tokens, "output_tokens": turn.output_tokens,
            "latency_s": round(turn.latency_s, 4), "ttft_s": None if turn.ttft_s is None else round(turn.ttft_s, 4),
            "usage_source": turn.usage_source}


def final_answer_of(turn: Mapping[str, Any]) -> str | None:
    """The final answer a recorded turn gives: a `final_answer` call's answer, else the prose of a turn that
    calls no tool; None while the model is still calling tools."""
    for call in turn["calls"]:
        if call["name"] == FINAL_ANSWER:
            args = call["arguments"]
            return str(args.get("answer", "")) if isinstance(args, dict) else ""
    return None if turn["calls"] else str(turn["text"] or "")


def tool_message(call: Mapping[str, Any], result: Any, error: str | None) -> dict[str, Any]:
    """The `tool` message that answers one call: its JSON result, or `{"error": ...}`."""
    content = json.dumps({"error": error} if error is not None else result, ensure_ascii=False)
    return {"role": "tool", "tool_call_id": call["id"], "name": str(call["name"]), "content": content}


def run_episode(runtime: Any, box: Toolbox, row: Mapping[str, Any], prompt: str, *, offered: list[str] | None,
                max_steps: int, max_new_tokens: int, constraint: Any = None) -> dict[str, Any]:
    """Run one episode and return its transcript: `turns` (one per model call), `results` (per turn, the tool
    messages it got back), `final` (the answer, or None), `stopped` ("answered" | "max_steps"), `wall_s` and
    `answer_s` (seconds to the final answer, tools' time included)."""
    from slmexp.runtimes import chat

    tools = box.offered(offered) + ([dict(FINAL_ANSWER_SCHEMA)] if constraint is not None else [])
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    state = box.new_state(row)
    turns: list[dict[str, Any]] = []
    results: list[list[dict[str, Any]]] = []
    t0 = time.perf_counter()
    final: str | None = None
    while len(turns) < max_steps:
        turn = chat(runtime, messages, tools=tools, constraint=constraint, max_new_tokens=max_new_tokens)
        record = _turn_record(turn)
        turns.append(record)
        final = final_answer_of(record)
        if final is not None:
            results.append([])
            break
        messages.append(turn.message())
        sent = []
        for call, kept in zip(turn.tool_calls, record["calls"], strict=True):
            result, error = run_call(box, state, str(kept["name"]), kept["arguments"], offered)
            sent.append(tool_message(call, result, error))
        messages += sent
        results.append(sent)
    wall = time.perf_counter() - t0
    return {"turns": turns, "results": results, "final": final,
            "stopped": "answered" if final is not None else "max_steps", "max_steps": max_steps,
            "wall_s": round(wall, 4), "answer_s": round(wall, 4) if final is not None else None}

