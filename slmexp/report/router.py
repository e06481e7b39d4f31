"""The report's router section: SLM-first routing runs as a row per threshold next to SLM-only and LLM-only.

Why here and not in slmexp/router.py: the router stage measures and records (`run.json` `router` block); this
module only reads those records, like the rest of the report. Keeping it out of the stage's module is what lets
slmexp.router and slmexp.report import nothing of each other.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from slmexp.record_types import MetricsBlock, RoutedSystem, RouterBlock
from slmexp.report.collect import CollectedRun, selection_text
from slmexp.report.plots import plot_style, save_png_svg
from slmexp.report.render import write_text
from slmexp.report.stats import wilson_ci

# (column, header, format); "s" columns print as text, booleans as yes/no.
_ROUTER_COLUMNS: list[tuple[str, str, str]] = [
    ("slm", "SLM", "s"), ("llm", "LLM", "s"), ("system", "system", "s"), ("threshold", "threshold", "g"),
    ("split", "split", "s"),
    ("n", "n", "d"), ("accuracy", "accuracy", ".3f"), ("accuracy_ci", "95% CI (Wilson)", "ci"),
    ("escalated_share", "escalated", ".0%"),
    ("latency_p50_ms", "latency p50 (ms)", ".0f"), ("latency_p95_ms", "latency p95 (ms)", ".0f"),
    ("latency_mean_ms", "latency mean (ms)", ".0f"), ("usd_per_1k_req", "$/1k req", ".4g"),
    ("usd_per_1k_correct", "$/1k correct", ".4g"), ("usd_per_1k_correct_note", "$/correct note", "s"),
    ("beats_slm_acc_and_llm_cost", "beats SLM acc. & LLM $", "s"), ("selection", "selection (tuned)", "s"),
]


def _fmt(v: Any, spec: str) -> str:
    if spec == "ci":
        return "" if not v else f"[{v[0]:.3f}, {v[1]:.3f}]"
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _router_row(ident: dict[str, Any], system: str, threshold: float | None, figs: RoutedSystem,
                slm_only: RoutedSystem, llm_only: RoutedSystem, selection: str = "") -> dict[str, Any]:
    lat = figs.get("latency_ms") or {}
    acc, usd = figs.get("accuracy"), figs.get("usd_per_1k_requests")
    beats = None
    if system == "routed" and None not in (acc, usd, slm_only["accuracy"], llm_only["usd_per_1k_requests"]):
        beats = acc > slm_only["accuracy"] and usd < llm_only["usd_per_1k_requests"]
    per_correct = figs.get("usd_per_correct")
    n = figs.get("n") or ident.get("n")
    ci = wilson_ci(acc * n, int(n)) if acc is not None and n else None  # a proportion: never a zero-width interval
    return {**ident, "system": system, "threshold": threshold, "accuracy": acc, "accuracy_ci": ci,
            "escalated_share": figs.get("escalated_share"), "latency_p50_ms": lat.get("p50"),
            "latency_p95_ms": lat.get("p95"), "latency_mean_ms": lat.get("mean"), "usd_per_1k_req": usd,
            "usd_per_1k_correct": 1000 * per_correct if per_correct is not None else None,
            "usd_per_1k_correct_note": figs.get("usd_per_correct_note") or "",
            "beats_slm_acc_and_llm_cost": beats, "selection": selection}


def router_rows(records: list[CollectedRun]) -> list[dict[str, Any]]:
    """One row per finished router run (by threshold) plus the SLM-only and LLM-only rows of each (SLM, LLM) pair,
    all composed from the same per-request measurements; `beats` = more accurate than SLM-only and cheaper than
    LLM-only.

    Args:
        records: run records, as `collect` returns them; those without a `router` block are ignored.

    Returns:
        Rows (dicts keyed like the router table's columns), grouped by (SLM, LLM, split, n), thresholds ascending.
        A threshold tuned on validation (`metrics.selection`) is measured on test in a group of its own, its
        `selection` cell labelled: validation trials and the test figure never share a group.
    """
    groups: dict[tuple, list[tuple[RouterBlock, str]]] = {}
    for rec in records:
        r = rec.get("router")
        if not r or (rec.get("run") or {}).get("status") != "finished":
            continue
        slm_label = (rec.get("model") or {}).get("name", "?")
        adapter = (rec.get("model") or {}).get("adapter")
        if adapter and adapter != "none":
            slm_label += f"+{adapter}"
        metrics: MetricsBlock = rec.get("metrics") or {}
        split = str(metrics.get("split") or ((rec.get("config") or {}).get("eval") or {}).get("split") or "")
        sel = metrics.get("selection")
        groups.setdefault((slm_label, r["llm"], split, r["n"]), []).append(
            (r, selection_text(sel) if isinstance(sel, dict) else ""))
    out = []
    for (slm_label, llm, split, n), runs in sorted(groups.items()):
        ref = runs[0][0]
        slm_only, llm_only = ref["slm_only"], ref["llm_only"]

        ident = {"slm": slm_label, "llm": llm, "split": split, "n": n}
        out.append(_router_row(ident, "slm-only", None, slm_only, slm_only, llm_only))
        seen = set()
        for r, sel_text in sorted(runs, key=lambda x: (x[0]["threshold"], x[1])):
            if r["threshold"] not in seen:
                seen.add(r["threshold"])
                out.append(_router_row(ident, "routed", r["threshold"], r["routed"], slm_only, llm_only,
                                       sel_text))
        out.append(_router_row(ident, "llm-only", None, llm_only, slm_only, llm_only))
    return out


def _markdown(rows: list[dict[str, Any]]) -> str:
    cols = _ROUTER_COLUMNS
    lines = ["**SLM-first routing.** A request is escalated to the LLM when the SLM's confidence < threshold. "
             "Routed figures are composed per request from each model's measured answers, wall times and costs "
             "(run.json `router.composition`); SLM-only and LLM-only use the same measurements. Latency: per "
             "request, one at a time (ms); $/1k req: USD per 1,000 requests under the run's cost profile. Every "
             "figure of a row comes from the split in its split column; a threshold tuned on validation is shown "
             "measured on test with its selection labelled.", "",
             "| " + " | ".join(h for _c, h, _s in cols) + " |",
             "|" + "|".join("---" if s == "s" else "---:" for _c, _h, s in cols) + "|"]
    for r in rows:
        cells = []
        for c, _h, s in cols:
            v = r[c]
            cells.append(("yes" if v else "no") if isinstance(v, bool) else
                         ("" if v is None else str(v)) if s == "s" else _fmt(v, s))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[c for c, _h, _s in _ROUTER_COLUMNS], lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: ("" if r[c] is None else f"{r[c]:.6g}" if isinstance(r[c], float)
                             else ";".join(f"{x:.6g}" for x in r[c]) if isinstance(r[c], tuple) else r[c])
                         for c, _h, _s in _ROUTER_COLUMNS})
    return buf.getvalue()


def write_router_report(records: list[CollectedRun], out: Path) -> dict[str, Path]:
    """router.md / router.csv (a row per threshold next to SLM-only and LLM-only) and the accuracy-vs-cost curve
    (router_accuracy_vs_cost.png/.svg); nothing when no record routed.

    Args:
        records: run records, as `collect` returns them.
        out: the report's output dir (exists).

    Returns:
        {"router_md", "router_csv", "router_png", "router_svg"} -> path, or {} when no run routed.
    """
    rows = router_rows(records)
    if not rows:
        return {}
    out = Path(out)
    md = write_text(out / "router.md", _markdown(rows))
    csv_path = write_text(out / "router.csv", _csv(rows))
    png, svg = _plot_router(rows, out / "router_accuracy_vs_cost")
    return {"router_md": md, "router_csv": csv_path, "router_png": png, "router_svg": svg}


def _plot_router(rows: list[dict[str, Any]], out: Path) -> tuple[Path, Path]:
    """Accuracy against $/1k requests: one line per (SLM, LLM) pair through its thresholds, SLM-only and LLM-only
    as markers."""
    from matplotlib.figure import Figure

    with plot_style():
        fig = Figure(figsize=(8.0, 5.5), dpi=120)
        fig.subplots_adjust(left=0.09, right=0.97, top=0.93, bottom=0.1)
        ax = fig.add_subplot()
        pairs = sorted({(r["slm"], r["llm"], r["split"]) for r in rows})
        several = len({p[2] for p in pairs}) > 1
        for k, (slm, llm, split) in enumerate(pairs):
            mine = [r for r in rows if (r["slm"], r["llm"], r["split"]) == (slm, llm, split)
                    and r["usd_per_1k_req"] is not None and r["accuracy"] is not None]
            on = f" [{split}]" if several else ""
            routed = [r for r in mine if r["system"] == "routed"]
            color = f"C{k}"
            ax.plot([r["usd_per_1k_req"] for r in routed], [r["accuracy"] for r in routed], "-o", color=color,
                    label=f"{slm} -> {llm}, routed (threshold){on}")
            for r in routed:
                ax.annotate(f"{r['threshold']:g} ({r['escalated_share']:.0%})", (r["usd_per_1k_req"], r["accuracy"]),
                            xytext=(5, -10), textcoords="offset points", fontsize=7)
            for system, marker, size in (("slm-only", "s", 80), ("llm-only", "*", 220)):
                pts = [r for r in mine if r["system"] == system]
                ax.scatter([r["usd_per_1k_req"] for r in pts], [r["accuracy"] for r in pts], marker=marker, s=size,
                           color="tab:red" if system == "llm-only" else "tab:green", zorder=3,
                           label=f"{(slm if system == 'slm-only' else llm)} only{on}")
        ax.set_xlabel("cost per 1,000 requests (USD; routed = SLM for all + LLM for escalated)")
        ax.set_ylabel("accuracy (primary metric, 0-1)")
        ax.set_title("SLM-first routing: accuracy vs cost (labels: threshold (escalated share))")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=7)
        paths = save_png_svg(fig, out)
    return paths
