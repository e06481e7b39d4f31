"""Rendering the comparison table as text: Markdown, LaTeX (booktabs), CSV, the caption and the cell formats.

Why apart: the table (a DataFrame) is computed once; each format here only decides how cells look. Fixed float
formats and no timestamps keep the files byte-identical when the same outputs are reported again.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slmexp.report.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

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


def write_text(path: Path, text: str) -> Path:
    """Write a report file as UTF-8 with '\\n' line ends on every platform (byte-identical reruns)."""
    path.write_text(text, encoding="utf-8", newline="\n")
    return path


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
