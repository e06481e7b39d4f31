"""A scripted OpenAI-compatible chat endpoint on 127.0.0.1 (non-streaming chat completions): the tests that drive a
real `runtime=openai` through multi-turn tool use give it a `reply(request) -> message` function.

Why not a mock of the openai client: the runtime's own HTTP client, request building and response parsing run as
they do against a real server; only the model's answers are scripted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict[str, Any]], dict[str, Any]]


class _Handler(BaseHTTPRequestHandler):
    server: ChatServer

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
        usage = self.server.usage(req)
        self._send({"id": "c1", "object": "chat.completion", "model": req["model"], "created": 0,
                    "choices": [{"index": 0, "finish_reason": "stop", "message": self.server.reply(req)}],
                    "usage": {**usage, "total_tokens": 0}})


class ChatServer(ThreadingHTTPServer):
    """Answers every chat completion with `reply(request)`; keeps each request (`requests`) for the test to read.
    `usage(request)` gives the token counts it reports (prompt tokens grow with the conversation)."""

    daemon_threads = True

    def __init__(self, reply: Reply, usage: Callable[[dict[str, Any]], dict[str, int]] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.reply = reply
        self.usage = usage or (lambda req: {"prompt_tokens": 100 + 20 * len(req["messages"]),
                                            "completion_tokens": 12})
        self.requests: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@contextmanager
def serving(reply: Reply, usage: Callable[[dict[str, Any]], dict[str, int]] | None = None) -> Iterator[ChatServer]:
    """A ChatServer running on its own thread for the `with` block."""
    srv = ChatServer(reply, usage)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
