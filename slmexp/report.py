"""The comparison report: one table (Markdown, CSV, LaTeX) and two plots built from `run.json` files alone.

A sweep's question is "how much accuracy does a small model keep, and what does it buy in speed and cost?", so
every row is read against a baseline row: accuracy retained (%), speed-up, cost ratio, and a paired McNemar test
on the very same test examples (a difference of a few points on 250 examples is often noise, and the table should
say so). Statistics come from each run's `lm_eval/samples.jsonl`, so nothing needs re-running.

Rules the table keeps:
- a value that was not measured is an empty cell, never a zero (failed runs, runs without a speed stage, `cost`
  still null);
- runs whose resolved configs differ only by seed collapse into one row, mean ± sample std (ddof=1), `n_seeds`;
- the output is deterministic: rows sorted by a stable key, fixed float formats, fixed bootstrap RNG seed, no
  timestamps, so re-running on the same outputs gives byte-identical md/csv/tex.

pandas and matplotlib are imported inside functions so that `slmexp --help` and this module's import stay fast.

Usage: `python -m slmexp.report DIR [--baseline NAME] [--out DIR] [--caption TEXT]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slmexp.record import RECORD_NAME, flatten, load

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger("slmexp.report")

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CI_LEVEL = 0.95
SVG_HASHSALT = "slmexp-report"
# Config subtrees that say where or how a run was logged, not what was measured: ignored when deciding whether
# two runs "differ only by seed".
_IGNORED_CONFIG = ("paths", "logger")

# Identity columns: what the row is.
ID_COLUMNS = ["label", "task", "model", "role", "params_b", "adapter", "quantization", "runtime", "variant",
              "seed", "n_seeds", "status", "error", "n", "metric"]
# Measured columns: averaged over seeds, each followed by `<name>_std` in the DataFrame/CSV.
MEASURED = ["accuracy", "retained_pct", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "decode_tok_s",
            "requests_per_s", "peak_rss_mb", "eval_ms_per_example", "usd_per_1k_req", "usd_per_1m_tok",
            "usd_per_1k_correct", "speedup", "cost_ratio", "mcnemar_b", "mcnemar_c"]
# Columns that are not averaged: constant over seeds, or computed once for the whole row.
SINGLE = ["ci95_low", "ci95_high", "size_mb", "n_paired", "mcnemar_p"]

# Meaning and unit of every column (the Markdown caption and the CLI's --help draw on this).
COLUMN_DOC: dict[str, str] = {
    "label": "short run label model[+adapter][/quantization]@runtime",
    "task": "task name", "model": "model name", "role": "slm or baseline",
    "params_b": "parameters (billions)", "adapter": "fine-tuning adapter (none = zero-shot)",
    "quantization": "quantization served (GGUF type, bitsandbytes scheme, or none)", "runtime": "inference runtime",
    "variant": "config keys that tell apart rows with the same label",
    "seed": "seed(s) of the runs in the row", "n_seeds": "runs collapsed into the row",
    "status": "finished / failed / running (a killed run stays running)", "error": "failed stage: exception type",
    "n": "test examples scored", "metric": "primary metric of the task",
    "accuracy": "the task's primary metric (0-1; `metric` names it: exact_match, f1, field_f1, acc, ...); mean over "
                "seeds",
    "ci95_low": "percentile-bootstrap 95% CI of accuracy, lower end (2000 resamples of test examples)",
    "ci95_high": "upper end of that CI",
    "retained_pct": "accuracy / baseline accuracy × 100 (%)",
    "latency_p50_ms": "end-to-end latency per request, median (ms, 1 request at a time)",
    "latency_p95_ms": "end-to-end latency per request, 95th percentile (ms)",
    "ttft_p50_ms": "time to first token, median (ms)",
    "decode_tok_s": "decode speed after the first token, median (tokens/s)",
    "requests_per_s": "sequential throughput of the speed stage (requests/s)",
    "peak_rss_mb": "peak resident memory of the run's process (MiB)",
    "eval_ms_per_example": "wall time of the batched accuracy pass / n (ms per example; not a latency)",
    "size_mb": "weights on disk (MB = 1e6 bytes): the served GGUF or ONNX export if any, else the model checkpoint",
    "usd_per_1k_req": "cost per 1,000 requests (USD)", "usd_per_1m_tok": "cost per 1M tokens (USD)",
    "usd_per_1k_correct": "cost of 1,000 correct answers = $/1k requests / accuracy (USD; for F1-type metrics, "
                          "per 1,000 F1-weighted answers)",
    "speedup": "baseline latency p50 / row latency p50 (>1 = faster than baseline)",
    "cost_ratio": "row $/1k requests / baseline $/1k requests (<1 = cheaper than baseline)",
    "n_paired": "test examples shared with the baseline run (matched by id)",
    "mcnemar_b": "paired examples the row gets right and the baseline wrong",
    "mcnemar_c": "paired examples the row gets wrong and the baseline right",
    "mcnemar_p": "two-sided exact McNemar p-value vs the baseline (binomial on b, c; max over seeds)",
}

# Markdown: (column, header, format); a measured column shows "mean ± std" when the row has several seeds.
_MD_COLUMNS: list[tuple[str, str, str]] = [
    ("model", "model", "s"), ("role", "role", "s"), ("params_b", "params (B)", "g"), ("adapter", "adapter", "s"),
    ("quantization", "quant", "s"), ("runtime", "runtime", "s"), ("variant", "variant", "s"),
    ("seed", "seed", "s"), ("n_seeds", "n_seeds", "d"), ("status", "status", "s"), ("n", "n", "d"),
    ("accuracy", "accuracy", ".3f"), ("ci95", "95% CI", ".3f"), ("retained_pct", "retained %", ".1f"),
    ("latency_p50_ms", "latency p50 (ms)", ".0f"), ("latency_p95_ms", "latency p95 (ms)", ".0f"),
    ("decode_tok_s", "decode tok/s", ".1f"), ("peak_rss_mb", "peak RSS (MiB)", ".0f"),
    ("size_mb", "size (MB)", ".0f"), ("usd_per_1k_req", "$/1k req", ".4g"),
    ("usd_per_1k_correct", "$/1k correct", ".4g"), ("speedup", "speed-up ×", ".2f"),
    ("cost_ratio", "cost ratio", ".2f"), ("mcnemar_bc", "b/c", "g"), ("mcnemar_p", "McNemar p", ".3g"),
    ("error", "error", "s"),
]
# LaTeX: a compact subset that fits a page width in \footnotesize.
_TEX_COLUMNS: list[tuple[str, str, str]] = [
    ("model", "model", "s"), ("adapter", "adapter", "s"), ("quantization", "quant", "s"),
    ("runtime", "runtime", "s"), ("n", "$n$", "d"), ("accuracy", "acc.", ".3f"), ("ci95", "95\\% CI", ".3f"),
    ("retained_pct", "ret.\\ \\%", ".1f"), ("latency_p50_ms", "p50 (ms)", ".0f"),
    ("decode_tok_s", "tok/s", ".1f"), ("size_mb", "MB", ".0f"), ("usd_per_1k_req", "\\$/1k", ".4g"),
    ("speedup", "speed-up", ".2f"), ("mcnemar_p", "$p$", ".3g"),
]


# ---------------------------------------------------------------------------------------------------------------------
# Reading runs
# ---------------------------------------------------------------------------------------------------------------------


def collect(root: Path) -> list[dict[str, Any]]:
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
    records = []
    for path in paths:
        try:
            rec = load(path)
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


def _load_samples(rec: dict[str, Any], metric: str | None) -> dict[str, float] | None:
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


def _quant_name(rec: dict[str, Any]) -> str:
    q = rec.get("quantization") or {}
    if q.get("kind") == "gguf" and q.get("gguf_type"):
        return str(q["gguf_type"])
    return str(q.get("name") or _get(rec, "config", "quantization", "name") or "none")


def _size_mb(rec: dict[str, Any]) -> float | None:
    q = rec.get("quantization") or {}
    nbytes = q.get("bytes") if q.get("kind") in ("gguf", "onnx") else None
    if nbytes is None:
        nbytes = _get(rec, "model", "bytes_on_disk")
    v = _num(nbytes)
    return None if v is None else v / 1e6


def short_label(model: str, adapter: str, quantization: str, runtime: str) -> str:
    """`smollm2-135m+lora/q4_k_m@llamacpp`; `+none` and `/none` are left out."""
    label = model
    if adapter and adapter != "none":
        label += f"+{adapter}"
    if quantization and quantization != "none":
        label += f"/{quantization}"
    return f"{label}@{runtime}"


def _strip_seed(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_seed(v) for k, v in obj.items()
                if not (isinstance(k, str) and (k == "seed" or k.endswith("_seed")))}
    if isinstance(obj, list):
        return [_strip_seed(v) for v in obj]
    return obj


def _config_key(rec: dict[str, Any]) -> dict[str, Any]:
    cfg = rec.get("config") or {}
    ignored = _IGNORED_CONFIG
    if _get(cfg, "adapter", "name") in (None, "none"):  # no training stage: its settings changed nothing
        ignored = (*ignored, "train")
    return _strip_seed({k: v for k, v in cfg.items() if k not in ignored})


def _run_info(rec: dict[str, Any]) -> dict[str, Any]:
    """Everything one record contributes, before seeds are collapsed and the baseline is known."""
    cfg = rec.get("config") or {}
    model = rec.get("model") or {}
    run = rec.get("run") or {}
    metrics = rec.get("metrics") or {}
    speed = rec.get("speed") or {}
    cost = rec.get("cost") or {}
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
    err = run.get("error") or {}
    finished = status == "finished"
    primary = metrics.get("primary") or _get(cfg, "task", "primary_metric")
    acc = _num(_get(metrics, "values", primary)) if finished and primary else None
    samples = _load_samples(rec, primary) if finished else None
    if acc is None and samples:
        acc = sum(samples.values()) / len(samples)
    n = metrics.get("n_examples") if finished else None
    examples = _num(n)
    eval_wall = _num(speed.get("eval_wall_s"))
    usd_1k = _num(cost.get("usd_per_1k_requests")) if finished else None
    remote = bool(model.get("endpoint"))

    def sp(*keys: str) -> float | None:
        return _num(_get(speed, *keys)) if finished else None

    measured = {
        "accuracy": acc,
        "latency_p50_ms": sp("latency_ms", "p50"), "latency_p95_ms": sp("latency_ms", "p95"),
        "ttft_p50_ms": sp("ttft_ms", "p50"), "decode_tok_s": sp("decode_tokens_per_s", "p50"),
        # a remote endpoint's memory is the server's, not this client's: not measured, so an empty cell
        "requests_per_s": sp("requests_per_s"), "peak_rss_mb": None if remote else sp("peak_rss_mb"),
        "eval_ms_per_example": (1000 * eval_wall / examples) if finished and eval_wall and examples else None,
        "usd_per_1k_req": usd_1k,
        "usd_per_1m_tok": _num(cost.get("usd_per_1m_output_tokens")) if finished else None,
        "usd_per_1k_correct": usd_1k / acc if usd_1k is not None and acc else None,
    }
    return {
        "task": str(metrics.get("task") or _get(cfg, "task", "name") or "?"),
        "model": name,
        "role": str(model.get("role") or _get(cfg, "model", "role") or "?"),
        "params_b": _num(model.get("params_b") if model else _get(cfg, "model", "params_b")),
        "adapter": adapter, "quantization": quant, "runtime": runtime,
        "seed": seed, "status": status,
        "error": f"{err.get('stage')}: {err.get('type')}" if err else "",
        "n": int(n) if isinstance(n, int | float) and not isinstance(n, bool) else None,
        "metric": str(primary or ""),
        # a failed run may not have reached quantization; an endpoint's weights are not on this disk
        "size_mb": _size_mb(rec) if finished and not remote else None,
        "measured": measured,
        "samples": samples,
        "config": _config_key(rec),
        "dir": str(rec.get("_rel") or rec.get("_dir") or run.get("run_dir") or ""),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------------------------------


def bootstrap_ci(values: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, level: float = CI_LEVEL,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """Percentile bootstrap CI of the mean, resampling test examples with a fixed RNG so reports are reproducible.

    Args:
        values: per-example scores (0/1 for exact match, or seed-averaged scores).
        resamples: bootstrap resamples.
        level: coverage of the interval.
        seed: seed of numpy's default_rng.

    Returns:
        (low, high), or None for an empty input.
    """
    import numpy as np

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2
    low, high = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: a binomial(b + c, 1/2) test on the discordant pairs.

    The exact form (not the chi-square approximation) because small models and small eval limits give few
    discordant pairs. p = min(1, 2 * P[X <= min(b, c)]), X ~ Bin(b + c, 1/2); p = 1 when there is no discordant pair.

    Args:
        b: pairs the row gets right and the baseline wrong.
        c: pairs the row gets wrong and the baseline right.

    Returns:
        The p-value.
    """
    n = b + c
    if n == 0:
        return 1.0
    try:
        from scipy.stats import binomtest
    except ImportError:
        tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
        return min(1.0, 2 * tail / 2**n)
    return float(min(1.0, binomtest(min(b, c), n, 0.5, alternative="two-sided").pvalue))


def _paired(row: dict[str, float], base: dict[str, float]) -> tuple[int, int, int] | None:
    """(n paired, b, c) over the ids both runs scored; None unless both are per-example 0/1 scores."""
    ids = sorted(set(row) & set(base))
    if not ids or any(row[i] not in (0.0, 1.0) or base[i] not in (0.0, 1.0) for i in ids):
        return None
    b = sum(1 for i in ids if row[i] == 1.0 and base[i] == 0.0)
    c = sum(1 for i in ids if row[i] == 0.0 and base[i] == 1.0)
    return len(ids), b, c


def _mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
    return mean, math.sqrt(var)


# ---------------------------------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------------------------------


def _group(infos: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Runs whose config (seed and paths aside) and status agree form one row; failed seeds get their own row."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for info in infos:
        key = json.dumps([info["status"], info["config"]], sort_keys=True, default=str)
        groups.setdefault(key, []).append(info)
    out = []
    for runs in groups.values():
        runs.sort(key=lambda r: (str(r["seed"]), r["dir"]))
        out.append(runs)
    return out


# Config keys most likely to explain why two rows with the same label differ, tried first.
_VARIANT_PRIORITY = ("eval.limit", "train.max_steps", "train.num_train_epochs", "train.learning_rate", "adapter.",
                     "quantization.", "runtime.", "model.", "task.", "eval.", "train.", "cost.")


def _variant_order(key: str, everywhere: bool) -> tuple:
    rank = next((i for i, p in enumerate(_VARIANT_PRIORITY) if key == p or (p.endswith(".") and key.startswith(p))),
                len(_VARIANT_PRIORITY))
    return (not everywhere, rank, key)


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _variants(groups: list[list[dict[str, Any]]]) -> list[str]:
    """For rows sharing a label, the config keys whose values differ between them (e.g. `train.max_steps=24`).

    Keys set in every config of the set come first (a real difference), keys only some configs have (records
    from an older config layout) last; at most three are shown.
    """
    ident = [(g[0]["task"], g[0]["model"], g[0]["adapter"], g[0]["quantization"], g[0]["runtime"]) for g in groups]
    flats = [flatten(g[0]["config"]) for g in groups]
    variants = [""] * len(groups)
    for key in sorted(set(ident)):
        members = [i for i, k in enumerate(ident) if k == key]
        if len(members) < 2:
            continue
        keys = {k for i in members for k in flats[i]}
        differ = [k for k in keys if len({json.dumps(flats[i].get(k, "-"), default=str) for i in members}) > 1]
        differ.sort(key=lambda k: _variant_order(k, all(k in flats[i] for i in members)))
        for i in members:
            parts = [f"{k}={_show(flats[i].get(k, '-'))}" for k in differ[:3]]
            if len(differ) > 3:
                parts.append(f"+{len(differ) - 3} more")
            variants[i] = ", ".join(parts)
    return variants


def _sort_key(row: dict[str, Any]) -> tuple:
    return (row["task"], row["role"] != "baseline", row["model"], row["adapter"], row["quantization"],
            row["runtime"], row["variant"], row["status"], row["seed"], row["_dirs"])


def _pick_baseline(rows: list[dict[str, Any]], task: str, baseline: str | None) -> dict[str, Any] | None:
    cands = [r for r in rows if r["task"] == task and r["status"] == "finished" and r["accuracy"] is not None]
    if baseline is not None:
        cands = [r for r in cands if baseline in (r["model"], r["label"])]
        cands.sort(key=lambda r: (r["adapter"] != "none", r["quantization"] != "none", _sort_key(r)))
    else:
        cands = [r for r in cands if r["role"] == "baseline"]
    return cands[0] if cands else None


def build_table(records: list[dict[str, Any]], baseline: str | None = None) -> pd.DataFrame:
    """One row per run (seeds collapsed) with accuracy, its CI, speed, size, cost and the comparison to a baseline.

    Args:
        records: run records, as `collect` returns them (`_dir` is needed to find samples.jsonl).
        baseline: model name (or short label) of the baseline row; default: the first finished run whose
            `model.role` is `baseline`. Chosen per task. Without one the relative columns stay empty.

    Returns:
        A DataFrame with ID_COLUMNS, each MEASURED column followed by `<name>_std` (NaN for one seed), the
        SINGLE columns, `is_baseline` and `run_dirs`. Unmeasured values are NaN (empty cells), never 0.
    """
    import pandas as pd

    infos = [_run_info(r) for r in records]
    groups = _group(infos)
    variants = _variants(groups)
    rows: list[dict[str, Any]] = []
    for runs, variant in zip(groups, variants, strict=True):
        first = runs[0]
        seeds = sorted({str(r["seed"]) for r in runs if r["seed"] is not None}, key=lambda s: (len(s), s))
        row = {k: first[k] for k in ("task", "model", "role", "params_b", "adapter", "quantization", "runtime",
                                      "status", "error", "metric")}
        row.update(label=short_label(first["model"], first["adapter"], first["quantization"], first["runtime"]),
                   variant=variant, seed=",".join(seeds), n_seeds=len(runs), n=first["n"],
                   size_mb=first["size_mb"], _runs=runs, _dirs=";".join(r["dir"] for r in runs))
        row["accuracy"] = _mean_std(r["measured"]["accuracy"] for r in runs)[0]
        rows.append(row)
    rows.sort(key=_sort_key)

    for task in sorted({r["task"] for r in rows}):
        base = _pick_baseline(rows, task, baseline)
        if baseline is not None and base is None:
            log.warning("baseline %r: no finished run of task %s", baseline, task)
        base_lat = _mean_std(r["measured"]["latency_p50_ms"] for r in base["_runs"])[0] if base else None
        base_cost = _mean_std(r["measured"]["usd_per_1k_req"] for r in base["_runs"])[0] if base else None
        base_samples = base["_runs"][0]["samples"] if base else None
        for row in rows:
            if row["task"] != task:
                continue
            row["is_baseline"] = row is base
            _fill_row(row, base, base_lat, base_cost, base_samples)

    table = []
    for row in rows:
        out = {c: row.get(c) for c in ID_COLUMNS}
        for c in MEASURED:
            out[c], out[f"{c}_std"] = row["_agg"].get(c, (None, None))
        for c in SINGLE:
            out[c] = row.get(c)
        out["is_baseline"] = row["is_baseline"]
        out["run_dirs"] = row["_dirs"]
        table.append(out)
    columns = [*ID_COLUMNS, *[x for c in MEASURED for x in (c, f"{c}_std")], *SINGLE, "is_baseline", "run_dirs"]
    df = pd.DataFrame(table, columns=columns)
    for c in columns:
        if c in ("params_b", "n", "n_seeds") or c in MEASURED or c.endswith("_std") or c in SINGLE:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df["n_seeds"] = df["n_seeds"].astype("int64")
    return df


def _fill_row(row: dict[str, Any], base: dict[str, Any] | None, base_lat: float | None, base_cost: float | None,
              base_samples: dict[str, float] | None) -> None:
    """Per-run relative values against the baseline, then mean ± std over the row's seeds; CI and McNemar."""
    runs = row["_runs"]
    base_acc = base["accuracy"] if base else None
    per_run: list[dict[str, float | None]] = []
    pvalues, paired_n = [], []
    for run in runs:
        m = dict(run["measured"])
        acc, lat, cost = m["accuracy"], m["latency_p50_ms"], m["usd_per_1k_req"]
        m["retained_pct"] = 100 * acc / base_acc if acc is not None and base_acc else None
        m["speedup"] = base_lat / lat if base_lat is not None and lat else None
        m["cost_ratio"] = cost / base_cost if cost is not None and base_cost else None
        m["mcnemar_b"] = m["mcnemar_c"] = None
        if base is not None and row is not base and run["samples"] and base_samples:
            pair = _paired(run["samples"], base_samples)
            if pair is not None:
                n_pair, b, c = pair
                m["mcnemar_b"], m["mcnemar_c"] = float(b), float(c)
                pvalues.append(mcnemar_exact(b, c))
                paired_n.append(n_pair)
        per_run.append(m)
    row["_agg"] = {c: _mean_std(m.get(c) for m in per_run) for c in MEASURED}
    row["mcnemar_p"] = max(pvalues) if pvalues else None
    row["n_paired"] = min(paired_n) if paired_n else None
    # CI over test examples of the seed-averaged per-example score (ids every seed scored).
    row["ci95_low"] = row["ci95_high"] = None
    if row["status"] == "finished" and all(r["samples"] for r in runs):
        ids = sorted(set.intersection(*(set(r["samples"]) for r in runs)))
        ci = bootstrap_ci([sum(r["samples"][i] for r in runs) / len(runs) for i in ids]) if ids else None
        if ci is not None:
            row["ci95_low"], row["ci95_high"] = ci


# ---------------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------------


def _isnum(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _fmt(v: Any, spec: str) -> str:
    if spec == "s":
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
    if not _isnum(v):
        return ""
    if spec == "d":
        return str(round(v))
    if spec == "g":
        return f"{v:.4g}"
    return format(v, spec)


def _cells(row: dict[str, Any], columns: list[tuple[str, str, str]], pm: str) -> list[str]:
    out = []
    for col, _header, spec in columns:
        if col == "ci95":
            lo, hi = row["ci95_low"], row["ci95_high"]
            out.append(f"[{_fmt(lo, spec)}, {_fmt(hi, spec)}]" if _isnum(lo) and _isnum(hi) else "")
        elif col == "mcnemar_bc":
            b, c = row["mcnemar_b"], row["mcnemar_c"]
            out.append(f"{_fmt(b, 'g')}/{_fmt(c, 'g')}" if _isnum(b) and _isnum(c) else "")
        else:
            cell = _fmt(row[col], spec)
            std = row.get(f"{col}_std")
            if cell and _isnum(std):
                cell += f"{pm}{_fmt(std, spec)}"
            out.append(cell)
    return out


def _caption(df: pd.DataFrame, caption: str | None) -> str:
    """Caption text: what was evaluated, n per run, the baseline and the statistics used (no timestamps)."""
    parts = [caption.strip()] if caption else []
    tasks = sorted(set(df["task"]))
    metrics = sorted({m for m in df["metric"] if m})
    ns = [(lab, int(n)) for lab, n in zip(df["label"], df["n"], strict=True) if _isnum(n)]
    if ns and len({n for _, n in ns}) == 1:
        n_text = f"n = {ns[0][1]} test examples for every run with results"
    elif ns:
        n_text = "n (test examples) per run: " + ", ".join(f"{lab} {n}" for lab, n in ns)
    else:
        n_text = "no run has results"
    base = df[df["is_baseline"]]
    base_text = ("baseline: " + ", ".join(f"{lab} ({t})" for lab, t in zip(base["label"], base["task"], strict=True))
                 if len(base) else "no baseline run, so the relative columns are empty")
    parts.append(f"Task {', '.join(tasks)}; accuracy = {', '.join(metrics) or 'primary metric'} (0-1); {n_text}; "
                 f"{base_text}.")
    parts.append(
        "Accuracy is the mean over seeds ± sample std when n_seeds > 1; 95% CI: percentile bootstrap over test "
        f"examples ({BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}). retained % = accuracy / baseline "
        "accuracy × 100. Latency: end-to-end per request, one at a time (ms); decode tok/s: median tokens/s after "
        "the first token; peak RSS in MiB; size in MB (1e6 bytes) of the served GGUF or ONNX export, else the "
        "checkpoint. $/1k req: "
        "USD per 1,000 requests; $/1k correct = $/1k req / accuracy. speed-up = baseline latency p50 / row latency "
        "p50; cost ratio = row $/1k req / baseline $/1k req. b/c: paired examples the row gets right and the "
        "baseline wrong / the reverse; McNemar p: two-sided exact test on b, c (examples matched by id; largest p "
        "over seeds). Empty cell = not measured (failed run, no speed stage, no cost recorded)."
    )
    return " ".join(parts)


def to_markdown(df: pd.DataFrame, caption: str | None = None) -> str:
    """The table as GitHub Markdown with its caption paragraph above (no tabulate dependency)."""
    headers = [h for _c, h, _s in _MD_COLUMNS]
    lines = [f"**Comparison.** {_caption(df, caption)}", "", "| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if s == "s" else "---:" for _c, _h, s in _MD_COLUMNS) + "|"]
    for row in df.to_dict("records"):
        cells = [c.replace("|", "\\|") for c in _cells(row, _MD_COLUMNS, " ± ")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$",
                "×": r"$\times$", "<": r"$<$", ">": r"$>$"}


def tex_escape(text: str) -> str:
    """Escape LaTeX specials (underscores in model names above all)."""
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(df: pd.DataFrame, caption: str | None = None, label: str = "tab:slmexp-comparison") -> str:
    """A booktabs table (needs `\\usepackage{booktabs}`) with a compact column set, caption and label."""
    cols = _TEX_COLUMNS
    spec = "".join("l" if s == "s" else "r" for _c, _h, s in cols)
    lines = [
        "% slmexp comparison table; needs \\usepackage{booktabs}",
        "\\begin{table}[t]",
        "\\centering",
        "\\footnotesize",
        "\\setlength{\\tabcolsep}{3pt}",
        f"\\caption{{{tex_escape(_caption(df, caption))}}}",
        f"\\label{{{label}}}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(h for _c, h, _s in cols) + " \\\\",
        "\\midrule",
    ]
    for row in df.to_dict("records"):
        cells = [tex_escape(c) for c in _cells(row, cols, " ± ")]
        if row["is_baseline"]:
            cells[0] += " (baseline)"
        if row["status"] != "finished":
            cells[0] += f" ({tex_escape(row['status'])})"
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def to_csv(df: pd.DataFrame) -> str:
    """All columns, empty cells for missing values, floats as %.6g, '\\n' line ends."""
    return df.to_csv(index=False, float_format="%.6g", na_rep="", lineterminator="\n")


# ---------------------------------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------------------------------


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of non-dominated points (lower x and higher y are better), in increasing x.

    A point is dominated when another has x <= its x and y >= its y, one of them strictly.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _plot(df: pd.DataFrame, xcol: str, xlabel: str, title: str, missing: str, out: Path) -> list[Path]:
    """Accuracy (with CI bars) against `xcol`, Pareto front dashed, baseline a red star; PNG + SVG.

    Fixed margins rather than constrained layout: point labels may run past the axes and must not squeeze them.
    """
    import matplotlib
    from matplotlib.figure import Figure

    records = df.to_dict("records")
    rows = [r for r in records if _isnum(r[xcol]) and _isnum(r["accuracy"])]
    skipped = sorted({r["label"] for r in records if not (_isnum(r[xcol]) and _isnum(r["accuracy"]))})
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASHSALT, "svg.fonttype": "path", "font.size": 9}):
        fig = Figure(figsize=(8.0, 5.5), dpi=120)
        fig.subplots_adjust(left=0.09, right=0.97, top=0.93, bottom=0.17)
        ax = fig.add_subplot()
        ax.set_ylim(-0.02, 1.02)
        if rows:
            xs = [r[xcol] for r in rows]
            ys = [r["accuracy"] for r in rows]
            lo = [max(0.0, y - r["ci95_low"]) if _isnum(r["ci95_low"]) else 0.0 for y, r in zip(ys, rows, strict=True)]
            hi = [max(0.0, r["ci95_high"] - y) if _isnum(r["ci95_high"]) else 0.0
                  for y, r in zip(ys, rows, strict=True)]
            is_base = [bool(r["is_baseline"]) for r in rows]
            for flag, marker, color, size, name in ((False, "o", "tab:blue", 40, "run (bars: 95% CI)"),
                                                    (True, "*", "tab:red", 200, "baseline")):
                idx = [i for i, b in enumerate(is_base) if b == flag]
                if not idx:
                    continue
                ax.errorbar([xs[i] for i in idx], [ys[i] for i in idx],
                            yerr=[[lo[i] for i in idx], [hi[i] for i in idx]], fmt="none", ecolor=color,
                            alpha=0.6, capsize=3, lw=1)
                ax.scatter([xs[i] for i in idx], [ys[i] for i in idx], marker=marker, s=size, color=color,
                           zorder=3, label=name)
            front = pareto_front(list(zip(xs, ys, strict=True)))
            ax.plot([xs[i] for i in front], [ys[i] for i in front], ls="--", color="tab:green", lw=1.2,
                    marker="o", markersize=12, markerfacecolor="none", zorder=2,
                    label="Pareto front (higher accuracy, lower x)")
            positive = [x for x in xs if x > 0]
            if positive and len(positive) == len(xs) and max(positive) / min(positive) > 20:
                ax.set_xscale("log")
            ax.margins(x=0.15)
            labels = [r["label"] for r in rows]
            to_axes = ax.transData + ax.transAxes.inverted()
            for i, r in enumerate(rows):
                text = r["label"]
                if labels.count(text) > 1 and r["variant"]:
                    text += f" [{r['variant'].split(', ')[0]}]"
                if r["n_seeds"] > 1:
                    text += f" ({r['n_seeds']} seeds)"
                right = to_axes.transform((xs[i], ys[i]))[0] > 0.6
                ann = ax.annotate(text, (xs[i], ys[i]), xytext=(-6 if right else 6, 6 + 9 * (i % 3)),
                                  textcoords="offset points", fontsize=7, ha="right" if right else "left")
                ann.set_in_layout(False)
            ax.legend(loc="upper right", fontsize=7)
        else:
            ax.text(0.5, 0.5, missing, ha="center", va="center", transform=ax.transAxes)
            title = f"{title}: {missing}"
        if skipped and rows:
            fig.text(0.01, 0.01, "not plotted (no value): " + ", ".join(skipped), fontsize=6, ha="left",
                     va="bottom", wrap=True)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (primary metric, 0-1)")
        ax.grid(True, alpha=0.3)
        ax.set_title(title)
        paths = [out.with_suffix(".png"), out.with_suffix(".svg")]
        fig.savefig(paths[0], format="png", metadata={"Software": None})
        fig.savefig(paths[1], format="svg", metadata={"Date": None})
    return paths


# ---------------------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="\n")
    return path


def write_report(root: Path, out_dir: Path | None = None, baseline: str | None = None,
                 caption: str | None = None) -> dict[str, Path]:
    """Build the comparison from every run.json below `root` and write tables and plots.

    Args:
        root: a sweep dir or an outputs dir.
        out_dir: where to write (created if needed); default: `root` itself, so a sweep dir holds its report.
        baseline: model name (or short label) of the baseline; default: the run whose model role is baseline.
        caption: text put in front of the generated caption.

    Returns:
        {"md", "csv", "tex", "accuracy_vs_latency_png", ..._svg, "accuracy_vs_cost_png", ..._svg} -> path.
    """
    root = Path(root)
    out = Path(out_dir) if out_dir is not None else root
    out.mkdir(parents=True, exist_ok=True)
    records = collect(root)
    df = build_table(records, baseline=baseline)
    paths = {
        "md": _write(out / "comparison.md", to_markdown(df, caption)),
        "csv": _write(out / "comparison.csv", to_csv(df)),
        "tex": _write(out / "comparison.tex", to_latex(df, caption)),
    }
    has_cost = bool(df["usd_per_1k_req"].notna().any())
    plots = [
        ("accuracy_vs_latency", "latency_p50_ms", "latency p50 per request (ms)", "Accuracy vs latency",
         "no run has a latency measurement (speed stage off or runs failed)"),
        ("accuracy_vs_cost", "usd_per_1k_req", "cost per 1,000 requests (USD)", "Accuracy vs cost",
         "no cost recorded" if not has_cost else "no run with both cost and accuracy"),
    ]
    for name, xcol, xlabel, title, missing in plots:
        png, svg = _plot(df, xcol, xlabel, title, missing, out / name)
        paths[f"{name}_png"], paths[f"{name}_svg"] = png, svg
    from slmexp.router import write_router_report

    paths.update(write_router_report(records, out))  # router runs: a row per threshold and the accuracy-cost curve
    return paths


def main(argv: list[str] | None = None) -> int:
    """`python -m slmexp.report DIR [--baseline NAME] [--out DIR] [--caption TEXT]`: print the table, write files."""
    parser = argparse.ArgumentParser(
        prog="python -m slmexp.report",
        description="Compare slmexp runs: Markdown/CSV/LaTeX tables and accuracy-vs-latency/cost plots from the "
                    "run.json files below DIR.",
    )
    parser.add_argument("dir", type=Path, help="a sweep dir or outputs dir (searched recursively for run.json)")
    parser.add_argument("--baseline", help="model name or short label of the baseline (default: role=baseline)")
    parser.add_argument("--out", type=Path, help="output dir (default: DIR)")
    parser.add_argument("--caption", help="text put in front of the table caption")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        print(f"slmexp report: error: {args.dir} is not a directory", file=sys.stderr)
        return 2
    if not collect(args.dir):
        print(f"slmexp report: error: no {RECORD_NAME} below {args.dir}", file=sys.stderr)
        return 1
    paths = write_report(args.dir, args.out, args.baseline, args.caption)
    print(paths["md"].read_text(encoding="utf-8"))
    for key, path in paths.items():
        print(f"{key}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
