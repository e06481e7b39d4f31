"""Claims as checks: a sweep file states what it expects of its comparison table, the report says whether it holds.

Why: a write-up that says "the LoRA SLM keeps 92% of the baseline's accuracy at a tenth of the cost" should be
checked against the same table, with its uncertainty, every time the report is built, not copied by hand. So a
sweep file may carry a top-level `claims:` list; Hydra puts it into every job's config, so each run.json holds it
and `slmexp report DIR` re-evaluates the claims from the records alone.

A claim (one list entry):

    id: retains-92pct          # optional; default claim-<n>
    arm: slm-lora              # the row: the `arm=` choice the runs recorded (run.arm), else a row label
    metric: retained_pct       # one of METRICS
    op: ">="                   # >=, >, <=, <
    value: 92                  # threshold, in the metric's unit
    text: keeps >= 92% ...     # optional; what the write-up says
    task: support-intent       # optional; needed when the arm has a row in several tasks
    reference: quant-gguf-f16  # size_reduction_pct only: the row to compare sizes with (default: the baseline);
                               # `f16`: the F16 GGUF the row's own export was made from (its record's f16_bytes)

Verdict: `holds` when the whole 95% CI is on the claimed side of the threshold, `fails` when the whole CI is on
the other side, `inconclusive` when the CI straddles the threshold (or the figure has no CI, or its speed was
measured under contention), `not measured` when the row or the figure is missing (the reason says which). Exact
figures (size on disk) have no CI: the value itself decides. The CIs are the table's own (compare.py): converted
metrics (latency_reduction_pct, cheaper_x) map the CI's ends through the same monotone function as the estimate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slmexp.errors import ConfigError
from slmexp.record_types import RunJson
from slmexp.report.collect import CollectedRun

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED = "holds", "fails", "inconclusive", "not measured"
OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b}
_FLIP = {">=": "<=", ">": "<", "<=": ">=", "<": ">"}
FIELDS = ("id", "arm", "metric", "op", "value", "text", "task", "reference")
F16 = "f16"  # size_reduction_pct's reference: the F16 GGUF the row's export was quantized from


@dataclass(frozen=True)
class Metric:
    """How a claim's metric is read from a table row: its column (and CI columns), and a conversion.

    `convert` maps the column's value into the claim's unit; `increasing` says whether it keeps order (a CI's
    ends swap otherwise); `inverse` maps a threshold back onto the column, to print the equivalent claim.
    """

    column: str
    ci: tuple[str, str] | None
    doc: str
    convert: Callable[[float], float] | None = None
    inverse: Callable[[float], float] | None = None
    increasing: bool = True
    speed: bool = False  # a speed figure: contended rows cannot settle it


def _reduction(s: float) -> float:
    return 100.0 * (1.0 - 1.0 / s)


METRICS: dict[str, Metric] = {
    "accuracy": Metric("accuracy", ("ci95_low", "ci95_high"), "the row's accuracy (0-1), Wilson/bootstrap CI"),
    "accuracy_delta": Metric("accuracy_delta", ("accuracy_delta_ci95_low", "accuracy_delta_ci95_high"),
                             "accuracy - baseline accuracy (points), paired bootstrap CI"),
    "retained_pct": Metric("retained_pct", ("retained_pct_ci95_low", "retained_pct_ci95_high"),
                           "accuracy / baseline accuracy x 100 (%), paired bootstrap CI"),
    "speedup": Metric("speedup", ("speedup_ci95_low", "speedup_ci95_high"),
                      "baseline latency p50 / row latency p50 (x), paired bootstrap CI", speed=True),
    "latency_reduction_pct": Metric(
        "speedup", ("speedup_ci95_low", "speedup_ci95_high"),
        "how much lower the row's latency p50 is than the baseline's (%) = 100 x (1 - 1/speedup)",
        convert=_reduction, inverse=lambda v: 1.0 / (1.0 - v / 100.0) if v < 100 else math.inf, speed=True),
    "cost_ratio": Metric("cost_ratio", ("cost_ratio_ci95_low", "cost_ratio_ci95_high"),
                         "row $/1k requests / baseline $/1k requests, paired bootstrap CI"),
    "cheaper_x": Metric("cost_ratio", ("cost_ratio_ci95_low", "cost_ratio_ci95_high"),
                        "how many times cheaper per 1k requests than the baseline = 1 / cost_ratio",
                        convert=lambda r: 1.0 / r if r > 0 else math.inf,
                        inverse=lambda v: 1.0 / v if v > 0 else math.inf, increasing=False),
    "cheaper_per_correct_x": Metric(
        "cost_per_correct_ratio", ("cost_per_correct_ratio_ci95_low", "cost_per_correct_ratio_ci95_high"),
        "how many times cheaper per correct answer (agents: per solved episode) than the baseline",
        convert=lambda r: 1.0 / r if r > 0 else math.inf, inverse=lambda v: 1.0 / v if v > 0 else math.inf,
        increasing=False),
    "size_reduction_pct": Metric("size_mb", None, "100 x (1 - size / reference size), weights on disk (exact)"),
}
_TABLE_NAMES = {"retained_pct": "retained %", "speedup": "speed-up", "cost_ratio": "cost ratio",
                "cost_per_correct_ratio": "cost per correct ratio"}


def _fail(i: int, field: str, message: str) -> ConfigError:
    return ConfigError(f"claims[{i}].{field}" if field else f"claims[{i}]", message)


def parse(raw: Any) -> list[dict[str, Any]]:
    """The claims list of a config, checked: one ConfigError naming `claims[i].field` for the first bad entry.

    Returns:
        One dict per claim with every field of FIELDS (None when not given); [] for no claims.
    """
    if raw is None:
        return []
    if not isinstance(raw, list | tuple):
        raise ConfigError("claims", f"must be a list of claims, got {type(raw).__name__}")
    out, seen = [], set()
    for i, c in enumerate(raw):
        if not isinstance(c, dict):
            raise _fail(i, "", "must be a mapping with arm, metric, op and value")
        unknown = sorted(set(map(str, c)) - set(FIELDS))
        if unknown:
            raise _fail(i, unknown[0], f"unknown field; known: {', '.join(FIELDS)}")
        for field in ("arm", "metric", "op", "value"):
            if c.get(field) is None:
                raise _fail(i, field, "is required")
        if not isinstance(c["arm"], str) or not c["arm"]:
            raise _fail(i, "arm", f"must be an arm name (or a row label), got {c['arm']!r}")
        if c["metric"] not in METRICS:
            raise _fail(i, "metric", f"unknown metric {c['metric']!r}; one of {', '.join(METRICS)}")
        if c["op"] not in OPS:
            raise _fail(i, "op", f"unknown operator {c['op']!r}; one of {', '.join(OPS)}")
        value = c["value"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _fail(i, "value", f"must be a finite number, got {value!r}")
        if c.get("reference") is not None and c["metric"] != "size_reduction_pct":
            raise _fail(i, "reference", f"only size_reduction_pct takes a reference; {c['metric']} is always "
                                        "against the sweep's baseline row")
        cid = str(c.get("id") or f"claim-{i + 1}")
        if cid in seen:
            raise _fail(i, "id", f"duplicate id {cid!r}")
        seen.add(cid)
        out.append({f: c.get(f) for f in FIELDS} | {"id": cid})
    return out


def _swept_arms(cfg: Any) -> list[str] | None:
    """The arms a Hydra multirun sweeps (`hydra.sweeper.params.arm: a,b,c`); None outside one or for a sweep
    that does not list its arms plainly."""
    try:
        from hydra.core.hydra_config import HydraConfig

        params = HydraConfig.get().sweeper.get("params") or {}
    except Exception:
        return None
    spec = params.get("arm")
    if not isinstance(spec, str) or "(" in spec:
        return None
    return [a.strip() for a in spec.split(",") if a.strip()]


def check_config(cfg: Any) -> None:
    """Config-time check (slmexp.config.validate): the schema, and that each arm named is one the sweep runs."""
    from omegaconf import OmegaConf

    raw = cfg.get("claims")
    raw = OmegaConf.to_container(raw, resolve=True) if OmegaConf.is_config(raw) else raw
    claims = parse(raw)
    arms = _swept_arms(cfg) if claims else None
    for i, c in enumerate(claims):
        for field in ("arm", "reference"):
            if arms and c[field] is not None and c[field] not in arms and not (field == "reference"
                                                                                and c[field] == F16):
                raise _fail(i, field, f"arm {c[field]!r} is not in the sweep (hydra.sweeper.params.arm: "
                                      f"{', '.join(arms)})")


def refresh(record: RunJson, container: dict[str, Any]) -> bool:
    """A finished run relaunched with other claims keeps its results and takes the new claims (the claims are not
    in the fingerprint: they change what is said about the table, not what is measured). Returns True if the
    record changed (the caller saves it)."""
    new = container.get("claims")
    cfg = record.setdefault("config", {})
    if new == cfg.get("claims"):
        return False
    parse(new)  # bad claims fail the relaunched job with the one-line error, leaving the record as it was
    cfg["claims"] = new
    return True


def stated(records: list[CollectedRun]) -> list[dict[str, Any]]:
    """The sweep's claims, read from the records' config. Records without claims say nothing; two records with
    different non-empty blocks are an error (they come from different sweeps, or a partial relaunch)."""
    blocks: dict[str, tuple[Any, str]] = {}
    for rec in records:
        raw = (rec.get("config") or {}).get("claims")
        if raw:
            blocks.setdefault(json.dumps(raw, sort_keys=True, default=str), (raw, str(rec.get("_rel") or "?")))
    if len(blocks) > 1:
        (_a, da), (_b, db) = list(blocks.values())[:2]
        raise ConfigError("claims", f"the runs state {len(blocks)} different claims blocks (e.g. {da} and {db}); "
                                    "report each sweep dir on its own, or relaunch the whole sweep to update them")
    return parse(next(iter(blocks.values()))[0]) if blocks else []


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def _rows_for(name: str, task: str | None, rows: list[dict[str, Any]], arms: dict[str, str]) -> list[dict[str, Any]]:
    """Rows whose runs recorded `arm=name`, else rows labelled `name`; in `task` when given."""
    def arm_of(row: dict[str, Any]) -> set[str]:
        return {arms.get(d, "") for d in str(row.get("run_dirs") or "").split(";")}

    found = [r for r in rows if name in arm_of(r)] or [r for r in rows if r["label"] == name]
    return [r for r in found if task is None or r["task"] == task]


def _pick(name: str, task: str | None, rows: list[dict[str, Any]], arms: dict[str, str]) -> tuple[dict | None, str]:
    found = _rows_for(name, task, rows, arms)
    if not found:
        return None, f"no row for arm {name!r}" + (f" in task {task}" if task else "") + " in the table"
    done = [r for r in found if r["status"] == "finished"]
    if not done:
        return None, f"{name}: no finished run ({', '.join(sorted({r['status'] for r in found}))})"
    if len(done) > 1:
        which = ", ".join(sorted(f"{r['label']} in {r['task']}" for r in done))
        return None, f"{name}: {len(done)} rows match ({which}); name the task (claims[i].task)"
    return done[0], ""


def _verdict(op: str, value: float, est: float, ci: tuple[float, float] | None) -> str:
    if ci is None:
        return HOLDS if OPS[op](est, value) else FAILS
    lo, hi = ci
    inner, outer = (lo, hi) if op in (">=", ">") else (hi, lo)
    if OPS[op](inner, value):
        return HOLDS
    if not OPS[op](outer, value):
        return FAILS
    return INCONCLUSIVE


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.3g}"


def evaluate_one(c: dict[str, Any], rows: list[dict[str, Any]], arms: dict[str, str]) -> dict[str, Any]:
    """One claim's verdict against the table rows (DataFrame records) and the run dir -> arm map."""
    m = METRICS[c["metric"]]
    out = {**c, "claim": c["text"] or f"{c['arm']} {c['metric']} {c['op']} {c['value']:g}",
           "threshold": f"{c['op']} {c['value']:g}", "equivalent": None, "row": None, "against": None,
           "estimate": None, "ci": None, "verdict": NOT_MEASURED, "reason": ""}
    if m.inverse is not None:
        op = c["op"] if m.increasing else _FLIP[c["op"]]
        out["equivalent"] = f"{_TABLE_NAMES[m.column]} {op} {m.inverse(c['value']):.3g}"
    row, why = _pick(c["arm"], c["task"], rows, arms)
    if row is None:
        return out | {"reason": why}
    out["row"] = row["label"]
    base = next((r for r in rows if r["is_baseline"] and r["task"] == row["task"]), None)
    if c["metric"] == "size_reduction_pct" and c["reference"] == F16:
        return out | _vs_own_f16(row, c)
    if c["metric"] == "size_reduction_pct":
        ref, why = _pick(c["reference"], row["task"], rows, arms) if c["reference"] else (base, "no baseline row")
        if ref is None:
            return out | {"reason": f"reference: {why}"}
        out["against"] = ref["label"]
        size, ref_size = _num(row["size_mb"]), _num(ref["size_mb"])
        if size is None or not ref_size:
            return out | {"reason": "size on disk not recorded"}
        est = 100.0 * (1.0 - size / ref_size)
        return out | {"estimate": est, "verdict": _verdict(c["op"], c["value"], est, None),
                      "reason": f"exact: {size:.0f} MB vs {ref_size:.0f} MB"}
    if m.column != "accuracy":
        if base is None:
            return out | {"reason": "no baseline row in the table"}
        out["against"] = base["label"]
        if row is base:
            return out | {"reason": f"{row['label']} is the baseline itself"}
    est = _num(row[m.column])
    if est is None:
        note = row.get("compare_note") or f"{m.column} not measured (no speed stage, no cost, or a failed run)"
        return out | {"reason": str(note)}
    lo, hi = (_num(row[m.ci[0]]), _num(row[m.ci[1]])) if m.ci else (None, None)
    ci = (lo, hi) if lo is not None and hi is not None else None
    if m.convert is not None:
        est = m.convert(est)
        if ci is not None:
            ci = tuple(sorted((m.convert(ci[0]), m.convert(ci[1]))))  # type: ignore[assignment]
    out["estimate"], out["ci"] = est, list(ci) if ci else None
    if ci is None:
        return out | {"verdict": INCONCLUSIVE, "reason": "no 95% CI (the runs kept no per-example or per-request "
                                                         "figures): the point estimate alone does not decide"}
    if m.speed and any(r.get("contended") is True for r in (row, base)):
        return out | {"verdict": INCONCLUSIVE, "reason": "speed measured under contention: not comparable"}
    return out | {"verdict": _verdict(c["op"], c["value"], est, ci), "reason": "95% CI: paired bootstrap"
                  if m.column != "accuracy" else f"95% CI: {row.get('ci_method') or '?'}"}


def evaluate(records: list[CollectedRun], df: pd.DataFrame) -> list[dict[str, Any]]:
    """Every claim the records state, with its verdict, estimate and CI; [] when the sweep states none."""
    claims = stated(records)
    if not claims:
        return []
    arms = {str(r.get("_rel")): str((r.get("run") or {}).get("arm") or "") for r in records}
    rows = df.to_dict("records")
    out = [evaluate_one(c, rows, arms) for c in claims]
    for c in out:  # JSON-friendly and short: 6 decimals are far below any CI's width
        c["estimate"] = None if c["estimate"] is None else round(c["estimate"], 6)
        c["ci"] = None if c["ci"] is None else [round(x, 6) for x in c["ci"]]
    return out


def to_json(claims: list[dict[str, Any]]) -> str:
    return json.dumps({"claims": claims}, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _md(text: Any) -> str:
    return str(text if text is not None else "").replace("|", "\\|")


def to_markdown(claims: list[dict[str, Any]]) -> str:
    """The Claims section under the comparison table ("" when the sweep states no claims)."""
    if not claims:
        return ""
    lines = ["", "**Claims.** Each claim is checked against the 95% CI of its figure: holds = the whole CI is on the "
             "claimed side of the threshold, fails = the whole CI is on the other side, inconclusive = the CI "
             "straddles it (or there is no CI, or the speed was measured under contention); exact figures (size on "
             "disk) are checked on their value. Converted metrics show the equivalent threshold on the table's "
             "column.", "",
             "| id | claim | row | against | verdict | estimate [95% CI] | threshold | note |",
             "|---|---|---|---|---|---:|---|---|"]
    for c in claims:
        est = _fmt(c["estimate"]) + (f" [{_fmt(c['ci'][0])}, {_fmt(c['ci'][1])}]" if c["ci"] else "")
        thr = c["threshold"] + (f" ({c['equivalent']})" if c["equivalent"] else "")
        cells = [c["id"], c["claim"], c["row"] or c["arm"], c["against"] or "", f"**{c['verdict']}**", est, thr,
                 c["reason"]]
        lines.append("| " + " | ".join(_md(x) for x in cells) + " |")
    return "\n".join(lines) + "\n"


TABLE_COLUMNS = ["id", "claim", "arm", "row", "against", "metric", "op", "value", "verdict", "estimate", "ci_low",
                 "ci_high", "equivalent", "reason"]


def table_rows(claims: list[dict[str, Any]]) -> list[list[Any]]:
    """Rows of TABLE_COLUMNS (the wandb sweep run's `claims` table)."""
    return [[c["id"], c["claim"], c["arm"], c["row"] or "", c["against"] or "", c["metric"], c["op"], c["value"],
             c["verdict"], c["estimate"], *(c["ci"] or [None, None]), c["equivalent"] or "", c["reason"]]
            for c in claims]


def _vs_own_f16(row: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
    """size_reduction_pct against the F16 GGUF the row's own GGUF export was made from (exact: bytes on disk)."""
    size, f16 = _num(row.get("size_mb")), _num(row.get("f16_mb"))
    if size is None or not f16:
        return {"reason": "reference f16: the row has no GGUF export with its F16 size recorded"}
    est = 100.0 * (1.0 - size / f16)
    return {"against": "its own F16 GGUF", "estimate": est, "verdict": _verdict(c["op"], c["value"], est, None),
            "reason": f"exact: {size:.0f} MB vs {f16:.0f} MB (the F16 GGUF of the same checkpoint)"}
