"""Kind `agent`'s constraint and training rows: the answer space of one model call under `decoding=constrained`,
and the gold trajectories as supervised examples.

Constrained: every model call is a call of one offered tool with arguments valid under its schema, or of
`final_answer` (the episode's answer), built with the tool-call kind's grammar (slmexp.decoding.schema) with string
and number bounds derived from the gold trajectories, as for `tool_call`.

Training: a gold trajectory of k model calls gives k prompt/completion examples, each the whole conversation up
to that assistant turn and that turn as the completion, so the train stage's completion-only loss covers exactly
the assistant turns, each with its full history. The conversation is written in the text form the runtimes give
a chat template without tool support (tools in the system turn, calls as `<tool_call>` blocks, results as
`<tool_response>` user turns: slmexp/runtimes/_chat.py), which is what SmolLM2's template sees at evaluation.
"""

from __future__ import annotations

import json
from typing import Any

from omegaconf import DictConfig

from slmexp.decoding.schema import number_bound, string_bound, tool_call_schema
from slmexp.decoding.spec import Constraint, ConstraintSpec
from slmexp.tasks import render_prompt
from slmexp.tasks.agent.toolbox import FINAL_ANSWER_SCHEMA, load


def _offered(task_cfg: DictConfig, row: dict[str, Any]) -> list[str] | None:
    name = task_cfg.fields.get("tools")
    return list(row[name]) if name and row.get(name) else None


def _gold(task_cfg: DictConfig, row: dict[str, Any]) -> dict[str, Any]:
    return row[task_cfg.fields.target]


def call_steps(task: Any) -> ConstraintSpec:
    """Per episode (by its rendered goal): one offered tool or `final_answer`, arguments valid (the kind's
    `constraint` builder, slmexp.decoding.build)."""
    from slmexp.tasks.agent.runner import tools_source

    box = load(tools_source(task.cfg))
    rows = [r for split_rows in task.splits.values() for r in split_rows]
    values = [c["arguments"] for r in rows for c in _gold(task.cfg, r)["calls"]]
    values += [{"answer": _gold(task.cfg, r).get("reply", "")} for r in rows]
    bound, numbers = string_bound(values), number_bound(values)
    by_prompt = {}
    for row in rows:
        tools = [*box.offered(_offered(task.cfg, row)), dict(FINAL_ANSWER_SCHEMA)]
        by_prompt[render_prompt(task.cfg, row)] = Constraint(task.kind, schema=tool_call_schema(tools, bound, numbers),
                                                             tools=tuple(tools))
    return ConstraintSpec(task.kind, by_prompt=by_prompt)


def gold_messages(task_cfg: DictConfig, row: dict[str, Any]) -> list[dict[str, Any]]:
    """The gold trajectory as an OpenAI-format conversation: user goal, assistant calls with their tool results
    (run on the episode's data), and the gold reply."""
    from slmexp.tasks.agent.episode import tool_message
    from slmexp.tasks.agent.runner import tools_source
    from slmexp.tasks.agent.toolbox import run_call

    box = load(tools_source(task_cfg))
    gold, offered = _gold(task_cfg, row), _offered(task_cfg, row)
    state = box.new_state(row)
    messages: list[dict[str, Any]] = [{"role": "user", "content": render_prompt(task_cfg, row)}]
    for i, step in enumerate(gold.get("steps") or [[c] for c in gold["calls"]]):
        calls = [{"id": f"call_{i}_{j}", "name": c["name"], "arguments": c["arguments"]} for j, c in enumerate(step)]
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": json.dumps(
                c["arguments"], ensure_ascii=False)}} for c in calls]})
        for c in calls:
            result, error = run_call(box, state, c["name"], c["arguments"], offered)
            messages.append(tool_message(c, result, error))
    messages.append({"role": "assistant", "content": str(gold.get("reply") or "")})
    return messages


def sft_rows(task_cfg: DictConfig, row: dict[str, Any]) -> list[dict[str, Any]]:
    """TRL prompt/completion examples of one gold trajectory, one per assistant turn (see the module docstring)."""
    from slmexp.runtimes._chat import text_messages, tool_schemas
    from slmexp.tasks.agent.runner import tools_source

    box = load(tools_source(task_cfg))
    plain = text_messages(gold_messages(task_cfg, row), tool_schemas(box.offered(_offered(task_cfg, row))))
    return [{"prompt": plain[:i], "completion": [plain[i]]} for i, m in enumerate(plain) if m["role"] == "assistant"]
