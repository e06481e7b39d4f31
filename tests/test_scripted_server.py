"""End to end through the real `slmexp` CLI (runtime=openai) against a scripted OpenAI-compatible server on
127.0.0.1 that always answers the RIGHT label, wrapped in the formats and spellings real models use.

Why: a model that is always right must score exact_match 1.0 however it dresses the label (`**Intent:** x`,
`- x`, `1. x`, `x: description`, `The intent is x.`), on the shipped task and on a user JSONL task whose labels
have spaces and capitals (`Bill dispute`). The server reads the gold from the task's own JSONL by finding the
example's text in the request, so the whole path is real: prompt rendering, lm-eval's chat-completions client,
the stop strings, lm-eval's `process_results`, the run record.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from slmexp.config import DATA_DIR
from tests.test_cli_smollm2 import ENV, run_dirs

pytest.importorskip("openai")

# model name (runtime.model) -> how the scripted model writes the label
FORMATS: dict[str, Callable[[str], str]] = {
    "plain": lambda x: x,
    "bold-prefix": lambda x: f"**Intent:** {x}",
    "bullet": lambda x: f"- {x}",
    "numbered": lambda x: f"1. {x}",
    "described": lambda x: f"{x}: that is what the customer asks about",
    "sentence": lambda x: f"The intent is {x}.",
}
# label spellings, chosen per example (not for `plain`, which must be strict too)
SPELLINGS: list[Callable[[str], str]] = [lambda x: x, lambda x: x.lower().replace("_", " "),
                                         lambda x: x.title().replace(" ", "-").replace("_", "-")]

BILL_ROWS = [(f"b{i}", text, label) for i, (text, label) in enumerate([
    ("I was charged twice for my March bill", "Bill dispute"),
    ("My SIM card stopped working after I dropped my phone", "SIM replacement"),
    ("Why is there a 40 euro fee for data used in Spain?", "Roaming charges"),
    ("I want to end my contract at the end of the month", "Cancel contract"),
    ("The invoice shows a line I never ordered", "bill dispute"),  # the data spells the gold in lower case
    ("Please send a new nano SIM to my address", "SIM replacement"),
    ("Calls from France cost me a fortune last week", "Roaming charges"),
    ("How do I terminate my plan?", "Cancel contract"),
])]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _golds(paths: list[Path], text_field: str = "text", label_field: str = "label") -> dict[str, str]:
    out = {}
    for path in paths:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            out[row[text_field]] = row[label_field]
    return out


class _Handler(BaseHTTPRequestHandler):
    """/v1/models and /v1/chat/completions (JSON and server-sent events), answering from `server.golds`."""

    server: _Server

    def log_message(self, *args: object) -> None:  # keep pytest's output clean
        pass

    def _json(self, obj: dict, status: int = 200) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json({"object": "list", "data": [{"id": m, "object": "model"} for m in FORMATS]})
        else:
            self._json({"error": "not found"}, 404)

    def do_POST(self) -> None:
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json({"error": "not found"}, 404)
            return
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        text = self.server.answer(req)
        if req.get("stream"):
            self._stream(req, text)
        else:
            self._json({"id": "c1", "object": "chat.completion", "model": req.get("model"), "created": 0,
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": text}}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}})

    def _stream(self, req: dict, text: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        base = {"id": "c1", "object": "chat.completion.chunk", "model": req.get("model"), "created": 0}
        for piece in [text[i:i + 4] for i in range(0, len(text), 4)]:
            chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        end = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self.wfile.write(f"data: {json.dumps(end)}\n\n".encode())
        if (req.get("stream_options") or {}).get("include_usage"):
            usage = {**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 3,
                                                      "total_tokens": 13}}
            self.wfile.write(f"data: {json.dumps(usage)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, golds: dict[str, str]) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.golds = golds
        self.unmatched: list[str] = []

    def answer(self, req: dict) -> str:
        """The right label for the example whose text the request holds (the longest match), in the format the
        requested model name picks, cut at the request's stop strings as a real server does."""
        content = "\n".join(str(m.get("content", "")) for m in req.get("messages") or [])
        hits = [t for t in self.golds if t in content]
        if not hits:
            self.unmatched.append(content[-200:])
            return "I do not know"
        text = max(hits, key=len)
        fmt = str(req.get("model"))
        label = self.golds[text] if fmt == "plain" else SPELLINGS[len(text) % len(SPELLINGS)](self.golds[text])
        out = FORMATS[fmt](label)
        for stop in req.get("stop") or []:
            out = out.split(stop)[0]
        return out


@pytest.fixture
def bills_task(tmp_path) -> Path:
    """A user config dir with a classification task over hand-written JSONL (labels with spaces and capitals)."""
    data = tmp_path / "bills.jsonl"
    data.write_text("".join(json.dumps({"id": i, "text": t, "label": lab}) + "\n" for i, t, lab in BILL_ROWS))
    conf = tmp_path / "my_conf" / "task"
    conf.mkdir(parents=True)
    (conf / "bills.yaml").write_text(textwrap.dedent(f"""\
        defaults:
          - jsonl
          - _self_
        name: bills
        kind: classification
        data:
          test: {data}
        fields:
          id: id
          text: text
          label: label
        labels: ["Bill dispute", "SIM replacement", "Roaming charges", "Cancel contract"]
        prompt: |-
          Which category fits this message? {{% for l in labels %}}{{{{ l }}}}; {{% endfor %}}
          Message: {{{{ text }}}}
        answer_prefix: "Category:"
        generation:
          max_new_tokens: 16
          until: ["\\n"]
        primary_metric: exact_match
        """))
    return conf.parent


@pytest.fixture
def server(bills_task) -> Iterator[tuple[str, _Server]]:
    golds = _golds([DATA_DIR / "support_intent" / "test.jsonl", bills_task.parent / "bills.jsonl"])
    srv = _Server(_free_port(), golds)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1", srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.slow
def test_always_right_model_scores_one_in_every_format_and_spelling(server, bills_task, tmp_path) -> None:
    base, srv = server
    out = subprocess.run(
        [sys.executable, "-m", "slmexp", "-m", "--config-dir", str(bills_task), "task=support-intent,bills",
         f"runtime.model={','.join(FORMATS)}", "runtime=openai", f"runtime.base_url={base}",
         "model.name=scripted", "model.source.hub=null", "model.source.wheel=null", "eval.limit=10",
         "eval.bench.n=0", f"paths.output_dir={tmp_path}/o", f"paths.cache_dir={tmp_path}/c"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    assert not srv.unmatched, srv.unmatched[:3]  # every request was one of the tasks' examples
    got, want = {}, {}
    for run in run_dirs(tmp_path / "o"):
        rec = json.loads((run / "run.json").read_text())
        overrides = dict(o.split("=", 1) for o in yaml.safe_load((run / ".hydra/overrides.yaml").read_text()))
        key = (overrides["task"], overrides["runtime.model"])
        if rec["run"]["status"] != "finished":
            got[key] = rec["run"].get("error")
            continue
        values = rec["metrics"]["values"]
        got[key] = (rec["metrics"]["n_examples"], values.get("exact_match"), values.get("strict_match"),
                    values.get("valid_label"))
    for task in ("support-intent", "bills"):
        for fmt in FORMATS:  # (n, exact_match, strict_match: the raw first line is the label, valid_label)
            want[(task, fmt)] = (10 if task == "support-intent" else len(BILL_ROWS), 1.0,
                                 1.0 if fmt == "plain" else 0.0, 1.0)
    assert got == want
