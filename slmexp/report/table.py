"""The comparison table: runs grouped into rows (seeds collapsed), a baseline picked per task, relative columns.

Why apart: this is the one place that decides what a row is and what it is compared against. It takes the per-run
dicts of `collect._run_info` and returns a DataFrame; the renderers and plots only read that DataFrame.

Rules the table keeps:
- a value that was not measured is an empty cell (NaN), never a zero;
- runs whose resolved configs differ only by seed collapse into one row, mean ± sample std (ddof=1), `n_seeds`;
  runs whose weights differ (model sha256, weights provenance) never do;
- what a row may say next to its baseline, and with what interval, is compare.py's business;
- rows sort by a stable key, so re-running on the same outputs gives the same table.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from slmexp.record import flatten
from slmexp.report.collect import CollectedRun, _run_info, selection_text
from slmexp.report.compare import RELATIVE, apply_holm, fill_row
from slmexp.report.stats import mean_std

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger("slmexp.report")

# Identity columns: what the row is.
ID_COLUMNS = ["label", "task", "split", "model", "weights_provenance", "role", "params_b", "adapter", "quantization",
              "runtime", "decoding", "formulation", "variant", "seed", "n_seeds", "status", "error", "n", "metric"]
# Measured columns: averaged over seeds, each followed by `<name>_std` in the DataFrame/CSV.
MEASURED = ["accuracy", "strict_match", "validity", "accuracy_delta", "retained_pct", "latency_p50_ms",
            "latency_p95_ms", "ttft_p50_ms", "decode_tok_s", "requests_per_s", "peak_rss_mb", "rss_at_load_mb",
            "eval_ms_per_example",
            "usd_per_1k_req", "usd_per_1m_tok", "usd_per_1k_correct", "speedup", "cost_ratio", "cost_per_correct_ratio"]
# Columns that are not averaged: constant over seeds, or computed once for the whole row.
SINGLE = ["ci95_low", "ci95_high", "size_mb", "f16_mb", "n_paired", "mcnemar_b", "mcnemar_c", "mcnemar_p",
          "mcnemar_p_holm",
          *[f"{c}_ci95_{end}" for c in RELATIVE for end in ("low", "high")]]
# Text/flag columns: how a figure was obtained or why it is missing (empty = not recorded).
NOTES = ["ci_method", "contended", "selection", "usd_per_1k_correct_note", "compare_note", "results_sha256",
         "outputs_sha256"]

# Meaning and unit of every column (the Markdown caption and the CLI's --help draw on this).
COLUMN_DOC: dict[str, str] = {
    "label": "short run label model[+adapter][/quantization]@runtime",
    "task": "task name", "split": "data split every figure of the row comes from (metrics.split)",
    "model": "model name", "role": "slm or baseline",
    "weights_provenance": "where the weights came from when not the real checkpoint (e.g. dequantized from GGUF "
                          "Q4_1); shown with the model",
    "params_b": "parameters (billions)", "adapter": "fine-tuning adapter (none = zero-shot)",
    "quantization": "quantization served (GGUF type, bitsandbytes scheme, or none)", "runtime": "inference runtime",
    "decoding": "free, or constrained: output forced into the task's answer space (decoding group)",
    "formulation": "generate (answer generated, then parsed) or choice (likeliest label by log-likelihood)",
    "validity": "share of answers in the answer space: valid_label, json_valid or valid_call by task kind; mean "
                "over seeds",
    "variant": "config keys that tell apart rows with the same label",
    "seed": "seed(s) of the runs in the row", "n_seeds": "runs collapsed into the row",
    "status": "finished / failed / running (a killed run stays running)", "error": "failed stage: exception type",
    "n": "test examples scored", "metric": "primary metric of the task",
    "accuracy": "the task's primary metric (0-1; `metric` names it: exact_match, f1, field_f1, acc, ...); mean over "
                "seeds",
    "strict_match": "classification: share of raw first lines that are exactly a label (no extraction); mean over "
                    "seeds",
    "ci95_low": "95% CI of accuracy, lower end: Wilson score interval for 0/1 metrics, percentile bootstrap (2000 "
                "resamples of test examples, seed 0) for others; `ci_method` says which",
    "ci95_high": "upper end of that CI",
    "ci_method": "wilson (0/1 metric) or bootstrap (non-binary metric, e.g. field_f1)",
    "accuracy_delta": "accuracy - baseline accuracy (metric points)",
    "retained_pct": "accuracy / baseline accuracy × 100 (%)",
    "accuracy_delta_ci95_low": "paired-bootstrap 95% CI of accuracy_delta (same resampled example ids for row and "
                               "baseline), lower end",
    "accuracy_delta_ci95_high": "upper end of that CI",
    "retained_pct_ci95_low": "paired-bootstrap 95% CI of retained_pct, lower end",
    "retained_pct_ci95_high": "upper end of that CI",
    "speedup_ci95_low": "paired-bootstrap 95% CI of speedup over the timed requests matched by example id (needs "
                        "speed.requests), lower end",
    "speedup_ci95_high": "upper end of that CI",
    "cost_ratio_ci95_low": "paired-bootstrap 95% CI of cost_ratio over the timed requests (per-request USD, or "
                           "latency on a hardware basis), lower end",
    "cost_ratio_ci95_high": "upper end of that CI",
    "latency_p50_ms": "end-to-end latency per request, median (ms, 1 request at a time)",
    "latency_p95_ms": "end-to-end latency per request, 95th percentile (ms)",
    "ttft_p50_ms": "time to first token, median (ms)",
    "decode_tok_s": "decode speed after the first token, median (tokens/s)",
    "requests_per_s": "sequential throughput of the speed stage (requests/s)",
    "peak_rss_mb": "peak resident memory while serving: load + evaluate + benchmark (MiB)",
    "rss_at_load_mb": "resident memory when loading began, the floor of peak_rss_mb (MiB): imported libraries, and in "
                      "a multirun whose jobs share one process (Hydra's basic launcher) what earlier jobs left",
    "contended": "True when other processes used a meaningful share of the cores while the speed stage ran "
                 "(speed.contended; any seed): its speed figures are not comparable",
    "eval_ms_per_example": "wall time of the batched accuracy pass / n (ms per example; not a latency)",
    "f16_mb": "MB of the F16 GGUF a GGUF export was quantized from (same checkpoint); empty for other rows",
    "size_mb": "weights on disk (MB = 1e6 bytes): the served GGUF or ONNX export if any, else the model checkpoint",
    "usd_per_1k_req": "cost per 1,000 requests (USD)", "usd_per_1m_tok": "cost per 1M tokens (USD)",
    "usd_per_1k_correct": "cost of 1,000 correct answers = $/1k requests / accuracy (USD; for F1-type metrics, "
                          "per 1,000 F1-weighted answers)",
    "usd_per_1k_correct_note": "why $/1k correct is empty although a cost was recorded (no correct answer)",
    "selection": "tuned runs (hpo, router): the configuration was chosen on the validation split; the row's figures "
                 "are on the test split",
    "speedup": "baseline latency p50 / row latency p50 (>1 = faster than baseline)",
    "cost_ratio": "row $/1k requests / baseline $/1k requests (<1 = cheaper than baseline)",
    "cost_per_correct_ratio": "row $ per correct answer / baseline's (agents: $ per solved episode; <1 = cheaper)",
    "n_paired": "test examples shared with the baseline run (matched by id)",
    "mcnemar_b": "paired examples the row gets right and the baseline wrong, summed over the row's seeds",
    "mcnemar_c": "paired examples the row gets wrong and the baseline right, summed over the row's seeds",
    "mcnemar_p": "two-sided exact McNemar p-value vs the baseline on the pooled b, c of every seed (raw)",
    "mcnemar_p_holm": "mcnemar_p Holm-adjusted across the rows of the task's table compared with its baseline",
    "compare_note": "why the relative columns are empty: the row was evaluated on a different example set",
    "results_sha256": "sha256 of the run's attested metrics (RFC 8785 canonical JSON; slmexp.attest), one per seed "
                      "joined by ';'; empty: recorded before attestation",
    "outputs_sha256": "sha256 over every example's raw and extracted answer in generations.jsonl (id order), one per "
                      "seed joined by ';'; `slmexp verify` recomputes both",
}


def short_label(model: str, adapter: str, quantization: str, runtime: str) -> str:
    """`smollm2-135m+lora/q4_k_m@llamacpp`; `+none` and `/none` are left out."""
    label = model
    if adapter and adapter != "none":
        label += f"+{adapter}"
    if quantization and quantization != "none":
        label += f"/{quantization}"
    return f"{label}@{runtime}"


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
_VARIANT_PRIORITY = ("weights.", "eval.limit", "train.max_steps", "train.num_train_epochs", "train.learning_rate",
                     "adapter.", "quantization.", "runtime.", "model.", "task.", "eval.", "train.", "cost.")


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
    ident = [(g[0]["task"], g[0]["model"], g[0]["adapter"], g[0]["quantization"], g[0]["runtime"], g[0]["decoding"],
              g[0]["formulation"]) for g in groups]
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
    return (row["task"], row["role"] != "baseline", row["split"], row["model"], row["weights_provenance"],
            row["adapter"], row["quantization"], row["runtime"], row["decoding"], row["formulation"], row["variant"],
            row["status"], row["seed"], row["_dirs"])


def _pick_baseline(rows: list[dict[str, Any]], task: str, baseline: str | None) -> dict[str, Any] | None:
    cands = [r for r in rows if r["task"] == task and r["status"] == "finished" and r["accuracy"] is not None]
    if baseline is not None:
        cands = [r for r in cands if baseline in (r["model"], r["label"])]
        cands.sort(key=lambda r: (r["adapter"] != "none", r["quantization"] != "none", _sort_key(r)))
    else:
        cands = [r for r in cands if r["role"] == "baseline"]
    return cands[0] if cands else None


def build_table(records: list[CollectedRun], baseline: str | None = None) -> pd.DataFrame:
    """One row per run (seeds collapsed) with accuracy, its CI, speed, size, cost and the comparison to a baseline.

    Args:
        records: run records, as `collect` returns them (`_dir` is needed to find samples.jsonl).
        baseline: model name (or short label) of the baseline row; default: the first finished run whose
            `model.role` is `baseline`. Chosen per task. Without one the relative columns stay empty.

    Returns:
        A DataFrame with ID_COLUMNS, each MEASURED column followed by `<name>_std` (NaN for one seed), the
        SINGLE columns, the NOTES columns (text; `contended` True/False/None), `is_baseline` and `run_dirs`.
        Unmeasured values are NaN or None (empty cells), never 0.
    """
    import pandas as pd

    infos = [_run_info(r) for r in records]
    groups = _group(infos)
    variants = _variants(groups)
    rows: list[dict[str, Any]] = []
    for runs, variant in zip(groups, variants, strict=True):
        first = runs[0]
        seeds = sorted({str(r["seed"]) for r in runs if r["seed"] is not None}, key=lambda s: (len(s), s))
        row = {k: first[k] for k in ("task", "split", "model", "weights_provenance", "role", "params_b", "adapter",
                                      "quantization", "runtime", "decoding", "formulation", "status", "error",
                                      "metric")}
        row.update(label=short_label(first["model"], first["adapter"], first["quantization"], first["runtime"]),
                   variant=variant, seed=",".join(seeds), n_seeds=len(runs), n=first["n"],
                   size_mb=first["size_mb"], f16_mb=first.get("f16_mb"), _runs=runs,
                   _dirs=";".join(r["dir"] for r in runs))
        row["accuracy"] = mean_std(r["measured"]["accuracy"] for r in runs)[0]
        row.update(_notes(runs))
        rows.append(row)
    rows.sort(key=_sort_key)

    for task in sorted({r["task"] for r in rows}):
        base = _pick_baseline(rows, task, baseline)
        if baseline is not None and base is None:
            log.warning("baseline %r: no finished run of task %s", baseline, task)
        base_lat = mean_std(r["measured"]["latency_p50_ms"] for r in base["_runs"])[0] if base else None
        base_cost = mean_std(r["measured"]["usd_per_1k_req"] for r in base["_runs"])[0] if base else None
        mine = [row for row in rows if row["task"] == task]
        for row in mine:
            row["is_baseline"] = row is base
            fill_row(row, base, base_lat, base_cost)
        apply_holm(mine)

    table = []
    for row in rows:
        out = {c: row.get(c) for c in ID_COLUMNS}
        for c in MEASURED:
            out[c], out[f"{c}_std"] = row["_agg"].get(c, (None, None))
        for c in (*SINGLE, *NOTES):
            out[c] = row.get(c)
        out["is_baseline"] = row["is_baseline"]
        out["run_dirs"] = row["_dirs"]
        table.append(out)
    columns = [*ID_COLUMNS, *[x for c in MEASURED for x in (c, f"{c}_std")], *SINGLE, *NOTES, "is_baseline",
               "run_dirs"]
    df = pd.DataFrame(table, columns=columns)
    for c in columns:
        if c in ("params_b", "n", "n_seeds") or c in MEASURED or c.endswith("_std") or c in SINGLE:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df["n_seeds"] = df["n_seeds"].astype("int64")
    return df


def _notes(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Row-level flags and notes from the runs of a row: contended if any seed was, tuned selection, $ note."""
    flags = [r["contended"] for r in runs if r["contended"] is not None]
    selections = sorted({selection_text(r["selection"]) for r in runs if r["selection"]})
    cost_notes = sorted({r["usd_per_correct_note"] for r in runs if r["usd_per_correct_note"]})
    return {"contended": any(flags) if flags else None, "selection": " | ".join(selections),
            "usd_per_1k_correct_note": "; ".join(cost_notes),
            **{key: ";".join(r[key] for r in runs) if any(r[key] for r in runs) else ""
               for key in ("results_sha256", "outputs_sha256")}}
