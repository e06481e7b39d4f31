"""`slmexp verify DIR`: check every run below DIR against its attestation, from the stored files alone, no model.

Three checks per run (slmexp.attest says how the hashes are made):
- outputs: the per-example hashes recomputed from `generations.jsonl` against `attest.jsonl` and run.json's
  `outputs_sha256`; a difference names the first example, in id order, and whether its raw or its extracted answer
  changed (or that it is missing or extra);
- results: `results_sha256` recomputed from run.json's `metrics` block;
- metrics: the values re-scored from the stored answers with today's metric code (slmexp.rescore, on a copy:
  nothing is written) against `metrics.values`. lm-eval's own tasks are scored by lm-eval and are not re-scored.

One line per run: `ok`, `differs: <what>`, or `no attestation recorded` for a record made before attestation
existed. Exit status: 0 every attested run verifies (unattested ones too, unless --strict), 1 some run differs, 2 bad
input (DIR not a directory, no run.json below it).
"""

from __future__ import annotations

import argparse
import copy
import math
from pathlib import Path
from typing import Any

from slmexp import attest, generations
from slmexp.record import RECORD_NAME, load
from slmexp.record_types import AttestationBlock, MetricsBlock, RunJson


def _first_example_difference(now: list[dict[str, str]], kept: list[dict[str, str]]) -> str | None:
    """`example <id>: <what differs>` for the first example, in id order, whose hashes differ; None if all agree."""
    kept_by_id = {h["id"]: h for h in kept}
    now_by_id = {h["id"]: h for h in now}
    for ident in sorted(set(kept_by_id) | set(now_by_id)):
        a, b = kept_by_id.get(ident), now_by_id.get(ident)
        if a is None:
            return f"example {ident}: in {generations.GENERATIONS_NAME} but not attested"
        if b is None:
            return f"example {ident}: attested but missing from {generations.GENERATIONS_NAME}"
        parts = [name for name, key in (("raw answer", "raw_sha256"), ("extracted answer", "extracted_sha256"))
                 if a.get(key) != b.get(key)]
        if parts or a.get("sha256") != b.get("sha256"):
            what = " and ".join(parts) or "answer"
            return (f"example {ident}: {what} differs (attested {attest.short(a.get('sha256'))}, "
                    f"now {attest.short(b.get('sha256'))})")
    return None


def check_outputs(run_dir: Path, block: AttestationBlock, store: Path | None) -> str | None:
    """What differs between the stored answers and the attested ones; None when they agree."""
    if store is None:
        return f"{generations.GENERATIONS_NAME} is missing"
    now = attest.example_hashes(generations.read(store))
    if attest.outputs_sha256(now) == block.get("outputs_sha256"):
        return None
    kept_path = run_dir / str(block.get("examples") or attest.ATTEST_NAME)
    kept = attest.read_hashes(kept_path) if kept_path.is_file() else []
    first = _first_example_difference(now, kept) if kept else None
    if first:
        return first
    if not kept:
        return f"outputs_sha256 differs and {kept_path.name} is missing, so the example cannot be named"
    return f"outputs_sha256 differs from {kept_path.name} itself ({kept_path.name} was edited)"


def _close(a: Any, b: Any) -> bool:
    """Equal, or both finite numbers equal to 1e-12 (the same mean summed in the same order is bit-identical; the
    tolerance only absorbs a JSON round trip of a value lm-eval computed in numpy)."""
    if a == b:
        return True
    nums = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))
    if nums and math.isnan(a) and math.isnan(b):
        return True
    return nums and math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def check_metrics(record: RunJson, store: Path | None) -> tuple[str | None, str]:
    """(what differs, or None; a note) between `metrics.values` and the values re-scored from the stored answers."""
    from slmexp.rescore import aggregate, metric_function, score_rows

    metrics: MetricsBlock = record.get("metrics") or {}
    kind = str(((record.get("config") or {}).get("task") or {}).get("kind") or "")
    fn = metric_function(kind) if kind else None
    if fn is None or store is None:
        return None, "metrics not re-scored (lm-eval's own task)" if store is not None else ""
    stored_rows = generations.read(store)
    rows = copy.deepcopy(stored_rows)
    score_rows(fn, kind, rows)
    stored = dict(metrics.get("values") or {})
    fresh = aggregate([r["metrics"] for r in rows], stored)
    moved = [f"{k} {stored.get(k)} -> {v}" for k, v in sorted(fresh.items())
             if not k.endswith("_stderr") and not _close(stored.get(k), v)]
    if not moved:
        return None, "metrics re-scored"
    pairs = sorted(zip(stored_rows, rows, strict=True), key=lambda p: str(p[0].get("id")))
    first = next((old["id"] for old, new in pairs if any(not _close((old.get("metrics") or {}).get(m), v)
                                                        for m, v in new["metrics"].items())), None)
    where = f" (first example scored differently: {first})" if first is not None else ""
    return f"metrics re-scored from the stored answers differ: {', '.join(moved)}{where}", ""


def verify_run(run_dir: Path, strict: bool = False) -> tuple[str, str]:
    """(status, line) for one run: status ok | differs | unattested | skipped."""
    run_dir = Path(run_dir)
    record: RunJson = load(run_dir)
    if (record.get("run") or {}).get("status") != "finished":
        return "skipped", "skipped: not a finished run"
    block: AttestationBlock | None = record.get("attestation")
    if not block:
        return ("differs" if strict else "unattested"), "no attestation recorded" + (" (--strict)" if strict else "")
    metrics: MetricsBlock = record.get("metrics") or {}
    store = generations.find(run_dir, record)
    problems = []
    if attest.results_sha256(metrics) != block.get("results_sha256"):
        problems.append("results_sha256 differs: run.json's metrics were changed after they were attested")
    outputs = check_outputs(run_dir, block, store)
    if outputs:
        problems.append(outputs)
    metric_diff, note = check_metrics(record, store)
    if metric_diff:
        problems.append(metric_diff)
    if problems:
        return "differs", "differs: " + "; ".join(problems)
    return "ok", (f"ok (results {attest.short(block.get('results_sha256'))}, outputs "
                  f"{attest.short(block.get('outputs_sha256'))}, {block.get('n_examples')} examples"
                  + (f", {note}" if note else "") + ")")


def run_dirs(root: Path) -> list[Path]:
    """The run dirs at or below `root` (a run dir, a sweep dir or any folder of run dirs), in path order."""
    if (root / RECORD_NAME).is_file():
        return [root]
    return [p.parent for p in sorted(root.rglob(RECORD_NAME))]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slmexp verify",
        description="Recompute every run's results_sha256 and outputs_sha256 and its metrics from the stored files "
                    "(run.json, generations.jsonl, attest.jsonl), with no model loaded; name the first example "
                    "whose answer differs.")
    parser.add_argument("dir", type=Path, help="a run dir, a sweep dir or a folder of run dirs")
    parser.add_argument("--strict", action="store_true",
                        help="a finished run with no attestation (recorded before it existed) counts as differing")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`slmexp verify DIR [--strict]`. Returns 0 all verify, 1 some run differs; bad input exits 2 in one line."""
    from slmexp.cli_errors import refuse

    parser = _parser()
    parser.error = lambda message: refuse([f"slmexp verify: {message}"])  # type: ignore[method-assign]
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        refuse([f"DIR: {args.dir} is not a directory"])
    dirs = run_dirs(args.dir)
    if not dirs:
        refuse([f"DIR: no {RECORD_NAME} at or below {args.dir}"])
    statuses = []
    for run_dir in dirs:
        try:
            status, line = verify_run(run_dir, args.strict)
        except (OSError, ValueError) as e:  # an unreadable run.json or store: that run does not verify
            status, line = "differs", f"differs: cannot read its files ({e})"
        statuses.append(status)
        print(f"{run_dir}: {line}", flush=True)
    return 1 if "differs" in statuses else 0
