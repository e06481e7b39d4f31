"""Multi-turn chat with tools, the runtimes' `chat` capability: the pieces every runtime shares.

An agent loop sends OpenAI-format `messages` (system / user / assistant turns, assistant turns carrying
`tool_calls`, role "tool" results) and tool schemas, and gets a `ChatTurn` back, whatever serves the model:
- local runtimes (transformers, llama.cpp) render the conversation with the model's chat template
  (`render_chat`): a template that takes `tools` gets them (and the assistant calls and tool results in the
  structured form HF templates read); a template without tool support gets the tools as JSON text in the system
  message, earlier calls as `<tool_call>` blocks in the assistant's text, and tool results as a user turn of
  `<tool_response>` blocks (Qwen's / Hermes' text form, which small models are most often trained on). Calls are
  then parsed from the generated text (`parse_tool_calls`);
- endpoints send `tools` in chat.completions and read `tool_calls` from the response, the text parser being the
  fallback for a server that leaves calls in the text (slmexp/runtimes/_openai_chat.py).
Nothing heavy is imported here: runtime modules import this one.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slmexp.errors import SlmexpError

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_EMPTY_FENCE = re.compile(r"```(?:json)?\s*```")
_JSON_START = re.compile(r"[{\[]")
TOOLS_TEXT = ("You may call one or more functions to answer the user. The functions, as JSON Schema:\n"
              "<tools>\n{tools}\n</tools>\nTo call one, answer with a JSON object {{\"name\": <function name>, "
              "\"arguments\": <its arguments as a JSON object>}} inside <tool_call></tool_call> tags.")


@dataclass
class ChatTurn:
    """One assistant turn. `text`: the reply's prose (call markup taken out); `tool_calls`: [{"id", "name",
    "arguments": dict}] (an endpoint's call whose arguments are not a JSON object keeps them as
    "invalid_arguments"); `raw`: the text as generated (an endpoint's: the message content); token counts as
    `usage_source` says (None where unknown); `latency_s` and `ttft_s` (None where not streamed) from the call."""

    text: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    raw: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_s: float = 0.0
    ttft_s: float | None = None
    usage_source: str | None = None

    def message(self) -> dict[str, Any]:
        """This turn as the assistant message of the next request (OpenAI's form: arguments as a JSON string)."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            msg["tool_calls"] = [{"id": c["id"], "type": "function", "function": {
                "name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)}}
                for c in self.tool_calls]
        return msg


# --- tool calls in text ---------------------------------------------------------------------------------------------


def new_call_id() -> str:
    """An id for a call parsed from text (the model wrote none): the tool result names it in `tool_call_id`."""
    return f"call_{uuid.uuid4().hex[:12]}"


def as_call(value: Any, *, bare: bool = False) -> dict[str, Any] | None:
    """`{"id", "name", "arguments": dict}` from one call object, or None: ours / Qwen's `{"name", "arguments"}`,
    Llama's `"parameters"`, OpenAI's `{"type": "function", "function": {...}}` with `arguments` as a JSON string.
    `bare` (JSON outside `<tool_call>` tags) also needs the `arguments` / `parameters` key, so that an ordinary
    JSON answer with a `name` field is not taken for a call."""
    if not isinstance(value, Mapping):
        return None
    if isinstance(value.get("function"), Mapping):
        value = {"id": value.get("id"), **value["function"]}
    name = value.get("name")
    if not isinstance(name, str) or not name or (bare and "arguments" not in value and "parameters" not in value):
        return None
    args = value.get("arguments", value.get("parameters"))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return None
    args = {} if args is None else args
    if not isinstance(args, Mapping):
        return None
    return {"id": value.get("id") or new_call_id(), "name": name, "arguments": dict(args)}


def _candidates(value: Any) -> list[Any]:
    if isinstance(value, Mapping) and isinstance(value.get("tool_calls"), list):
        return list(value["tool_calls"])
    return list(value) if isinstance(value, list) else [value]


def _loads(text: str) -> Any:
    text = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    try:
        return json.loads(text)
    except ValueError:
        return None


def _bare_calls(text: str) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
    """Calls written as bare JSON anywhere in `text` (a call, a list of calls, `{"tool_calls": [...]}`), with the
    spans they occupy; JSON that holds no call is skipped whole."""
    decoder = json.JSONDecoder()
    calls, spans, i = [], [], 0
    while (m := _JSON_START.search(text, i)) is not None:
        try:
            value, end = decoder.raw_decode(text, m.start())
        except ValueError:
            i = m.start() + 1
            continue
        found = [c for v in _candidates(value) if (c := as_call(v, bare=True)) is not None]
        if found:
            calls += found
            spans.append((m.start(), end))
        i = end
    return calls, spans


def parse_tool_calls(text: str) -> tuple[str, list[dict[str, Any]]]:
    """(prose, calls) of a generated reply: `<tool_call>{json}</tool_call>` blocks (Qwen, SmolLM3, Hermes; an
    unclosed last block included), else calls written as bare JSON. The prose is the text with the parsed calls
    (and fences left empty) taken out; a block that does not parse stays in it."""
    calls: list[dict[str, Any]] = []
    spans: list[tuple[int, int]] = []
    for m in _TAGGED.finditer(text):
        found = [c for v in _candidates(_loads(m.group(1))) if (c := as_call(v)) is not None]
        if found:
            calls += found
            spans.append(m.span())
    if not calls:
        calls, spans = _bare_calls(text)
    prose, at = [], 0
    for start, end in spans:
        prose.append(text[at:start])
        at = end
    prose.append(text[at:])
    return _EMPTY_FENCE.sub("", "".join(prose)).strip(), calls


# --- rendering for local chat templates -----------------------------------------------------------------------------


def tool_schemas(tools: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Tools in OpenAI's wire form `{"type": "function", "function": {name, description, parameters}}` (bare
    JSON-Schema functions, the tasks' form, are wrapped): what endpoints and tool-aware templates take."""
    out = []
    for tool in tools or []:
        fn = tool.get("function", tool)
        out.append({"type": "function", "function": {k: v for k, v in dict(fn).items()
                                                     if k in ("name", "description", "parameters")}})
    return out


def _template_call(call: Mapping[str, Any]) -> dict[str, Any]:
    """An assistant message's call as HF chat templates read it: arguments as a dict (templates apply `tojson`)."""
    parsed = as_call(call) or {"name": str((call.get("function") or call).get("name")), "arguments": {}}
    out = {"type": "function", "function": {"name": parsed["name"], "arguments": parsed["arguments"]}}
    return {**({"id": call["id"]} if call.get("id") else {}), **out}


def template_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`messages` for a template that takes tools: content never None, calls' arguments as dicts."""
    out = []
    for m in messages:
        msg = {**m, "content": m.get("content") or ""}
        if m.get("tool_calls"):
            msg["tool_calls"] = [_template_call(c) for c in m["tool_calls"]]
        out.append(msg)
    return out


def text_messages(messages: Sequence[Mapping[str, Any]], schemas: list[dict[str, Any]]) -> list[dict[str, str]]:
    """`messages` for a template without tool support (see the module docstring): plain role/content turns."""
    out: list[dict[str, str]] = []
    for m in messages:
        role, content = str(m.get("role")), str(m.get("content") or "")
        if role == "tool":
            block = f"<tool_response>\n{content}\n</tool_response>"
            if out and out[-1].get("_tool"):  # consecutive results: one user turn
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_tool": "1"})
            continue
        calls = [as_call(c) or {} for c in m.get("tool_calls") or []]
        blocks = [f"<tool_call>\n{json.dumps({'name': c.get('name'), 'arguments': c.get('arguments')})}\n"
                  "</tool_call>" for c in calls]
        out.append({"role": role, "content": "\n".join([content, *blocks] if content else blocks)})
    out = [{"role": m["role"], "content": m["content"]} for m in out]
    if schemas:
        tools = TOOLS_TEXT.format(tools="\n".join(json.dumps(s, ensure_ascii=False) for s in schemas))
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{tools}"}
        else:
            out.insert(0, {"role": "system", "content": tools})
    return out


def takes_tools(template: Any) -> bool:
    """Whether a chat template renders `tools` itself (it reads the variable, or is a named `tool_use` one)."""
    if isinstance(template, Mapping):
        return "tool_use" in template or any(takes_tools(t) for t in template.values())
    return isinstance(template, str) and "tools" in template


def render_chat(tokenizer: Any, messages: Sequence[Mapping[str, Any]],
                tools: Sequence[Mapping[str, Any]] | None = None) -> str:
    """The prompt text of the next assistant turn: `messages` and `tools` through the HF tokenizer's chat template
    (the model's own: on llama.cpp, the GGUF's template the checkpoint's tokenizer was saved with)."""
    import jinja2

    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise SlmexpError("multi-turn chat needs the model's chat template, and its tokenizer has none")
    schemas = tool_schemas(tools)
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": True}
    if takes_tools(template):
        return tokenizer.apply_chat_template(template_messages(messages), tools=schemas or None, **kwargs)
    plain = text_messages(messages, schemas)
    try:
        return tokenizer.apply_chat_template(plain, **kwargs)
    except jinja2.exceptions.TemplateError:  # a template that refuses a system turn: it leads the first user turn
        if not plain or plain[0]["role"] != "system" or len(plain) < 2:
            raise
        first = {"role": plain[1]["role"], "content": f"{plain[0]['content']}\n\n{plain[1]['content']}"}
        return tokenizer.apply_chat_template([first, *plain[2:]], **kwargs)


# --- one turn from a stream of text chunks --------------------------------------------------------------------------


def collect(chunks: Iterator[tuple[str, float]], t0: float, usage: Mapping[str, Any]) -> ChatTurn:
    """A `ChatTurn` from a local runtime's (text chunk, perf_counter time) stream started at `t0`; `usage` is
    filled by the stream when it ends (input_tokens, output_tokens, source). ttft_s: the first chunk's time."""
    parts: list[str] = []
    first: float | None = None
    for text, at in chunks:
        first = at if first is None else first
        parts.append(text)
    latency = time.perf_counter() - t0
    raw = "".join(parts)
    prose, calls = parse_tool_calls(raw)
    return ChatTurn(prose, calls, raw, usage.get("input_tokens"), usage.get("output_tokens"), latency,
                    None if first is None else first - t0, usage.get("source"))


def prefix_lm_chat(lm: Any, tokenizer: Any, messages: Sequence[Mapping[str, Any]], *,
                   tools: Sequence[Mapping[str, Any]] | None, constraint: Any, max_new_tokens: int,
                   stop: Sequence[str] | None) -> ChatTurn:
    """`chat` on a `PrefixLM` engine (llama.cpp): the rendered conversation tokenized as the accuracy pass does it,
    then the accuracy pass's greedy generation (`PrefixLM.timed_tokens`; a constraint through the engine's grammar
    path). The KV cache of the prefix this turn shares with the last request is reused, as a server's prompt cache
    is: a conversation's earlier turns are not evaluated again."""
    t0 = time.perf_counter()
    tokens = lm.tok_encode(render_chat(tokenizer, messages, tools))
    usage: dict[str, Any] = {}
    return collect(lm.timed_tokens(tokens, max_new_tokens, stop, constraint, usage), t0, usage)
