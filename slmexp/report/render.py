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

# Markdown: (column, header, format); a measured column shows "mean ± std" when the row has several seeds, and a
# relative column its paired-bootstrap CI in brackets when one was computed.
_MD_COLUMNS: list[tuple[str, str, str]] = [
    ("model_shown", "model", "s"), ("role", "role", "s"), ("params_b", "params (B)", "g"),
    ("adapter", "adapter", "s"), ("quantization", "quant", "s"), ("runtime", "runtime", "s"),
    ("decoding", "decoding", "s"), ("formulation", "formulation", "s"),
    ("variant", "variant", "s"), ("split", "split", "s"), ("seed", "seed", "s"), ("n_seeds", "n_seeds", "d"),
    ("status", "status", "s"), ("n", "n", "d"), ("accuracy", "accuracy", ".3f"), ("ci95", "95% CI", ".3f"),
    ("strict_match", "strict", ".3f"), ("validity", "valid", ".3f"), ("accuracy_delta", "Δ acc [95% CI]", "+.3f"),
    ("retained_pct", "retained % [95% CI]", ".1f"), ("latency_p50_ms", "latency p50 (ms)", ".0f"),
    ("latency_p95_ms", "latency p95 (ms)", ".0f"), ("decode_tok_s", "decode tok/s", ".1f"),
    ("peak_rss_mb", "peak RSS (MiB)", ".0f"), ("rss_at_load_mb", "RSS at load (MiB)", ".0f"),
    ("size_mb", "size (MB)", ".0f"), ("contended", "contended", "s"),
    ("usd_per_1k_req", "$/1k req", ".4g"), ("usd_per_1k_correct", "$/1k correct", ".4g"),
    ("speedup", "speed-up × [95% CI]", ".2f"), ("cost_ratio", "cost ratio [95% CI]", ".2f"),
    ("n_paired", "n_paired", "d"), ("mcnemar_bc", "b/c", "g"), ("mcnemar_p", "McNemar p (raw)", ".3g"),
    ("mcnemar_p_holm", "p (Holm)", ".3g"), ("selection", "selection (tuned)", "s"), ("compare_note", "note", "s"),
    ("error", "error", "s"),
]
# LaTeX: a compact subset that fits a page width in \footnotesize.
_TEX_COLUMNS: list[tuple[str, str, str]] = [
    ("model_shown", "model", "s"), ("adapter", "adapter", "s"), ("quantization", "quant", "s"),
    ("runtime", "runtime", "s"), ("n", "$n$", "d"), ("accuracy", "acc.", ".3f"), ("ci95", "95\\% CI", ".3f"),
    ("retained_pct", "ret.\\ \\%", ".1f"), ("latency_p50_ms", "p50 (ms)", ".0f"),
    ("decode_tok_s", "tok/s", ".1f"), ("size_mb", "MB", ".0f"), ("usd_per_1k_req", "\\$/1k", ".4g"),
    ("speedup", "speed-up", ".2f"), ("n_paired", "paired", "d"), ("mcnemar_p_holm", "$p$ (Holm)", ".3g"),
]
# Columns left out of a table in which no row has a value (a strict column only for classification, ...).
_OPTIONAL = {"strict_match", "validity", "rss_at_load_mb", "contended", "selection", "compare_note", "split"}
# Columns shown only when some row is not at the default (free decoding, generated answers).
_DEFAULTED = {"decoding": "free", "formulation": "generate"}
# Relative columns whose paired CI (`<col>_ci95_low/high`) is printed in brackets after the value.
_WITH_CI = {"accuracy_delta", "retained_pct", "speedup", "cost_ratio"}


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


def model_shown(row: dict[str, Any]) -> str:
    """The model name with where its weights came from: `smollm2-135m (dequantized from GGUF Q4_1)`."""
    prov = row.get("weights_provenance")
    return f"{row['model']} ({prov})" if isinstance(prov, str) and prov else str(row["model"])


def _cell(row: dict[str, Any], col: str, spec: str, pm: str) -> str:
    if col == "model_shown":
        return model_shown(row)
    if col == "ci95":
        lo, hi = row["ci95_low"], row["ci95_high"]
        return f"[{_fmt(lo, spec)}, {_fmt(hi, spec)}]" if _isnum(lo) and _isnum(hi) else ""
    if col == "mcnemar_bc":
        b, c = row["mcnemar_b"], row["mcnemar_c"]
        return f"{_fmt(b, 'g')}/{_fmt(c, 'g')}" if _isnum(b) and _isnum(c) else ""
    if col == "contended":
        flag = row.get("contended")
        return "yes" if flag is True else "no" if flag is False else ""
    cell = _fmt(row[col], spec)
    std = row.get(f"{col}_std")
    if cell and _isnum(std):
        cell += f"{pm}{_fmt(std, spec.lstrip('+'))}"
    lo, hi = row.get(f"{col}_ci95_low"), row.get(f"{col}_ci95_high")
    if cell and col in _WITH_CI and _isnum(lo) and _isnum(hi):
        cell += f" [{_fmt(lo, spec)}, {_fmt(hi, spec)}]"
    if not cell and col == "usd_per_1k_correct":
        cell = str(row.get("usd_per_1k_correct_note") or "")  # "no correct answer", not "not measured"
    return cell


def _columns(df: pd.DataFrame, columns: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The columns to print: optional ones only when some row has a value (split only when rows differ)."""
    out = []
    for col, header, spec in columns:
        if col == "split":
            if len({s for s in df["split"] if s}) > 1:
                out.append((col, header, spec))
        elif col in _DEFAULTED:
            if col in df and any(v not in (None, "", _DEFAULTED[col]) for v in df[col]):
                out.append((col, header, spec))
        elif col not in _OPTIONAL or any(_isnum(v) or (isinstance(v, str | bool) and v != "") for v in df[col]):
            out.append((col, header, spec))
    return out


def _cells(row: dict[str, Any], columns: list[tuple[str, str, str]], pm: str) -> list[str]:
    return [_cell(row, col, spec, pm) for col, _header, spec in columns]


def _row_name(row: dict[str, Any]) -> str:
    """A row's label, with its variant when rows share the label (the caption must name one row)."""
    return f"{row['label']} [{row['variant']}]" if row.get("variant") else str(row["label"])


def _rows_text(df: pd.DataFrame, mask: Any) -> str:
    return ", ".join(_row_name(r) for r in df[mask].to_dict("records"))


def _caption(df: pd.DataFrame, caption: str | None) -> str:
    """Caption text: what was evaluated on which split, n per run, the baseline, the statistics used, and every
    row the table flags (contended, not compared, tuned), so a reader of the PDF needs nothing else (no
    timestamps)."""
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
    splits = sorted({s for s in df["split"] if s})
    parts.append(f"Split: every figure of a row (accuracy, its CI, the paired statistics and the speed stage's "
                 f"prompts) comes from the {splits[0]} split." if len(splits) == 1 else
                 "Split: every figure of a row comes from the split in its split column." if splits else
                 "Split: not recorded.")
    methods = sorted({m for m in df["ci_method"] if m})
    ci_text = {"wilson": "Wilson score interval (0/1 metrics)",
               "bootstrap": f"percentile bootstrap over test examples ({BOOTSTRAP_RESAMPLES} resamples, seed "
                            f"{BOOTSTRAP_SEED}; non-binary metrics)"}
    parts.append(
        "Accuracy is the mean over seeds ± sample std when n_seeds > 1; 95% CI of accuracy: "
        f"{'; '.join(ci_text[m] for m in methods) or 'none (no per-example results)'}. "
        "Δ acc = accuracy - baseline accuracy; retained % = accuracy / baseline accuracy × 100; their [95% CI] is a "
        f"paired bootstrap over the example ids both rows scored (same resampled ids for both, {BOOTSTRAP_RESAMPLES} "
        f"resamples, seed {BOOTSTRAP_SEED}); n_paired = those ids. Latency: end-to-end per request, one at a time "
        "(ms); decode tok/s: median tokens/s after the first token; peak RSS: MiB while serving (load + evaluate + "
        "benchmark); RSS at load: what the process already held then, the floor of that peak (libraries, and in a "
        "multirun sharing one process what earlier jobs left); size in MB (1e6 bytes) of the "
        "served GGUF or ONNX export, else the checkpoint. $/1k req: USD per 1,000 requests; $/1k correct = $/1k req "
        "/ accuracy. speed-up = baseline latency p50 / row latency p50; cost ratio = row $/1k req / baseline $/1k "
        "req; their [95% CI], when shown, is a paired bootstrap over the timed requests matched by example id. b/c: "
        "paired examples the row gets right and the baseline wrong / the reverse, summed over the row's seeds; "
        "McNemar p: two-sided exact test on the pooled b, c (raw); p (Holm): Holm-adjusted across the rows compared "
        "with the same baseline. Empty cell = not measured (failed run, no speed stage, no cost recorded)."
    )
    contended = df["contended"].map(lambda v: v is True)
    if contended.any():
        parts.append("Contended (other processes used a meaningful share of the cores while the speed stage ran; "
                     f"speed and cost figures not comparable): {_rows_text(df, contended)}.")
    refused = df["compare_note"].map(lambda v: isinstance(v, str) and v != "")
    if refused.any():
        parts.append("Relative cells left empty: " + "; ".join(
            f"{_row_name(r)}: {r['compare_note']}" for r in df[refused].to_dict("records")) + ".")
    tuned = df["selection"].map(lambda v: isinstance(v, str) and v != "")
    if tuned.any():
        parts.append("Tuned rows (selection): the configuration was chosen on the validation split; the row's "
                     f"accuracy and other figures are on the test split: {_rows_text(df, tuned)}.")
    provenance = df["weights_provenance"].map(lambda v: isinstance(v, str) and v != "")
    if provenance.any():
        parts.append("A model shown with a note in parentheses was not served from its real checkpoint (e.g. "
                     "weights dequantized from a GGUF).")
    return " ".join(parts)


ATTESTATION_NOTE = ("sha256, first 12 hex digits, of each run's metrics (results) and of its stored answers, raw and "
                    "extracted (outputs); the full hashes are in comparison.csv and each run.json. `slmexp verify "
                    "DIR` recomputes them from the run dirs and names the first example whose answer differs.")


def attestation_lines(df: pd.DataFrame) -> list[str]:
    """`<row>: results <12 hex>, outputs <12 hex>` per row with an attestation (one pair per seed); a footnote
    rather than a column, so the table stays readable."""
    out = []
    for row in df.to_dict("records"):
        pairs = zip(str(row.get("results_sha256") or "").split(";"), str(row.get("outputs_sha256") or "").split(";"),
                    strict=False)
        shown = [f"results {r[:12]}, outputs {o[:12]}" for r, o in pairs if r or o]
        if shown:
            out.append(f"{_row_name(row)}: {'; '.join(shown)}")
    return out


def to_markdown(df: pd.DataFrame, caption: str | None = None) -> str:
    """The table as GitHub Markdown with its caption paragraph above (no tabulate dependency) and the attestation
    footnote below."""
    cols = _columns(df, _MD_COLUMNS)
    headers = [h for _c, h, _s in cols]
    lines = [f"**Comparison.** {_caption(df, caption)}", "", "| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if s == "s" else "---:" for _c, _h, s in cols) + "|"]
    for row in df.to_dict("records"):
        cells = [c.replace("|", "\\|") for c in _cells(row, cols, " ± ")]
        lines.append("| " + " | ".join(cells) + " |")
    attested = attestation_lines(df)
    if attested:
        lines += ["", f"**Attestation.** {ATTESTATION_NOTE}", "", *(f"- {line}" for line in attested)]
    return "\n".join(lines) + "\n"


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$",
                "×": r"$\times$", "<": r"$<$", ">": r"$>$", "Δ": r"$\Delta$", "→": r"$\rightarrow$"}


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
        if row.get("contended") is True:
            cells[0] += " (contended)"
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def to_csv(df: pd.DataFrame) -> str:
    """All columns, empty cells for missing values, floats as %.6g, '\\n' line ends."""
    return df.to_csv(index=False, float_format="%.6g", na_rep="", lineterminator="\n")
