"""decoding=constrained on runtime=openai, against a scripted OpenAI-compatible server on 127.0.0.1.

The server plays a constrained endpoint: it answers the RIGHT answer in the structured wire form when (and only
when) the request asks for it: `response_format` json_schema (a `{"label": ...}` object for classification, the
JSON object for extraction) or `tools` + `tool_choice: "required"` (a `tool_calls` reply, streamed in pieces on the
speed stage). A request without the constraint gets the prose a small model writes. So the job scores 1.0 only if
every request, in the accuracy pass and in the timed requests, carried its constraint, and the runtime turned each
structured reply back into the task's answer format.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from slmexp.config import DATA_DIR
from tests.conftest import compose

pytest.importorskip("openai")

DATA = {"support-intent": ("support_intent", "label"), "invoice-extraction": ("invoice_extraction", "target"),
        "tool-call": ("tool_call", "target")}


def _golds() -> dict[str, object]:
    out = {}
    for folder, field in DATA.values():
        for line in (DATA_DIR / folder / "test.jsonl").read_text().splitlines():
            row = json.loads(line)
            out[row["text"]] = row[field]
    return out


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, obj: dict) -> None:
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.server.requests.append(req)
        message = self.server.answer(req)
        if not req.get("stream"):
            self._send({"id": "c1", "object": "chat.completion", "model": "scripted", "created": 0,
                        "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        base = {"id": "c1", "object": "chat.completion.chunk", "model": "scripted", "created": 0}

        def send(delta: dict) -> None:
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())

        if message.get("tool_calls"):
            fn = message["tool_calls"][0]["function"]
            send({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                  "function": {"name": fn["name"], "arguments": ""}}]})
            for i in range(0, len(fn["arguments"]), 5):
                send({"tool_calls": [{"index": 0, "function": {"arguments": fn["arguments"][i:i + 5]}}]})
        else:
            for i in range(0, len(message["content"]), 4):
                send({"content": message["content"][i:i + 4]})
        usage = {**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
        self.wfile.write(f"data: {json.dumps(usage)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        super().__init__(("127.0.0.1", port), _Handler)
        self.golds = _golds()
        self.requests: list[dict] = []

    def answer(self, req: dict) -> dict:
        content = "\n".join(str(m.get("content", "")) for m in req.get("messages") or [])
        hits = [t for t in self.golds if t in content]
        gold = self.golds[max(hits, key=len)] if hits else None
        fmt = (req.get("response_format") or {}).get("json_schema") or {}
        if req.get("tools") and req.get("tool_choice") == "required" and isinstance(gold, dict):
            offered = {t["function"]["name"] for t in req["tools"]}
            assert gold["name"] in offered
            return {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": gold["name"], "arguments": json.dumps(gold["arguments"])}}]}
        if fmt.get("name") == "label" and isinstance(gold, str):
            assert gold in fmt["schema"]["properties"]["label"]["enum"]
            return {"role": "assistant", "content": json.dumps({"label": gold})}
        if fmt.get("schema") and isinstance(gold, dict):
            return {"role": "assistant", "content": json.dumps(gold)}
        return {"role": "assistant", "content": "I'm sorry for the confusion, could you tell me more?"}


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.slow  # a whole job each (~15 s on the shared reference machine)
@pytest.mark.parametrize("task_name, metric", [("support-intent", "valid_label"),
                                               ("invoice-extraction", "json_valid"), ("tool-call", "valid_call")])
@pytest.mark.parametrize("decoding", ["constrained", "free"])
def test_constrained_endpoint_requests_and_answers(server, tmp_path, task_name, metric, decoding) -> None:
    from slmexp.pipeline import run_job

    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    cfg = compose([f"task={task_name}", f"decoding={decoding}", "runtime=openai", f"runtime.base_url={base}",
                   "runtime.model=scripted", "model.source.hub=null", "model.source.wheel=null", "eval.limit=4",
                   "eval.bench.n=2", "eval.bench.warmup=0", "eval.bench.concurrency=1",
                   f"paths.output_dir={tmp_path}/o", f"paths.cache_dir={tmp_path}/c"])
    rec = run_job(cfg, tmp_path / "run")
    values = rec["metrics"]["values"]
    asked = [r for r in server.requests if r.get("messages")]
    assert len(asked) == 4 + 2 * 3 and sum(bool(r.get("stream")) for r in asked) == 2 * 3  # timed: x 3 passes
    if decoding == "free":  # no structured request fields, and the prose the model writes is not valid
        assert not any("response_format" in r or "tools" in r for r in asked)
        assert values[metric] == 0.0
        return
    assert rec["metrics"]["decoding"] == "constrained"
    assert values[metric] == 1.0 and values["exact_match"] == 1.0, values
    for r in asked:  # every request, scored and timed, carried the constraint in the standard form
        if task_name == "tool-call":
            assert r["tool_choice"] == "required" and r["tools"][0]["type"] == "function"
        else:
            assert r["response_format"]["type"] == "json_schema" and r["response_format"]["json_schema"]["strict"]
    assert rec["speed"]["n_requests"] == 2 * 3 and rec["speed"]["output_tokens"]["total"] > 0  # x 3 passes
