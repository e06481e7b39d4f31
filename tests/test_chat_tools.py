"""The runtimes' multi-turn chat with tools (`chat`, the Runtime Protocol's optional capability `chat_tools`): a
two-turn exchange (user -> the model calls a tool -> the tool's result -> the model answers) on a scripted
OpenAI-compatible server, the tiny transformers llama and the real SmolLM2-135M GGUF on llama.cpp; the runtimes
without it refused in one line; the tool-call text parser and the conversation rendering (slmexp/runtimes/_chat.py).

Why: an agent loop must run unchanged on any runtime that can chat, so what reaches the model (tools, earlier calls,
tool results) and what comes back (calls with ids, token counts, timings) is checked on each, with real engines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from jsonschema import Draft202012Validator

from slmexp.decoding.schema import tool_call_schema
from slmexp.decoding.spec import Constraint
from slmexp.errors import ConfigError
from slmexp.runtimes import ChatTurn, capabilities, chat, require_chat, runtime_class, score_labels
from slmexp.runtimes._chat import parse_tool_calls, render_chat, template_messages
from slmexp.runtimes._openai_chat import endpoint_messages
from tests.chat_server import ChatServer, serving
from tests.conftest import compose

TOOLS = [
    {"name": "get_weather", "description": "Current weather in a city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    {"name": "get_time", "description": "Current local time in a city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
]
QUESTION = [{"role": "user", "content": "What is the weather in Oslo?"}]
RESULT = json.dumps({"temp_c": 12, "sky": "cloudy"})


def _call_constraint(max_string: int = 8) -> Constraint:
    """A turn that must be a call of one offered tool (the tool_call task's constraint, decoding.build)."""
    return Constraint("tool_call", schema=tool_call_schema(TOOLS, max_string), tools=tuple(TOOLS))


def _assert_offered_call(turn: ChatTurn) -> None:
    assert len(turn.tool_calls) == 1, turn
    call = turn.tool_calls[0]
    assert call["id"].startswith("call_") and call["name"] in {t["name"] for t in TOOLS}
    params = next(t["parameters"] for t in TOOLS if t["name"] == call["name"])
    assert list(Draft202012Validator(params).iter_errors(call["arguments"])) == [], call


def _second_turn(first: ChatTurn) -> list[dict]:
    """The conversation after the first turn's call: its assistant message and the tool's result."""
    return [*QUESTION, first.message(), {"role": "tool", "tool_call_id": first.tool_calls[0]["id"],
                                         "name": first.tool_calls[0]["name"], "content": RESULT}]


# --- the tool-call text parser -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "prose", "calls"), [
    ('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>',
     "Let me check.", [("get_weather", {"city": "Oslo"})]),
    ('<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>\n'
     '<tool_call>{"name": "get_time", "arguments": {"city": "Oslo"}}</tool_call>',
     "", [("get_weather", {"city": "Oslo"}), ("get_time", {"city": "Oslo"})]),
    ('<tool_call>\n{"name": "get_time", "arguments": {"city": "Rome"}}', "", [("get_time", {"city": "Rome"})]),
    ('{"name": "get_weather", "arguments": {"city": "Oslo"}}', "", [("get_weather", {"city": "Oslo"})]),
    ('Sure:\n```json\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```', "Sure:",
     [("get_weather", {"city": "Oslo"})]),
    ('{"type": "function", "function": {"name": "get_time", "arguments": "{\\"city\\": \\"Oslo\\"}"}}', "",
     [("get_time", {"city": "Oslo"})]),
    ('{"name": "get_time", "parameters": {"city": "Oslo"}}', "", [("get_time", {"city": "Oslo"})]),
    ('[{"name": "get_weather", "arguments": {"city": "A"}}, {"name": "get_time", "arguments": {}}]', "",
     [("get_weather", {"city": "A"}), ("get_time", {})]),
    ('{"tool_calls": [{"id": "c9", "function": {"name": "get_time", "arguments": "{}"}}]}', "", [("get_time", {})]),
    ("It is sunny in Oslo.", "It is sunny in Oslo.", []),
    ('{"name": "Ada Lovelace", "total": 3}', '{"name": "Ada Lovelace", "total": 3}', []),  # an answer, not a call
    ("<tool_call>not json</tool_call>", "<tool_call>not json</tool_call>", []),
])
def test_tool_calls_are_parsed_from_the_formats_models_write(text: str, prose: str, calls: list) -> None:
    got_prose, got = parse_tool_calls(text)
    assert got_prose == prose
    assert [(c["name"], c["arguments"]) for c in got] == calls
    assert all(c["id"].startswith("call_") or c["id"] == "c9" for c in got)
    assert len({c["id"] for c in got}) == len(got)


def test_a_turn_becomes_the_next_requests_assistant_message_in_either_form() -> None:
    turn = ChatTurn("", [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}])
    msg = turn.message()
    assert msg == {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
                   "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}
    wire = endpoint_messages([msg])[0]["tool_calls"][0]["function"]
    assert wire["arguments"] == '{"city": "Oslo"}'  # endpoints: a JSON string
    local = template_messages([msg])[0]
    assert local["content"] == "" and local["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}


# --- rendering a conversation with the model's chat template ------------------------------------------------------

QWEN_LIKE = (  # the parts of Qwen2.5's template that read tools, calls and tool results
    "{%- if tools %}<|im_start|>system\n# Tools\n<tools>{% for t in tools %}\n{{ t | tojson }}{% endfor %}\n</tools>"
    "<|im_end|>\n{%- endif %}{%- for m in messages %}{%- if m.role == 'assistant' and m.tool_calls %}"
    "<|im_start|>assistant{% for c in m.tool_calls %}\n<tool_call>\n{\"name\": \"{{ c.function.name }}\", "
    "\"arguments\": {{ c.function.arguments | tojson }}}\n</tool_call>{% endfor %}<|im_end|>\n"
    "{%- elif m.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m.content }}\n</tool_response><|im_end|>\n"
    "{%- else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_a_template_without_tool_support_gets_tools_calls_and_results_as_text(tokenizer) -> None:
    first = ChatTurn("", [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}])
    convo = [{"role": "system", "content": "Be brief."}, *QUESTION, first.message(),
             {"role": "tool", "tool_call_id": "call_1", "content": RESULT}]
    text = render_chat(tokenizer, convo, TOOLS)
    assert text.startswith("<|im_start|>system\nBe brief.\n\nYou may call one or more functions")
    assert '{"type": "function", "function": {"name": "get_weather"' in text  # the tools, as JSON text
    assert ('<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n'
            "</tool_call><|im_end|>") in text
    assert f"<|im_start|>user\n<tool_response>\n{RESULT}\n</tool_response><|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_a_template_with_tool_support_renders_them_itself(tokenizer) -> None:
    tok = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    tok.chat_template = QWEN_LIKE
    first = ChatTurn("", [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}])
    text = render_chat(tok, _second_turn(first), TOOLS)
    assert text.startswith('<|im_start|>system\n# Tools\n<tools>{"type": "function"') and '"get_time"' in text
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>' in text
    assert "You may call" not in text  # not our text fallback
    assert f"<tool_response>\n{RESULT}\n</tool_response>" in text


# --- (a) an OpenAI-compatible endpoint ----------------------------------------------------------------------------


def _weather(req: dict) -> dict:
    """A model that calls get_weather when a user asks, and answers from the tool's result once it has one.
    `runtime.model=text-calls` writes the call in the content instead (a server without a tool parser)."""
    last = req["messages"][-1]
    if last["role"] == "tool":
        return {"role": "assistant", "content": f"It is {json.loads(last['content'])['sky']} in Oslo."}
    call = {"name": "get_weather", "arguments": json.dumps({"city": "Oslo"})}
    if req["model"] == "text-calls":
        return {"role": "assistant", "content": f"<tool_call>{json.dumps(call)}</tool_call>"}
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": "call_abc", "type": "function", "function": call}]}


@pytest.fixture
def server() -> Iterator[ChatServer]:
    pytest.importorskip("openai")
    with serving(_weather, lambda req: {"prompt_tokens": 40 + 10 * len(req["messages"]),
                                        "completion_tokens": 7}) as srv:
        yield srv


def _endpoint(srv: ChatServer, model: str = "scripted"):
    from slmexp.runtimes.openai import OpenAIRuntime

    return OpenAIRuntime(base_url=srv.base_url, model=model)


def test_two_turns_with_a_tool_on_an_endpoint(server) -> None:
    with _endpoint(server) as rt:
        first = chat(rt, QUESTION, tools=TOOLS, max_new_tokens=32)
        assert first.tool_calls == [{"id": "call_abc", "name": "get_weather", "arguments": {"city": "Oslo"}}]
        assert (first.input_tokens, first.output_tokens, first.usage_source) == (50, 7, "server usage")
        assert first.latency_s > 0 and first.ttft_s is None
        final = chat(rt, _second_turn(first), tools=TOOLS, max_new_tokens=32)
    assert final.text == "It is cloudy in Oslo." and final.tool_calls == []
    sent, answered = server.requests
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "get_time"]
    assert sent["tools"][0] == {"type": "function", "function": TOOLS[0]} and sent["max_tokens"] == 32
    assert answered["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}
    assert answered["messages"][2] == {"role": "tool", "tool_call_id": "call_abc", "name": "get_weather",
                                       "content": RESULT}


def test_an_endpoint_turn_takes_its_constraint_and_reads_calls_left_in_the_text(server) -> None:
    with _endpoint(server, "text-calls") as rt:
        turn = chat(rt, QUESTION, tools=TOOLS, constraint=_call_constraint(), max_new_tokens=32)
    _assert_offered_call(turn)
    assert turn.text == "" and turn.raw.startswith("<tool_call>")
    assert server.requests[0]["tool_choice"] == "required"  # the structured-output path's tool constraint


# --- (b) transformers: the tiny random llama ----------------------------------------------------------------------


def test_two_turns_with_a_tool_on_transformers(tiny_model_dir) -> None:
    """A random model writes no valid call of its own: under the tool-call constraint it must (llguidance)."""
    pytest.importorskip("llguidance")
    from slmexp.runtimes.transformers import TransformersRuntime

    with TransformersRuntime(str(tiny_model_dir), device="cpu", batch_size=1) as rt:
        prompt = render_chat(rt.tokenizer, QUESTION, TOOLS)
        assert '"name": "get_weather"' in prompt and '"name": "get_time"' in prompt  # the tools reached it
        free = chat(rt, QUESTION, tools=TOOLS, max_new_tokens=6)
        n_prompt = len(rt.lm_eval_model().tok_batch_encode([prompt])[0][0])
        assert free.input_tokens == n_prompt and 0 < free.output_tokens <= 6 and free.latency_s > 0
        assert free.ttft_s is not None and 0 < free.ttft_s <= free.latency_s
        first = chat(rt, QUESTION, tools=TOOLS, constraint=_call_constraint(), max_new_tokens=96)
        _assert_offered_call(first)
        assert first.text == "" and json.loads(first.raw)["name"] == first.tool_calls[0]["name"]
        final = chat(rt, _second_turn(first), tools=TOOLS, max_new_tokens=6)
    assert isinstance(final, ChatTurn) and final.input_tokens > n_prompt and 0 < final.output_tokens <= 6
    assert rt.last_usage is None  # chat turns are not the speed stage's stream()


# --- (c) llama.cpp: the real SmolLM2-135M GGUF ----------------------------------------------------------------------


@pytest.mark.slow  # ~6 s on the shared 2 cores: SmolLM2 loads, two turns of ~200-280 prompt tokens, one thread
def test_two_turns_with_a_tool_on_llamacpp_with_smollm2() -> None:
    pytest.importorskip("llama_cpp")
    from slmexp import models
    from slmexp.runtimes.llamacpp import LlamaCppRuntime

    cfg = compose([])
    resolved = models.resolve(cfg.model, cfg.paths.cache_dir, weights=False)
    with LlamaCppRuntime(str(resolved.path), artifact_path=str(resolved.gguf_path), n_ctx=2048, n_threads=1) as rt:
        # the prompt is rendered with the GGUF's own chat template (its tokenizer was saved with it)
        assert rt.tokenizer.chat_template == rt.llm.metadata["tokenizer.chat_template"]
        first = chat(rt, QUESTION, tools=TOOLS, constraint=_call_constraint(32), max_new_tokens=64)
        _assert_offered_call(first)
        assert first.input_tokens > 100 and first.output_tokens > 0 and first.ttft_s is not None
        final = chat(rt, _second_turn(first), tools=TOOLS, max_new_tokens=16)
    assert isinstance(final, ChatTurn) and final.raw and final.input_tokens > first.input_tokens
    assert 0 < final.output_tokens <= 16


# --- (d) the runtimes without it refuse in one line; the capabilities the classes declare ------------------------


@pytest.mark.parametrize("name", ["ortgenai", "vllm"])
def test_runtimes_without_chat_refuse_in_one_line(name: str) -> None:
    cls = runtime_class(compose([f"runtime={name}"]).runtime)
    with pytest.raises(ConfigError, match=rf"^runtime\.name: runtime={name} cannot run multi-turn chat with tools"
                       ) as e:
        require_chat(cls, name=name)
    assert "\n" not in str(e.value)
    built = object.__new__(cls)  # a runtime of the class, as the agent loop would hold it (nothing loaded)
    built.name = name
    with pytest.raises(ConfigError, match=rf"^runtime\.name: runtime={name} cannot run multi-turn chat"):
        chat(built, QUESTION, tools=TOOLS)


def test_chat_capable_classes_declare_it_and_chat_endpoints_refuse_label_scoring() -> None:
    import inspect

    for name, can in {"transformers": True, "llamacpp": True, "openai": True, "ollama": True, "ortgenai": False,
                      "vllm": False}.items():
        cls = runtime_class(compose([f"runtime={name}"]).runtime)
        assert capabilities(cls).chat_tools is can, name
        if can:
            params = inspect.signature(cls.chat).parameters
            assert [p for p in params if params[p].kind is params[p].KEYWORD_ONLY] == [
                "tools", "constraint", "max_new_tokens", "stop"]
        if capabilities(cls).scores_choices:
            assert callable(cls.score_labels), name
    endpoint = object.__new__(runtime_class(compose(["runtime=openai"]).runtime))
    endpoint.name = "openai"
    with pytest.raises(ConfigError, match=r"^runtime\.name: runtime=openai cannot score labels"):
        score_labels(endpoint, "ctx", ["a", "b"])
