"""The comparison report: one table (Markdown, CSV, LaTeX) and plots built from `run.json` files alone.

A sweep's question is "how much accuracy does a small model keep, and what does it buy in speed and cost?", so
every row is read against a baseline row: accuracy delta and retained (%) with paired-bootstrap CIs, speed-up, cost
ratio, and a McNemar test (Holm-adjusted across the table) on the very same test examples (a difference of a few
points on 250 examples is often noise, and the table should say so); rows scored on other examples are not
compared at all. Statistics come from each run's `lm_eval/samples.jsonl`, so nothing needs re-running.

The package, one job per module: `collect` reads run records, `stats` holds the statistics, `table` builds the
DataFrame (rows, seeds collapsed, baseline), `compare` sets a row against its baseline, `render` writes it as
Markdown/LaTeX/CSV, `plots` draws it, `router` adds the SLM-first routing section, `claims` checks the sweep's
claims against the table. This module holds the entry points (`write_report`, `main`) and re-exports the names
callers use. The output is deterministic: re-running on the same outputs gives byte-identical files.

pandas and matplotlib are imported inside functions so that `slmexp --help` and this package's import stay fast.

Usage: `python -m slmexp.report DIR [--baseline NAME] [--out DIR] [--caption TEXT]`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slmexp.errors import SlmexpError
from slmexp.record import RECORD_NAME
from slmexp.report import claims
from slmexp.report.collect import _size_mb, collect
from slmexp.report.html import ReviewerView
from slmexp.report.plots import SVG_HASHSALT, _plot, pareto_front
from slmexp.report.render import tex_escape, to_csv, to_latex, to_markdown, write_text
from slmexp.report.router import router_rows, write_router_report
from slmexp.report.stats import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    CI_LEVEL,
    bootstrap_ci,
    holm,
    mcnemar_exact,
    paired_bootstrap_ci,
    wilson_ci,
)
from slmexp.report.table import COLUMN_DOC, ID_COLUMNS, MEASURED, NOTES, SINGLE, build_table, short_label

# `_size_mb` stays importable here for tests/test_ortgenai.py (it checks the size an ONNX run reports).
__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CI_LEVEL",
    "COLUMN_DOC",
    "FAILED_NAME",
    "ID_COLUMNS",
    "MEASURED",
    "NOTES",
    "SINGLE",
    "SVG_HASHSALT",
    "_size_mb",
    "bootstrap_ci",
    "build_report",
    "build_table",
    "collect",
    "holm",
    "main",
    "mcnemar_exact",
    "paired_bootstrap_ci",
    "pareto_front",
    "router_rows",
    "short_label",
    "tex_escape",
    "to_csv",
    "to_latex",
    "to_markdown",
    "wilson_ci",
    "write_report",
    "write_router_report",
]


# What a report writes (and a failed report removes, so no stale table looks current).
OUTPUT_GLOBS = ("comparison.*", "accuracy_vs_*.png", "accuracy_vs_*.svg", "router.md", "router.csv", "router_*.png",
                "router_*.svg", "report.html", "claims.json")
FAILED_NAME = "REPORT_FAILED.md"


def write_report(root: Path, out_dir: Path | None = None, baseline: str | None = None,
                 caption: str | None = None) -> dict[str, Path]:
    """`build_report`, and on failure: the previous report's tables and plots removed (they no longer describe the
    runs below `root`) and REPORT_FAILED.md written in their place with the error; the error is re-raised."""
    out = Path(out_dir) if out_dir is not None else Path(root)
    try:
        paths = build_report(root, out_dir, baseline, caption)
    except Exception as e:
        if out.is_dir():
            for pattern in OUTPUT_GLOBS:
                for stale in out.glob(pattern):
                    if stale.is_file():
                        stale.unlink()
            (out / FAILED_NAME).write_text(f"# Report failed\n\n{type(e).__name__}: {e}\n\nThe previous tables and "
                                           f"plots were removed. Rebuild: `slmexp report {root}`\n")
        raise
    (out / FAILED_NAME).unlink(missing_ok=True)
    return paths


def build_report(root: Path, out_dir: Path | None = None, baseline: str | None = None,
                 caption: str | None = None) -> dict[str, Path]:
    """Build the comparison from every run.json below `root` and write tables and plots.

    Args:
        root: a sweep dir or an outputs dir.
        out_dir: where to write (created if needed); default: `root` itself, so a sweep dir holds its report.
        baseline: model name (or short label) of the baseline; default: the run whose model role is baseline.
        caption: text put in front of the generated caption.

    Returns:
        {"md", "csv", "tex", "tex_macros" (comparison.macros.tex: one LaTeX macro per cell and claim),
        "accuracy_vs_latency_png", ..._svg, "accuracy_vs_cost_png", ..._svg} -> path, plus
        {"router_md", "router_csv", "router_png", "router_svg"} when some run routed, "claims_json" when the
        sweep states claims (slmexp.report.claims), and "flips_json", "html" (the self-contained report.html).
    """
    root = Path(root)
    out = Path(out_dir) if out_dir is not None else root
    out.mkdir(parents=True, exist_ok=True)
    from slmexp.export.latex import macros_tex as _macros

    records = collect(root)
    df = build_table(records, baseline=baseline)
    reviewer = ReviewerView(records, df)  # flips, quantization fidelity, every arm's answers (report.html)
    verdicts = claims.evaluate(records, df)  # the sweep's claims checked against the table (before report.html)
    paths = {
        "md": write_text(out / "comparison.md",
                         to_markdown(df, caption) + claims.to_markdown(verdicts) + reviewer.markdown),
        "csv": write_text(out / "comparison.csv", to_csv(df)),
        "tex": write_text(out / "comparison.tex", to_latex(df, caption)),
        # one \newcommand per cell and claim (slmexp.export.latex; imported here: slmexp.export reads this package)
        "tex_macros": write_text(out / "comparison.macros.tex", _macros(records, df, verdicts)),
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
    if verdicts:
        paths["claims_json"] = write_text(out / "claims.json", claims.to_json(verdicts))
    else:  # a claims.json left by an earlier report would show claims this sweep no longer states
        (out / "claims.json").unlink(missing_ok=True)
    paths.update(write_router_report(records, out))  # router runs: a row per threshold and the accuracy-cost curve
    paths.update(reviewer.write(out, df, caption, paths, root.resolve().name))  # flips.json, report.html
    return paths


def main(argv: list[str] | None = None) -> int:
    """`python -m slmexp.report DIR [--baseline NAME] [--out DIR] [--caption TEXT]`: print the table, write files.

    Returns:
        The exit status: 0 done, 1 no run.json below DIR, 2 DIR is not a directory or the records' input is
        bad (e.g. a claim naming an unknown metric; REPORT_FAILED.md says the same).
    """
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
    try:
        paths = write_report(args.dir, args.out, args.baseline, args.caption)
    except SlmexpError as e:  # bad input (a claim naming an unknown metric, ...): one line, not a traceback
        print(f"slmexp report: error: {e}", file=sys.stderr)
        return 2
    print(paths["md"].read_text(encoding="utf-8"))
    for key, path in paths.items():
        print(f"{key}: {path}")
    return 0
