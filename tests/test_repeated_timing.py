"""Repeated and paired timing (issue 32, Build 3): r shuffled passes of the timed requests with their spread in the
record, a planted slow pass flagged, and alternating A/B timing that recovers a known latency ratio under drift.

Why each test exists: a speed-up CI from one pass covered only that pass, and two arms timed at two moments carried
the machine's drift into their ratio (the demo's latencies moved 10-30% between runs). The endpoints are scripted
OpenAI-compatible servers on 127.0.0.1 that sleep a known time before answering, reached through the real
`runtime=openai` client, so the whole timing path (streaming, stop strings, the pass loop) is real; sleeps are short
(tens of ms) to keep each test to a few seconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import get_type_hints

import pytest

from tests.conftest import compose

pytest.importorskip("openai")


class _Sleepy(BaseHTTPRequestHandler):
    """Answers every chat request with "order_status" after sleeping `server.delay_s(k)` seconds, k = the server's
    0-based request count; streamed in two pieces with a usage chunk, or as one JSON answer."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _send(self, body: bytes, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(json.dumps({"object": "list", "data": [{"id": "sleepy", "object": "model"}]}).encode(),
                   "application/json")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv: _Server = self.server  # type: ignore[assignment]
        with srv.lock:
            k = srv.served
            srv.served += 1
        time.sleep(srv.delay_s(k))
        usage = {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}
        base = {"id": "x", "created": 0, "model": "sleepy"}
        if not body.get("stream"):
            self._send(json.dumps({**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "order_status"}}]}
            ).encode(), "application/json")
            return
        events = [{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
                  for p in ("order", "_status")]
        events += [{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, {"choices": [], "usage": usage}]
        data = "".join(f"data: {json.dumps({**base, 'object': 'chat.completion.chunk', **e})}\n\n" for e in events)
        self._send((data + "data: [DONE]\n\n").encode(), "text/event-stream")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, delay_s: Callable[[int], float]) -> None:
        super().__init__(("127.0.0.1", 0), _Sleepy)
        self.delay_s, self.served, self.lock = delay_s, 0, threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[int], float]], _Server]]:
    """Start scripted servers with the given delay functions; all are stopped at the end."""
    started: list[_Server] = []

    def start(delay_s: Callable[[int], float]) -> _Server:
        srv = _Server(delay_s)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.shutdown()
        srv.server_close()


def _runtime(srv: _Server):
    from slmexp.runtimes.openai import OpenAIRuntime

    return OpenAIRuntime(None, base_url=srv.base_url, model="sleepy", max_retries=0, max_gen_toks=8)


PROMPTS = [f"Where is my parcel number {i}?" for i in range(5)]  # 1 warm-up + 4 timed
IDS = [f"si-{i}" for i in range(5)]


def test_passes_are_shuffled_repeats_with_their_spread_in_the_record(serve) -> None:
    from slmexp.bench import benchmark
    from slmexp.record_schema import errors
    from slmexp.record_types.measure import OverPasses, Passes, PassFigures, SpeedBlock, TimedRequest
    from slmexp.timing_passes import pass_orders

    srv = serve(lambda k: 0.03)
    with _runtime(srv) as rt:
        speed = benchmark(rt, PROMPTS, max_new_tokens=8, warmup=1, ids=IDS, passes=3, seed=7, max_pass_spread=0.5)
    assert srv.served == 1 + 3 * 4  # the warm-up once, before pass 1; then every timed prompt once per pass
    passes = speed["passes"]
    assert passes["n"] == 3 and passes["seed"] == 7 and passes["order"] == "shuffled per pass"
    assert [p["pass_number"] for p in passes["per_pass"]] == [1, 2, 3]
    assert all(p["n_requests"] == 4 and 30 <= p["latency_ms"]["p50"] < 200 for p in passes["per_pass"])
    ci = passes["latency_p50_ms"]
    assert ci["n"] == 3 and 0 < ci["ci95_low"] <= ci["geomean"] <= ci["ci95_high"] and "2 df" in ci["method"]
    assert passes["spread"] is not None and passes["spread"] <= 0.5 and not passes["unstable"] and not speed["unstable"]
    # every id once per pass, each pass in the seeded shuffled order (an order seen by the report: pass_number)
    assert speed["n_requests"] == 12 and Counter(r["id"] for r in speed["requests"]) == Counter(IDS[1:] * 3)
    orders = [[r["id"] for r in speed["requests"] if r["pass_number"] == n] for n in (1, 2, 3)]
    assert orders == [[IDS[1 + i] for i in order] for order in pass_orders(4, 3, 7)]
    assert len({tuple(o) for o in orders}) > 1  # the passes' orders differ
    # the headline percentiles pool all 12 requests
    lat = sorted(r["latency_ms"] for r in speed["requests"])
    assert speed["latency_ms"]["p50"] == pytest.approx((lat[5] + lat[6]) / 2, abs=0.01)
    # the new fields are declared in slmexp/record_types (the schema allows extra keys: checked here) and typed right
    assert set(speed) <= set(get_type_hints(SpeedBlock)) and set(passes) <= set(get_type_hints(Passes))
    assert set(passes["per_pass"][0]) <= set(get_type_hints(PassFigures))
    assert set(ci) <= set(get_type_hints(OverPasses))
    assert set(speed["requests"][0]) <= set(get_type_hints(TimedRequest))
    assert [e for e in errors({"speed": speed}) if e.startswith("speed")] == []


def test_a_planted_slow_pass_is_flagged_in_the_record_and_the_summary(serve) -> None:
    from slmexp.bench import benchmark
    from slmexp.summary import _speed_rows

    srv = serve(lambda k: 0.09 if 5 <= k < 9 else 0.03)  # request 0: warm-up, 1-4: pass 1, 5-8: pass 2 (slow)
    with _runtime(srv) as rt:
        speed = benchmark(rt, PROMPTS, max_new_tokens=8, warmup=1, ids=IDS, passes=3, seed=1, max_pass_spread=0.2)
    passes = speed["passes"]
    p50s = [p["latency_ms"]["p50"] for p in passes["per_pass"]]
    assert p50s[1] > 2 * max(p50s[0], p50s[2])
    assert passes["unstable"] and speed["unstable"] and passes["flagged_pass"] == 2 and passes["spread"] > 0.2
    rows = dict(_speed_rows({"speed": speed}))
    assert "spread" in rows["[bold red]UNSTABLE[/]"] and "pass 2" in rows["[bold red]UNSTABLE[/]"]
    assert "3 passes" in rows["speed over passes"]


def test_alternating_pairs_recover_the_latency_ratio_under_drift(serve) -> None:
    """Both endpoints slow down as the run goes on (a shared drift: +3% per request answered by either, about x1.3
    by the end). Timing A's requests, then B's, would mix moments (about +12% on this ratio); alternating pairs put
    both under the same drift, so the ratio of their known latencies comes back within 5%. An endpoint's latency, as
    a client sees it, is its 150 / 450 ms plus the client's own cost per request (streaming, HTTP: 2-10 ms on the
    2-core machine, the same for both): measured first on a third endpoint that answers at once."""
    from statistics import median

    from slmexp.bench import time_request
    from slmexp.paired_timing import alternate

    with _runtime(serve(lambda k: 0.0)) as rt:
        client_ms = median(time_request(rt, "hi", 8, ["\n"])["e2e_s"] * 1000 for _ in range(7))
    known = (450 + client_ms) / (150 + client_ms)
    served = [0]  # requests answered by either server: the drift's clock

    def drifting(base_s: float) -> Callable[[int], float]:
        def delay(_k: int) -> float:
            served[0] += 1
            return base_s * (1 + 0.03 * served[0])
        return delay

    a, b = serve(drifting(0.15)), serve(drifting(0.45))
    with _runtime(a) as rt_a, _runtime(b) as rt_b:
        out = alternate(rt_a, rt_b, PROMPTS[:3], max_new_tokens=8, stop=["\n"], passes=2, warmup=1, seed=3)
    assert a.served == b.served == 1 + 2 * 2 and out["n_pairs"] == 4
    assert out["a_first"] == 2  # who goes first: drawn per pair, half the pairs of each pass each way
    assert out["speedup"] == pytest.approx(known, rel=0.05), (known, client_ms, out["pairs"])
    assert [p["pairs"] for p in out["per_pass"]] == [2, 2] and all(p["speedup"] > 2 for p in out["per_pass"])
    assert out["over_passes"]["n"] == 2 and 0 < out["over_passes"]["ci95_low"] <= out["over_passes"]["geomean"]
    assert out["over_pairs"]["ci95_low"] <= out["speedup"] <= out["over_pairs"]["ci95_high"]
    # the drift was real: B's last pair took longer than its first (a cross-moment ratio would carry it)
    assert out["pairs"][-1]["b_ms"] > 1.1 * out["pairs"][0]["b_ms"]


def test_a_job_records_its_passes_from_the_config_shuffled_with_the_job_seed(serve, tmp_path: Path) -> None:
    """Through the pipeline (runtime=openai): eval.bench.passes / max_pass_spread and the top-level seed reach the
    speed stage, and run.json keeps the passes and each timed request's pass_number."""
    from slmexp.pipeline import run_job
    from slmexp.record_schema import errors

    srv = serve(lambda k: 0.0)
    cfg = compose(["runtime=openai", f"runtime.base_url={srv.base_url}", "runtime.model=sleepy",
                   "model.name=sleepy", "model.source.hub=null", "model.source.wheel=null", "eval.limit=3",
                   "eval.bench.n=2", "eval.bench.warmup=1", "eval.bench.passes=2", "eval.bench.max_pass_spread=5",
                   "eval.bench.concurrency=1", "seed=11", f"paths.output_dir={tmp_path}/o",
                   f"paths.cache_dir={tmp_path}/c"])
    run_job(cfg, run_dir=tmp_path / "run")
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["run"]["status"] == "finished" and errors(rec) == []
    speed = rec["speed"]
    assert speed["passes"]["n"] == 2 and speed["passes"]["seed"] == 11 and speed["passes"]["max_spread"] == 5.0
    assert speed["n_requests"] == 4 and speed["unstable"] is False
    assert sorted((r["id"], r["pass_number"]) for r in speed["requests"]) == sorted(
        (i, n) for i in {r["id"] for r in speed["requests"]} for n in (1, 2))


def test_the_interval_over_passes_is_a_t_interval_on_the_log_scale() -> None:
    """By hand: ln(100, 100, 300) has mean 4.9715 and SD 0.6343; t(0.975, 2 df) = 4.3027, so the interval is
    exp(4.9715 -/+ 4.3027 x 0.6343 / sqrt 3) = [29.84, 697.2]: wide, and above 0 where the raw-scale one is not."""
    from slmexp.timing_passes import pass_orders, spread, t_interval

    ci = t_interval([100, 100, 300])
    assert ci["geomean"] == pytest.approx(144.22, abs=0.01) and ci["sd_log"] == pytest.approx(0.6343, abs=1e-4)
    assert (ci["ci95_low"], ci["ci95_high"]) == pytest.approx((29.84, 697.2), rel=1e-3)
    assert t_interval([120])["ci95_low"] is None and spread([100, 100, 300]) == 2.0 and spread([5]) is None
    assert pass_orders(4, 2, 9) == pass_orders(4, 2, 9) and pass_orders(3, 2, None) == [[0, 1, 2], [0, 1, 2]]


def test_the_report_pairs_by_id_with_each_ids_passes_pooled() -> None:
    """speed.requests holds an id once per pass: the report's per-id figure is the mean over its passes (what the
    paired speed-up and cost-ratio CIs resample), not whichever pass came last."""
    from slmexp.report.collect import _load_requests

    rows = [{"id": "x", "pass_number": 1, "latency_ms": 100.0}, {"id": "y", "pass_number": 1, "latency_ms": 50.0},
            {"id": "y", "pass_number": 2, "latency_ms": 70.0}, {"id": "x", "pass_number": 2, "latency_ms": 140.0,
                                                                 "usd": 0.002}]
    assert _load_requests({"speed": {"requests": rows}}) == {"x": {"latency_ms": 120.0, "usd": 0.002},
                                                             "y": {"latency_ms": 60.0}}
