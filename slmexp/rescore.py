"""`slmexp rescore DIR`: re-apply today's metric code to the stored generations of a run or a whole sweep.

Why: a metric or an answer parser gets fixed after a sweep ran (a label spelling the extractor missed, a JSON
type rule). Re-running the models for that costs hours and may not give the same outputs; the outputs are already
on disk (`generations.jsonl`, slmexp.generations), so the new metric is applied to them directly, with no model
loaded. Each run's `metrics.values`, the per-example metrics in `generations.jsonl` and `lm_eval/samples.jsonl`
(which the report's statistics read) are rewritten; `metrics.rescored` notes when, with which code (slmexp
version, git commit, sha256 of the metric source) and what changed; then the sweep's report is rebuilt.

The metric is the one the task kind's lm-eval template names (`process_results: !function module.fn`), called
exactly as lm-eval calls it (`fn(doc, [raw])`), and aggregated as lm-eval aggregates our metrics (mean; stderr =
sample std / sqrt(n)), so an unchanged metric reproduces the stored values exactly. lm-eval's own tasks
(`task.kind: lm_eval`) are scored by lm-eval's code and are left as they are (the run says so).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import importlib
import inspect
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slmexp import generations
from slmexp.cache import read_jsonl
from slmexp.record import RECORD_NAME
from slmexp.record_types import MetricsBlock, RunJson

_FUNCTION = re.compile(r"^process_results:\s*!function\s+(\S+)\s*$", re.M)


def metric_function(kind: str) -> Callable[[dict[str, Any], list[Any]], dict[str, float]] | None:
    """The `process_results` function the kind's lm-eval template names (imported now: today's code), or None for
    a kind whose scoring is lm-eval's own."""
    from slmexp.tasks import LM_EVAL_TEMPLATES
    from slmexp.tasks.kinds import kind as kind_record

    template = kind_record(kind).template
    if not template:
        return None
    match = _FUNCTION.search((LM_EVAL_TEMPLATES / template).read_text(encoding="utf-8"))
    if not match:
        return None
    module, _, attr = match.group(1).rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)  # lm-eval's `mean`, the same float operations in the same order


def _stderr(values: list[float]) -> float:
    """lm-eval's `mean_stderr`: sample std (ddof=1) / sqrt(n)."""
    mu = _mean(values)
    return math.sqrt(sum([(x - mu) ** 2 for x in values]) / (len(values) - 1)) / math.sqrt(len(values))


def aggregate(per_example: list[dict[str, float]], stored: dict[str, Any]) -> dict[str, float]:
    """Run-level values from per-example metrics: each metric's mean, and its stderr where the run recorded one
    (lm-eval leaves it out with bootstrap_iters=0 and for n=1)."""
    names = sorted({m for row in per_example for m in row})
    out: dict[str, float] = {}
    for name in names:
        vals = [float(row[name]) for row in per_example if name in row]
        if not vals:
            continue
        out[name] = _mean(vals)
        if f"{name}_stderr" in stored and len(vals) > 1:
            out[f"{name}_stderr"] = _stderr(vals)
    return out


def code_version(fn: Callable[..., Any]) -> dict[str, Any]:
    """What scored: slmexp's version, the checkout's commit, and the sha256 of the metric's and the answer
    parsers' source files (a dirty checkout is told apart by the latter)."""
    from importlib import metadata

    from slmexp.system import git_sha
    from slmexp.tasks import extract

    digest = hashlib.sha256()
    for mod in (inspect.getmodule(fn), extract):
        digest.update(Path(inspect.getfile(mod)).read_bytes())
    try:
        version = metadata.version("slmexp")
    except metadata.PackageNotFoundError:
        version = None
    return {"slmexp": version, "git": git_sha(), "function": f"{fn.__module__}.{fn.__qualname__}",
            "metric_source_sha256": digest.hexdigest()}


def _rewrite_samples(path: Path, by_doc: dict[str, dict[str, float]]) -> None:
    """Put the new per-example metrics into the samples file the report reads (same rows, same order)."""
    if not path.is_file():
        return
    rows = read_jsonl(path)
    for row in rows:
        row.update(by_doc.get(str(row.get("doc_id")), {}))
    generations.write(path, rows)


def score_rows(fn: Callable[[dict[str, Any], list[Any]], dict[str, float]], kind: str,
               rows: list[dict[str, Any]]) -> None:
    """Re-score stored rows in place: each row's `metrics` from `fn` as lm-eval calls it, its `extracted` answer
    from today's parser (`slmexp verify` re-scores a copy the same way)."""
    for row in rows:
        raw = row.get("raw")
        row["metrics"] = {k: float(v) for k, v in fn(row["doc"], [raw if isinstance(raw, str) else ""]).items()}
        row["extracted"] = generations.extract_answer(kind, row["doc"], raw)


def rescore_run(run_dir: Path) -> dict[str, Any]:
    """Re-score one run in place. Returns {"run_dir", "status": rescored | skipped, "why", "changed"}.

    `changed` maps each run-level value that moved to (before, after); empty when the metric code gives what the
    run recorded.
    """
    from slmexp.cache import write_json_atomic
    from slmexp.record import load

    run_dir = Path(run_dir)
    record: RunJson = load(run_dir)  # parsed JSON, read through the record's types
    out: dict[str, Any] = {"run_dir": str(run_dir), "status": "skipped", "why": "", "changed": {}}
    metrics: MetricsBlock = record.get("metrics") or {}
    if (record.get("run") or {}).get("status") != "finished" or not metrics.get("values"):
        out["why"] = "not a finished run with metrics"
        return out
    store = generations.find(run_dir, record)
    if store is None:
        out["why"] = f"no {generations.GENERATIONS_NAME} (run recorded before the per-example store existed)"
        return out
    kind = str(((record.get("config") or {}).get("task") or {}).get("kind") or "")
    fn = metric_function(kind) if kind else None
    if fn is None:
        out["why"] = f"task kind {kind or '?'}: scored by lm-eval's own task code, not re-scored"
        return out
    rows = generations.read(store)
    score_rows(fn, kind, rows)
    stored = dict(metrics["values"])
    fresh = aggregate([r["metrics"] for r in rows], stored)
    values = {**stored, **fresh}
    changed = {k: [stored.get(k), v] for k, v in fresh.items() if stored.get(k) != v}
    generations.write(store, rows)
    _rewrite_samples(run_dir / str(metrics.get("samples") or "lm_eval/samples.jsonl"),
                     {str(r["doc_id"]): r["metrics"] for r in rows})
    metrics["values"] = values
    metrics.setdefault("rescored", []).append({
        "at": _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds"),
        "code": code_version(fn), "n": len(rows), "changed": changed,
    })
    primary = metrics.get("primary")
    cost = record.get("cost")
    if isinstance(cost, dict) and primary in changed and cost.get("basis") != "routed":
        from slmexp.cost import per_correct

        per_correct(cost, cost.get("usd_per_1k_requests"), values.get(primary))
    if record.get("attestation"):  # the answers and values just rewritten are what the run now attests
        from slmexp.attest import attest

        record["attestation"] = attest(run_dir, metrics)
    write_json_atomic(run_dir / RECORD_NAME, record)
    out.update(status="rescored", changed=changed)
    return out


def _baseline(records: list[RunJson]) -> str | None:
    """The sweep's `baseline` (every run's config carries it), as the report callback used it."""
    names = {str(b) for r in records if (b := (r.get("config") or {}).get("baseline"))}
    return names.pop() if len(names) == 1 else None


def main(argv: list[str] | None = None) -> int:
    """`slmexp rescore DIR [--no-report]`. Returns 0 done, 1 no run.json below DIR, 2 DIR is not a directory."""
    parser = argparse.ArgumentParser(
        prog="slmexp rescore",
        description="Re-apply the current metric code to the stored generations (generations.jsonl) of every run "
                    "below DIR, with no model loaded; rewrite the metrics in run.json and rebuild the report.")
    parser.add_argument("dir", type=Path, help="a run dir or a sweep dir (searched recursively for run.json)")
    parser.add_argument("--no-report", action="store_true", help="do not rebuild the sweep's report")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        print(f"slmexp rescore: error: {args.dir} is not a directory", file=sys.stderr)
        return 2
    root = args.dir
    paths = [root / RECORD_NAME] if (root / RECORD_NAME).is_file() else sorted(root.rglob(RECORD_NAME))
    if not paths:
        print(f"slmexp rescore: error: no {RECORD_NAME} below {root}", file=sys.stderr)
        return 1
    for path in paths:
        try:
            res = rescore_run(path.parent)
        except (OSError, ValueError, KeyError) as e:
            print(f"{path.parent}: not re-scored: {e}", file=sys.stderr)
            continue
        if res["status"] == "rescored":
            what = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in res["changed"].items() if not k.endswith("_stderr"))
            print(f"{path.parent}: rescored; {what or 'metrics unchanged'}")
        else:
            print(f"{path.parent}: skipped: {res['why']}")
    if not args.no_report and (len(paths) > 1 or (root / "comparison.md").is_file()):
        from slmexp.report import collect, write_report

        report = write_report(root, baseline=_baseline(collect(root)))
        print(f"report rebuilt: {report['md']}")
    return 0
