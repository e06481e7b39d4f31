"""`chat` on an OpenAI-compatible endpoint: one chat-completions request with `tools`, the reply's `tool_calls` read
back into a `ChatTurn` (slmexp/runtimes/_chat.py holds the shared pieces).

Messages go to the server as the agent wrote them (OpenAI's format: assistant `tool_calls` with `arguments` as a
JSON string, role "tool" results with `tool_call_id`), normalised only where our own `ChatTurn.message()` or a
caller used a dict for `arguments`. A turn's constraint is asked for as the structured-output path asks for it
(slmexp/runtimes/_openai_structured.py): a tool-call constraint sends its tools with `tool_choice: "required"`, a
schema `response_format` json_schema. A server that answers a call in the message text (some local servers
without a tool parser) is read by the text parser. Not streamed: ttft_s is None.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from slmexp.errors import EndpointError
from slmexp.runtimes._chat import ChatTurn, as_call, parse_tool_calls, tool_schemas


def endpoint_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`messages` in the wire form: every call's `arguments` a JSON string, with `"type": "function"`."""
    out = []
    for m in messages:
        msg = dict(m)
        if m.get("tool_calls"):
            calls = []
            for call in m["tool_calls"]:
                fn = dict(call.get("function") or call)
                args = fn.get("arguments")
                fn = {"name": fn.get("name"), "arguments": args if isinstance(args, str) else json.dumps(args or {})}
                calls.append({"id": call.get("id"), "type": "function", "function": fn})
            msg["tool_calls"] = calls
        out.append(msg)
    return out


def _reply_calls(message: Any) -> list[dict[str, Any]]:
    """The response message's `tool_calls` as ChatTurn calls (arguments that are not a JSON object kept as text)."""
    calls = []
    for call in message.tool_calls or []:
        wire = {"id": call.id, "function": {"name": call.function.name, "arguments": call.function.arguments}}
        calls.append(as_call(wire) or {"id": call.id, "name": call.function.name, "arguments": {},
                                       "invalid_arguments": call.function.arguments})
    return calls


def endpoint_chat(rt: Any, messages: Sequence[Mapping[str, Any]], *, tools: Sequence[Mapping[str, Any]] | None,
                  constraint: Any, max_new_tokens: int, stop: Sequence[str] | None) -> ChatTurn:
    """One chat-completions request of `rt` (an OpenAIRuntime: its client, model, seed) for the next turn."""
    import openai

    kwargs: dict[str, Any] = dict(model=rt.model, messages=endpoint_messages(messages), max_tokens=max_new_tokens,
                                  temperature=0, seed=rt.seed)
    if tools:
        kwargs["tools"] = tool_schemas(tools)
    if stop:
        kwargs["stop"] = list(stop)[:4]
    if constraint is not None:
        from slmexp.runtimes._openai_structured import request_fields

        kwargs.update(request_fields(constraint))
    t0 = time.perf_counter()
    try:
        response = rt.client().chat.completions.create(**kwargs)
    except openai.APIStatusError as e:
        raise EndpointError(f"POST {rt.base_url}/chat/completions (chat turn {len(messages)}) -> HTTP "
                            f"{e.status_code}: {str(e)[:300]}") from None
    except openai.APIConnectionError as e:
        raise EndpointError(f"runtime.base_url: {rt.base_url} stopped answering during a chat turn "
                            f"({type(e).__name__}: {e})") from None
    latency = time.perf_counter() - t0
    message = response.choices[0].message
    content = message.content or ""
    calls = _reply_calls(message)
    text = content
    if not calls:
        text, calls = parse_tool_calls(content)
    usage = response.usage
    counted = usage is not None and usage.completion_tokens is not None
    return ChatTurn(text, calls, content, usage.prompt_tokens if counted else None,
                    usage.completion_tokens if counted else None, latency, None,
                    "server usage" if counted else None)
