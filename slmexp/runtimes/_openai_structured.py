"""Structured outputs over the OpenAI chat-completions wire format: request fields in, answer text out.

The endpoint enforces the constraint (OpenAI's structured outputs, vLLM's and llama.cpp's servers do it with their
own grammar engines); slmexp only asks in the standard way and turns the structured reply back into the answer text
the task's metrics parse, so a constrained endpoint is scored exactly like a constrained local model:
- classification: `response_format` json_schema `{"label": <enum of task.labels>}`; the answer is the label;
- extraction: `response_format` json_schema with the task's schema; the answer is the JSON text;
- tool_call: `tools` (the row's offered tools) with `tool_choice: "required"`; the answer is the first tool call as
  `{"name", "arguments"}` JSON (the tasks' format).
An endpoint that does not support these answers HTTP 400; the runtime's error names `decoding.name`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from slmexp.decoding.spec import Constraint


def request_fields(constraint: Constraint) -> dict[str, Any]:
    """The chat-completions request fields that ask the endpoint for `constraint`."""
    if constraint.tools is not None:
        tools = [{"type": "function", "function": {k: v for k, v in dict(t.get("function", t)).items()
                                                   if k in ("name", "description", "parameters")}}
                 for t in constraint.tools]
        return {"tools": tools, "tool_choice": "required"}
    if constraint.choices is not None:
        schema = {"type": "object", "properties": {"label": {"type": "string", "enum": list(constraint.choices)}},
                  "required": ["label"], "additionalProperties": False}
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": "label", "strict": True, "schema": schema}}}
    schema = dict(constraint.schema or {})
    return {"response_format": {"type": "json_schema",
                                "json_schema": {"name": "answer", "strict": True, "schema": schema}}}


def answer_text(message: Mapping[str, Any], constraint: Constraint) -> str:
    """The task-format answer in a chat-completions `message` (or a streamed message assembled from its deltas)."""
    calls = message.get("tool_calls") or []
    if constraint.tools is not None and calls:
        fn = calls[0].get("function") or {}
        args = fn.get("arguments")
        with contextlib.suppress(ValueError):  # else left as the server sent it: the metrics find it invalid
            args = json.loads(args) if isinstance(args, str) else args
        return json.dumps({"name": fn.get("name"), "arguments": args}, ensure_ascii=False)
    content = message.get("content") or ""
    if constraint.choices is not None:
        try:
            value = json.loads(content)
        except ValueError:
            return content
        if isinstance(value, dict) and isinstance(value.get("label"), str):
            return value["label"]
    return content


def wraps(constraint: Constraint) -> bool:
    """Whether the reply's wire form differs from the answer text (so a stream is assembled before it is yielded)."""
    return constraint.tools is not None or constraint.choices is not None


def last_user_content(messages: Any) -> str:
    """The last user message's text of an lm-eval chat request (a list of dicts, or lm-eval's JsonChatStr)."""
    msgs = json.loads(messages.prompt) if hasattr(messages, "prompt") else messages
    if isinstance(msgs, list):
        for m in reversed(msgs):
            if isinstance(m, dict) and m.get("role") == "user":
                return str(m.get("content") or "")
    return str(msgs)
