"""The quant-ladder's fidelity table: per quantized rung, accuracy and size next to how far its next-token
distributions drift from its parent (mean KLD, top-1 agreement, perplexity ratio: `run.json` `fidelity`, written by
slmexp.fidelity).

Why beside the comparison table: on 100 test examples two rungs often tie in accuracy while one has drifted far
more from the parent; KLD shows it long before accuracy does (llama.cpp's `llama-perplexity --kl-divergence`
states quantization quality the same way). Only rungs that measured fidelity appear; the parent is named, and
labelled when its weights were themselves dequantized.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from slmexp.record_types import FidelityBlock, FidelityParent
from slmexp.report.collect import CollectedRun
from slmexp.report.render import _fmt

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

_COLUMNS = [("label", "rung", "s"), ("quantization", "quant", "s"), ("accuracy", "accuracy", ".3f"),
            ("size_mb", "size (MB)", ".0f"), ("kld_mean", "mean KLD (nats)", ".4f"),
            ("top1_agreement_pct", "top-1 agreement %", ".1f"), ("ppl_ratio", "PPL ratio", ".3f"),
            ("n_tokens", "tokens", "d"), ("parent", "parent", "s")]


def ladder_rows(records: list[CollectedRun], df: pd.DataFrame) -> list[dict[str, Any]]:
    """One dict per table row whose first run recorded `fidelity`, in table order."""
    by_dir = {str(r.get("_rel") or r.get("_dir")): r for r in records}
    out = []
    for row in df.to_dict("records"):
        rec = by_dir.get(str(row["run_dirs"]).split(";")[0]) or {}
        fid: FidelityBlock | None = rec.get("fidelity")
        if not isinstance(fid, dict) or fid.get("kld_mean") is None:
            continue
        parent: FidelityParent = fid.get("parent") or {}
        name = str(parent.get("name") or "?")
        if parent.get("dequantized"):
            name += f" ({parent.get('dequantized_note') or 'dequantized'})"
        out.append({"label": row["label"], "quantization": row["quantization"], "accuracy": row["accuracy"],
                    "size_mb": row["size_mb"], "kld_mean": fid.get("kld_mean"),
                    "top1_agreement_pct": fid.get("top1_agreement_pct"), "ppl_ratio": fid.get("ppl_ratio"),
                    "n_tokens": fid.get("n_tokens"), "parent": name})
    return out


_NOTE = ("Fidelity against the parent, on the task's test prompts plus a short generic text, teacher-forced: mean KL "
         "divergence KL(parent ‖ rung) of the next-token distributions over every scored token (nats; 0 = "
         "identical), top-1 agreement = % of positions where both pick the same most likely token, PPL ratio = "
         "rung perplexity / parent perplexity on the same tokens (1 = no loss).")


def to_markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    lines = ["", f"**Quantization fidelity.** {_NOTE}", "",
             "| " + " | ".join(h for _c, h, _s in _COLUMNS) + " |",
             "|" + "|".join("---" if s == "s" else "---:" for _c, _h, s in _COLUMNS) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r[c], s).replace("|", "\\|") for c, _h, s in _COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def to_html(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for _c, h, _s in _COLUMNS)
    body = "".join("<tr>" + "".join(
        f'<td{"" if s == "s" else " class=num"}>{html.escape(_fmt(r[c], s))}</td>' for c, _h, s in _COLUMNS)
        + "</tr>" for r in rows)
    return (f'<h2 id="fidelity">Quantization fidelity</h2><p class="caption">{html.escape(_NOTE)}</p>'
            f'<table id="fidelity-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
