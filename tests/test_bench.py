"""The speed stage times what was scored (issue 15, item 4): the timed requests use the accuracy pass's stop strings,
token budget and prompt rendering; usage is read right after an early stop; an abandoned stream stops generating.

Why each test exists: before this, timed requests carried no stop strings (latency, speed-up, $/1k requests and Wh
timed a longer generation than the one scored), a consumer that broke out of a stream read the previous request's
token counts, and a stream abandoned mid-way left the transformers worker decoding or the HTTP stream open.
Cases are hand-made: a scripted OpenAI-compatible server on 127.0.0.1 and the tiny random llama of conftest.
"""

from __future__ import annotations

import gc
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import compose

# --- the stop-string cutter every in-process runtime streams through ---


def test_stop_cut_never_emits_the_start_of_a_stop_string() -> None:
    from slmexp.runtimes._stop import StopCut

    cut = StopCut(["\n\n"])
    out = [cut.feed(c) for c in ['{"a": 1}', "\n", "\n", "tail"]]
    assert out == ['{"a": 1}', "", "", ""] and cut.hit  # the lone "\n" was held back, then proved a stop
    cut = StopCut(["\n\n"])
    assert [cut.feed(c) for c in ["x", "\n", "y"]] + [cut.flush()] == ["x", "", "\ny", ""] and not cut.hit
    cut = StopCut(["\n", "b\n"])  # lm-eval splits at each stop string in turn: "ab\nc" -> "ab" -> "ab"
    assert cut.feed("ab\nc") == "ab"


# --- benchmark() takes its settings from the accuracy pass ---


class _Recorder:
    """A runtime that records what each stream() call asked for and streams three words."""

    name, concurrent_requests, last_usage = "recorder", False, None

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, list[str] | None]] = []

    def uses_chat_template(self) -> bool:
        return True

    def stream(self, prompt: str, max_new_tokens: int, stop=None):
        self.calls.append((prompt, max_new_tokens, stop))
        for word in ("a", "b", "c"):
            yield word, time.perf_counter()
        self.last_usage = {"input_tokens": 5, "output_tokens": 3, "source": "words"}


def test_benchmark_uses_the_accuracy_pass_settings_and_records_them() -> None:
    from slmexp.bench import benchmark

    rt = _Recorder()
    generation = {"until": ["\n"], "max_gen_toks": 16, "chat_template": False, "prompt_suffix": "\nIntent:"}
    speed = benchmark(rt, ["p1", "p2", "p3"], max_new_tokens=64, warmup=1, generation=generation)
    assert rt.calls == [(p + "\nIntent:", 16, ["\n"]) for p in ("p1", "p2", "p3")]  # warm-up included
    assert speed["stop"] == ["\n"] and speed["max_new_tokens"] == 16
    assert speed["max_new_tokens_from"] == "accuracy pass (lm-eval max_gen_toks); eval.bench.max_new_tokens=64 not used"
    assert speed["prompt_suffix"] == "\nIntent:"
    assert "requests" not in speed  # no example ids given
    speed = benchmark(_Recorder(), ["p1", "p2", "p3"], max_new_tokens=8, warmup=1, ids=["a", "b", "c"])
    assert [(r["id"], r["output_tokens"]) for r in speed["requests"]] == [("b", 3), ("c", 3)]  # warm-up excluded
    speed = benchmark(_Recorder(), ["p"], max_new_tokens=8, warmup=0, generation=None)  # log-likelihood task
    assert speed["stop"] == [] and speed["max_new_tokens"] == 8
    assert speed["max_new_tokens_from"].startswith("eval.bench.max_new_tokens")


# --- the tiny model on runtime=transformers: the timed request is the scored one ---


@pytest.fixture(scope="module")
def tiny_rt(tiny_model_dir):
    from slmexp.runtimes.transformers import TransformersRuntime

    with TransformersRuntime(str(tiny_model_dir), device="cpu", batch_size=1) as rt:
        yield rt


def _accuracy_pass(rt, tiny_model_dir, tmp_path: Path, until: list[str], limit: int = 2):
    """evaluate() on the support-intent test split; returns (result, responses, the user turns it scored)."""
    from slmexp.evaluate import evaluate
    from slmexp.tasks import load_task, render_prompt

    cfg = compose([f"model.source.path={tiny_model_dir}", f"eval.limit={limit}", "runtime.batch_size=1",
                   "task.generation.max_new_tokens=24"])
    task = load_task(cfg.task, ["test"])
    task.cfg.generation.until = until
    result = evaluate(rt.lm_eval_model(), task, cfg.eval, tmp_path / "lm_eval", rt.uses_chat_template())
    responses = [json.loads(line)["response"] for line in result.samples_path.read_text().splitlines()]
    return result, responses, [render_prompt(task.cfg, row) for row in task.splits["test"][:limit]]


def test_a_stop_string_ends_the_timed_request_at_the_scored_text(tiny_rt, tiny_model_dir, tmp_path) -> None:
    from slmexp.bench import benchmark

    _, free, prompts = _accuracy_pass(tiny_rt, tiny_model_dir, tmp_path / "free", until=[])
    # two printable characters from the middle of what the model says unstopped (the random model also emits
    # bytes that form no character: a stop string made of those would only show at the end)
    stop = next((free[0][i:i + 2] for i in range(len(free[0]) // 2, len(free[0]) - 1)
                 if free[0][i:i + 2].isascii() and free[0][i:i + 2].isprintable() and free[0][i:i + 2].strip()), "")
    assert stop, f"need generated text to pick a stop string from, got {free[0]!r}"
    result, scored, _ = _accuracy_pass(tiny_rt, tiny_model_dir, tmp_path / "stopped", until=[stop])
    assert scored[0] == free[0].split(stop)[0] != free[0]  # the stop string did cut the scored generation
    assert result.generation["until"] == [stop] and result.generation["max_gen_toks"] == 24
    assert result.accuracy_pass["n"] == 2 and result.accuracy_pass["latency_ms"]["p50"] > 0  # timed at batch 1
    for prompt, text in zip(prompts, scored, strict=True):
        timed = "".join(chunk for chunk, _t in tiny_rt.stream(prompt, 24, stop=[stop]))
        assert timed == text
    full = len(list(tiny_rt.stream(prompts[0], 24)))
    chunks = list(tiny_rt.stream(prompts[0], 24, stop=[stop]))
    assert len(chunks) == tiny_rt.last_usage["output_tokens"] < full  # decoding ended at the stop string
    speed = benchmark(tiny_rt, prompts, max_new_tokens=24, warmup=0, generation=result.generation)
    assert speed["stop"] == [stop] and speed["output_tokens"]["total"] < 2 * 24


def test_usage_right_after_an_early_stop_is_this_requests(tiny_rt) -> None:
    long_prompt, short_prompt = "where is my order " * 12, "cancel it"
    list(tiny_rt.stream(long_prompt, 6))
    previous = dict(tiny_rt.last_usage)
    for _chunk, _t in tiny_rt.stream(short_prompt, 6):  # a consumer that stops at its own stop rule, as
        break  # slmexp.teacher.answer does
    usage = tiny_rt.last_usage
    assert usage != previous and usage["output_tokens"] == 1
    assert usage["input_tokens"] < previous["input_tokens"]


def test_an_abandoned_stream_joins_the_generation_thread(tiny_rt) -> None:
    before = set(threading.enumerate())
    stream = tiny_rt.stream("where is my order", 400)  # seconds of decoding if left running
    next(stream)
    stream.close()
    running = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert running == [], f"generation still running after the consumer closed the stream: {running}"


# --- runtime=openai against a scripted OpenAI-compatible server ---

REPLY = ["order", "_status", "\n", "The", " customer", " asks", " where", " the", " parcel", " is", "."] * 4


class _Scripted(BaseHTTPRequestHandler):
    """Answers every chat request with REPLY, cut at the request's `stop` strings and `max_tokens` as servers do;
    streamed one piece per `server.delay_s`. Records request bodies and whether each stream ran to its end."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _json(self, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._json({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv = self.server
        srv.bodies.append(body)
        pieces, text = [], ""
        for piece in REPLY[: body.get("max_tokens") or len(REPLY)]:
            text += piece
            if any(s in text for s in body.get("stop") or []):
                break
            pieces.append(piece)
        usage = {"prompt_tokens": 11, "completion_tokens": len(pieces), "total_tokens": 11 + len(pieces)}
        if not body.get("stream"):
            self._json({"id": "x", "object": "chat.completion", "created": 0, "model": "scripted", "usage": usage,
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "".join(pieces)}}]})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()

        def event(delta: dict, finish: str | None = None, use: dict | None = None) -> bytes:
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "scripted",
                     "choices": [] if use else [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if use:
                chunk["usage"] = use
            return f"data: {json.dumps(chunk)}\n\n".encode()

        try:
            for piece in pieces:
                self.wfile.write(event({"content": piece}))
                self.wfile.flush()
                time.sleep(srv.delay_s)
            self.wfile.write(event({}, "stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                self.wfile.write(event({}, use=usage))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            srv.streams.append("completed")
        except (BrokenPipeError, ConnectionResetError):
            srv.streams.append("closed by client")


@pytest.fixture
def scripted():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    srv.bodies, srv.streams, srv.delay_s = [], [], 0.0
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _openai_rt(srv):
    from slmexp.runtimes.openai import OpenAIRuntime

    return OpenAIRuntime(None, base_url=f"http://127.0.0.1:{srv.server_address[1]}/v1", model="scripted",
                         max_retries=0, max_gen_toks=16)


def test_openai_timed_requests_send_the_accuracy_pass_stop_and_budget(scripted, tmp_path) -> None:
    from slmexp.bench import benchmark
    from slmexp.evaluate import evaluate
    from slmexp.tasks import load_task, render_prompt

    cfg = compose(["runtime=openai", "model.name=scripted", "eval.limit=2"])
    task = load_task(cfg.task, ["test"])
    with _openai_rt(scripted) as rt:
        result = evaluate(rt.lm_eval_model(), task, cfg.eval, tmp_path / "lm_eval", rt.uses_chat_template())
        scored = [json.loads(line)["response"] for line in result.samples_path.read_text().splitlines()]
        assert scored == ["order_status", "order_status"]
        assert result.accuracy_pass["n"] == 2 and result.accuracy_pass["concurrency"] == 1
        accuracy_bodies = list(scripted.bodies)
        prompts = [render_prompt(task.cfg, row) for row in task.splits["test"][:3]]
        speed = benchmark(rt, prompts, max_new_tokens=99, warmup=1, generation=result.generation)
        timed = "".join(c for c, _t in rt.stream(prompts[0], 16, stop=result.generation["until"]))
    assert timed == scored[0]
    timed_bodies = scripted.bodies[len(accuracy_bodies):]
    assert {(b["max_tokens"], tuple(b["stop"])) for b in accuracy_bodies} == {(16, ("\n",))}
    assert {(b["max_tokens"], tuple(b["stop"])) for b in timed_bodies} == {(16, ("\n",))}
    assert speed["stop"] == ["\n"] and speed["output_tokens"]["total"] == 2 * 2  # "order", "_status" each


def test_openai_abandoned_stream_closes_the_connection_and_keeps_its_usage(scripted) -> None:
    """Closing the stream must close the HTTP response at once, not when the garbage collector gets to the SDK's
    stream object (a reference cycle): gc is paused so that only an explicit close can end the request."""
    scripted.delay_s = 0.05  # 40 pieces: 2 s if left running
    with _openai_rt(scripted) as rt:
        list(rt.stream("first", 3))
        previous = rt.last_usage
        assert previous == {"input_tokens": 11, "output_tokens": 3, "source": "server usage"}
        gc.disable()
        try:
            stream = rt.stream("second", 40)
            next(stream)
            stream.close()
            assert rt.last_usage != previous  # this request's (no server usage arrived: counted from chunks)
            deadline = time.time() + 1.5
            while not scripted.streams[1:] and time.time() < deadline:
                time.sleep(0.02)
        finally:
            gc.enable()
    assert scripted.streams == ["completed", "closed by client"]
