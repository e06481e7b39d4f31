"""What reviewers open (issue 19): the per-example store, `slmexp rescore`, flips and report.html.

The sweep below is real end to end (prompt rendering, lm-eval's chat-completions client, `process_results`, the run
record, the report) against a scripted OpenAI-compatible server on 127.0.0.1 whose "models" answer by a known rule,
so which example each arm gets right is known in advance:
  slm-a     the gold label, except on examples whose number is divisible by 3 (then another label);
  slm-b     "The intent is <gold>." (right by extraction, wrong by strict match), wrong when the number % 4 == 1;
  llm       the gold label (the baseline), wrong when the number % 5 == 2.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from slmexp.config import DATA_DIR
from tests.conftest import compose

pytest.importorskip("openai")

N = 12
LABELS_SHOWN = ["order_status", "cancel_order"]


def _number(example_id: str) -> int:
    return int(example_id.rsplit("-", 1)[1])


RULES = {  # model -> (is the answer right for this example number?, how the answer is written)
    "slm-a": (lambda k: k % 3 != 0, lambda x: x),
    "slm-b": (lambda k: k % 4 != 1, lambda x: f"The intent is {x}."),
    "llm": (lambda k: k % 5 != 2, lambda x: x),
}


def _examples() -> dict[str, tuple[str, str]]:
    """text -> (id, gold label) of the shipped support-intent test split."""
    rows = [json.loads(line) for line in (DATA_DIR / "support_intent" / "test.jsonl").read_text().splitlines()]
    return {r["text"]: (r["id"], r["label"]) for r in rows}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, obj: dict, status: int = 200) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._json({"object": "list", "data": [{"id": m, "object": "model"} for m in RULES]})

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        text = self.server.answer(req)
        self._json({"id": "c1", "object": "chat.completion", "model": req.get("model"), "created": 0,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        super().__init__(("127.0.0.1", port), _Handler)
        self.examples = _examples()
        self.labels = sorted({lab for _id, lab in self.examples.values()})

    def answer(self, req: dict) -> str:
        content = "\n".join(str(m.get("content", "")) for m in req.get("messages") or [])
        text = max((t for t in self.examples if t in content), key=len)
        example_id, gold = self.examples[text]
        right, fmt = RULES[str(req.get("model"))]
        label = gold if right(_number(example_id)) else next(x for x in self.labels if x != gold)
        return fmt(label)


def expected_right(model: str, ids: list[str]) -> dict[str, bool]:
    return {i: RULES[model][0](_number(i)) for i in ids}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = _Server()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def sweep(server, tmp_path_factory) -> Path:
    """Three finished runs (two SLM arms, the LLM baseline) in one sweep dir, and its report."""
    from slmexp.pipeline import run_job
    from slmexp.report import write_report

    root = tmp_path_factory.mktemp("reviewers")
    for job, (model, role) in enumerate([("slm-a", "slm"), ("slm-b", "slm"), ("llm", "baseline")]):
        cfg = compose(["runtime=openai", f"runtime.base_url={server}", f"model.name={model}", f"model.role={role}",
                       "model.source.hub=null", "model.source.wheel=null", f"eval.limit={N}", "eval.bench.n=0",
                       f"paths.output_dir={root / 'o'}", f"paths.cache_dir={root / 'c'}"])
        run_job(cfg, run_dir=root / "sweep" / str(job))
    write_report(root / "sweep")
    return root / "sweep"


@pytest.fixture
def sweep_copy(sweep, tmp_path) -> Path:
    return Path(shutil.copytree(sweep, tmp_path / "sweep"))


def _records(root: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(root.glob("*/run.json"))}


@pytest.mark.slow  # the sweep fixture: three real runs through lm-eval (~1 min on 2 cores, shared)
def test_every_run_keeps_its_generations(sweep) -> None:
    rec = _records(sweep)["1"]
    assert rec["metrics"]["generations"] == "generations.jsonl"
    rows = [json.loads(line) for line in (sweep / "1" / "generations.jsonl").read_text().splitlines()]
    assert len(rows) == N
    first = rows[0]
    assert set(first) >= {"id", "prompt_sha256", "raw", "extracted", "metrics", "doc"}
    assert first["raw"].startswith("The intent is ") and first["extracted"] in first["raw"]
    assert len(first["prompt_sha256"]) == 64 and first["doc"]["prompt"] and first["doc"]["target"]
    assert first["metrics"]["exact_match"] == float(RULES["slm-b"][0](_number(first["id"])))
    assert first["metrics"]["strict_match"] == 0.0
    # the mean of the stored per-example metric is the run's metric
    assert sum(r["metrics"]["exact_match"] for r in rows) / N == rec["metrics"]["values"]["exact_match"]


@pytest.mark.slow  # the sweep fixture: three real runs through lm-eval (~1 min on 2 cores, shared)
def test_rescore_reproduces_stored_metrics_exactly_without_a_model(sweep_copy) -> None:
    before = _records(sweep_copy)
    table = (sweep_copy / "comparison.md").read_text()
    code = ("import sys\nfrom slmexp.cli import main\nsys.argv = ['slmexp', 'rescore', sys.argv[1]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    rc = e.code\n"
            "heavy = [m for m in ('torch', 'transformers', 'llama_cpp', 'openai', 'lm_eval') if m in sys.modules]\n"
            "assert not heavy, heavy\nsys.exit(rc)\n")
    out = subprocess.run([sys.executable, "-c", code, str(sweep_copy)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("metrics unchanged") == 3, out.stdout
    after = _records(sweep_copy)
    for job, rec in after.items():
        assert rec["metrics"]["values"] == before[job]["metrics"]["values"]  # bit for bit, stderr included
        note = rec["metrics"]["rescored"][-1]
        assert note["changed"] == {} and note["n"] == N and note["at"]
        assert note["code"]["function"] == "slmexp.tasks.metrics.classification_results"
        assert len(note["code"]["metric_source_sha256"]) == 64 and "sha" in note["code"]["git"]
    assert (sweep_copy / "comparison.md").read_text() == table


@pytest.mark.slow  # the sweep fixture: three real runs through lm-eval (~1 min on 2 cores, shared)
def test_rescore_applies_a_changed_metric(sweep_copy, monkeypatch, capsys) -> None:
    """A stricter metric (exact_match := the raw answer is exactly the label) re-scores slm-b's "The intent is X."
    as wrong everywhere; the run, its stores and the report follow."""
    from slmexp import rescore
    from slmexp.tasks import metrics

    original = metrics.classification_results

    def stricter(doc, results):
        out = original(doc, results)
        out["exact_match"] = out["strict_match"]
        return out

    monkeypatch.setattr(metrics, "classification_results", stricter)
    assert rescore.main([str(sweep_copy)]) == 0
    printed = capsys.readouterr().out
    after = _records(sweep_copy)
    b = after["1"]["metrics"]
    assert b["values"]["exact_match"] == 0.0 and b["values"]["exact_match_stderr"] == 0.0
    assert b["rescored"][-1]["changed"]["exact_match"][1] == 0.0
    assert "exact_match" not in after["0"]["metrics"]["rescored"][-1]["changed"]  # plain labels: unchanged
    rows = [json.loads(line) for line in (sweep_copy / "1" / "generations.jsonl").read_text().splitlines()]
    assert all(r["metrics"]["exact_match"] == 0.0 for r in rows)
    samples = [json.loads(line) for line in (sweep_copy / "1" / b["samples"]).read_text().splitlines()]
    assert all(s["exact_match"] == 0.0 for s in samples)
    assert "rescored; exact_match" in printed and "report rebuilt" in printed
    table = (sweep_copy / "comparison.md").read_text()
    slm_b = next(line for line in table.splitlines() if line.startswith("| slm-b"))
    assert "| 0.000 |" in slm_b


def test_rescore_cli_refuses_a_missing_dir(tmp_path) -> None:
    out = subprocess.run([sys.executable, "-m", "slmexp", "rescore", str(tmp_path / "nope")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "is not a directory" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow  # the sweep fixture: three real runs through lm-eval (~1 min on 2 cores, shared)
def test_flips_name_the_examples_mcnemar_counts(sweep) -> None:
    flips = json.loads((sweep / "flips.json").read_text())
    ids = [json.loads(line)["id"] for line in (sweep / "2" / "generations.jsonl").read_text().splitlines()]
    base = expected_right("llm", ids)
    for model in ("slm-a", "slm-b"):
        f = next(x for x in flips if x["arm"].startswith(model))
        arm = expected_right(model, ids)
        assert f["reference"] == "baseline" and f["against"].startswith("llm") and f["n_paired"] == N
        assert f["right_to_wrong"] == sorted(i for i in ids if base[i] and not arm[i])
        assert f["wrong_to_right"] == sorted(i for i in ids if arm[i] and not base[i])
    assert f["right_to_wrong"]  # the rules do produce flips both ways
    table = (sweep / "comparison.md").read_text()
    assert "**Flips.**" in table
    for f in flips:  # McNemar's b/c in the table are the flips' counts
        row = next(line for line in table.splitlines() if line.startswith(f"| {f['arm'].split('@')[0]} | "))
        assert f"| {len(f['wrong_to_right'])}/{len(f['right_to_wrong'])} |" in row
        assert f"`{f['right_to_wrong'][0]}`" in table if f["right_to_wrong"] else True


def test_flips_against_the_parent_name_a_dequantized_parent() -> None:
    import pandas as pd

    from slmexp.report.flips import compute_flips

    def info(quant: str, runtime: str, scores: dict[str, float], prov: str = "", d: str = "") -> dict:
        return {"task": "t", "split": "test", "model": "m", "adapter": "lora", "quantization": quant,
                "runtime": runtime, "status": "finished", "samples": scores, "weights_provenance": prov, "dir": d}

    parent = info("none", "transformers", {"a": 1.0, "b": 1.0, "c": 0.0}, "dequantized from GGUF Q4_1", "0")
    rung = info("Q4_K_M", "llamacpp", {"a": 1.0, "b": 0.0, "c": 1.0}, d="1")
    df = pd.DataFrame([{"is_baseline": False, "run_dirs": "0", "task": "t"},
                       {"is_baseline": False, "run_dirs": "1", "task": "t"}])
    (f,) = compute_flips([parent, rung], df)
    assert f["reference"] == "parent" and f["parent_dequantized"] is True
    assert f["against"] == "m+lora@transformers (dequantized from GGUF Q4_1)"
    assert (f["right_to_wrong"], f["wrong_to_right"], f["n_paired"]) == (["b"], ["c"], 3)


# --- report.html in a real headless browser ----------------------------------------------------------------------

# Records every error the page raises (script errors, failed loads, console.error) and writes them into the DOM on
# load, where --dump-dom shows them.
_RECORD_ERRORS = (
    "<script>window.__errors=[];window.addEventListener('error',function(e){window.__errors.push(String(e.message||"
    "e.type)+' '+(e.filename||(e.target&&(e.target.src||e.target.href))||''));},true);var _ce=console.error;"
    "console.error=function(){window.__errors.push(Array.prototype.join.call(arguments,' '));_ce.apply(console,"
    "arguments);};window.addEventListener('load',function(){document.documentElement.setAttribute('data-errors',"
    "JSON.stringify(window.__errors));});</script>")


def _chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser")) if p), None)


def _browse(page: Path, tmp_path: Path, fragment: str = "", screenshot: Path | None = None) -> tuple[str, str]:
    """Load `page` (with error recording injected) in headless chromium with every host unresolvable; return the DOM
    after the scripts ran, and chromium's log."""
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + _RECORD_ERRORS, 1),
                     encoding="utf-8")
    args = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]
    args += [f"--screenshot={screenshot}", "--window-size=1400,1800"] if screenshot else ["--dump-dom"]
    out = subprocess.run([*args, probe.as_uri() + fragment], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout, out.stderr


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (Debian: apt-get install chromium; "
                                                 "`make browser` does it)")
def test_report_html_loads_in_headless_chromium(sweep, tmp_path) -> None:
    import re

    from slmexp.report.html import external_references

    page = Path(shutil.copy(sweep / "report.html", tmp_path / "report.html"))
    text = page.read_text(encoding="utf-8")
    assert external_references(text) == [] and "<svg" in text  # self-contained: plots inline, nothing fetched
    dom, log = _browse(page, tmp_path)
    errors = re.search(r'data-errors="([^"]*)"', dom)
    assert errors is not None, dom[:2000]  # the load handler ran
    assert json.loads(errors.group(1).replace("&quot;", '"')) == []
    assert "Uncaught" not in log, log[-2000:]
    comparison = re.search(r'<table id="comparison">.*?<tbody>(.*?)</tbody>', dom, re.S).group(1)
    assert comparison.count("<tr") == 3  # one row per run
    assert dom.count("<tr data-id=") == N  # the browser rendered every example
    ids = [json.loads(line)["id"] for line in (sweep / "2" / "generations.jsonl").read_text().splitlines()]
    base = expected_right("llm", ids)
    slm = [expected_right(m, ids) for m in ("slm-a", "slm-b")]
    want = sorted(i for i in ids if base[i] and any(not s[i] for s in slm))
    filtered, _ = _browse(page, tmp_path, "#filter=slm-wrong-llm-right")
    assert sorted(re.findall(r'<tr data-id="([^"]+)"', filtered)) == want
    shot = tmp_path / "report.png"
    _browse(page, tmp_path, screenshot=shot)
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # the sweep fixture: three real runs through lm-eval (~1 min on 2 cores, shared)
def test_sweep_report_run_has_every_arms_answers_side_by_side(sweep_copy, monkeypatch, tmp_path) -> None:
    pytest.importorskip("wandb")
    from slmexp.report import write_report
    from slmexp.tracking import log_sweep
    from tests.test_tracking import inspect

    for var, value in (("WANDB_MODE", "offline"), ("WANDB_SILENT", "true"), ("WANDB_DATA_DIR", tmp_path / "wd"),
                       ("WANDB_CACHE_DIR", tmp_path / "wc"), ("WANDB_CONFIG_DIR", tmp_path / "wf")):
        monkeypatch.setenv(var, str(value))
    paths = write_report(sweep_copy)
    wb_dir = log_sweep(compose(["logger=wandb", "logger.group=reviewers"]).logger, sweep_copy, paths)
    assert wb_dir is not None
    (summary,) = inspect(wb_dir, "--summary")
    table = summary["summary"]["examples"]
    assert table["_type"] == "table-file" and table["nrows"] == N
    data = json.loads((wb_dir / "files" / table["path"]).read_text())
    cols = data["columns"]
    assert cols[:4] == ["id", "task", "prompt", "gold"]
    assert {"slm-a@openai answer", "slm-b@openai right", "llm@openai answer"} <= set(cols)
    ids = [row[0] for row in data["data"]]
    right = dict(zip(ids, (row[cols.index("slm-a@openai right")] for row in data["data"]), strict=True))
    assert right == expected_right("slm-a", ids)
