"""LaTeX macros: one `\\newcommand` per cell of the comparison table and per claim's verdict, for a thesis' text.

Why: a sentence such as "the LoRA SLM keeps \\slmexpSlmLoraRetainedPct{} of the baseline's accuracy" stays true when
the sweep is rerun and the report rebuilt: the figure comes from the same table, formatted as comparison.md shows
it (its CI in brackets where the table prints one), never copied by hand. `slmexp report` writes the file beside
comparison.tex (comparison.macros.tex); `slmexp export --format latex` writes the same file into OUT.

Names: TeX control words hold letters only, so a name is built from words: `slmexp`, the row's arm (the `arm=`
option its runs composed, else its label `model+adapter/quant@runtime`), then the column (comparison.csv's name):
each run of letters with its first letter capitalised, every digit spelt as a capitalised English word (0 Zero ...
9 Nine), everything else dropped: arm `slm-lora-q4km`, column `retained_pct` -> `\\slmexpSlmLoraQFourKmRetainedPct`.
`...Low` / `...High` give the ends of a column's 95% CI where the table has one. A table of several tasks puts the
task after `slmexp`. Two rows whose names would collide (variants of one arm) get `VariantB`, `VariantC` ... after
the arm, in table order. Claims: `\\slmexpClaim<id>Verdict` (holds / fails / inconclusive / not measured),
`...Estimate`, `...Low`, `...High`.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from slmexp.export.runs import arms_by_dir, row_arm
from slmexp.report.collect import CollectedRun
from slmexp.report.render import _MD_COLUMNS, _cell, _columns, _fmt, tex_escape

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

DIGITS = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")
PREFIX = "slmexp"
# table columns whose 95% CI ends are columns of their own: (low, high)
_CI_ENDS = {"accuracy": ("ci95_low", "ci95_high"),
            **{c: (f"{c}_ci95_low", f"{c}_ci95_high") for c in ("accuracy_delta", "retained_pct", "speedup",
                                                                "cost_ratio")}}


def name_part(text: str) -> str:
    """`q4_k_m` -> `QFourKM`, `retained_pct` -> `RetainedPct`, `smollm2-135m` -> `SmollmTwoOneThreeFiveM`."""
    return "".join(DIGITS[int(part)] if part.isdigit() else part[0].upper() + part[1:]
                   for part in re.findall(r"[A-Za-z]+|[0-9]", text))


def _macro(name: str, value: str) -> str:
    if not re.fullmatch(r"[A-Za-z]+", name):  # a control word holds letters only
        raise ValueError(f"not a TeX control word: {name!r}")
    return f"\\newcommand{{\\{name}}}{{{value}}}"


def _row_names(rows: list[dict[str, Any]], arms: dict[str, str], several_tasks: bool) -> list[str]:
    """Each row's macro stem (prefix, task when the table has several, arm), collisions told apart by variant."""
    stems, seen = [], {}
    for row in rows:
        stem = PREFIX + (name_part(str(row["task"])) if several_tasks else "") + name_part(row_arm(row, arms))
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem + (f"Variant{chr(ord('A') + seen[stem] - 1)}" if seen[stem] > 1 else ""))
    return stems


def _table_lines(df: pd.DataFrame, arms: dict[str, str]) -> list[str]:
    rows = df.to_dict("records")
    cols = _columns(df, _MD_COLUMNS)
    lines = []
    for stem, row in zip(_row_names(rows, arms, len(set(df["task"])) > 1), rows, strict=True):
        lines.append(f"% {row['label']}" + (f" [{row['variant']}]" if row.get("variant") else "") + f" ({row['task']})")
        for col, _header, spec in cols:
            lines.append(_macro(stem + name_part(col), tex_escape(_cell(row, col, spec, " ± "))))
            for end, key in zip(("Low", "High"), _CI_ENDS.get(col, ()), strict=False):
                lines.append(_macro(stem + name_part(col) + end, tex_escape(_fmt(row.get(key), spec))))
    return lines


def _claim_lines(verdicts: list[dict[str, Any]]) -> list[str]:
    lines = []
    for c in verdicts:
        stem = PREFIX + "Claim" + name_part(str(c["id"]))
        ci = c.get("ci") or [None, None]
        lines.append(f"% claim {c['id']}: {c['claim']}")
        lines.append(_macro(stem + "Verdict", tex_escape(str(c["verdict"]))))
        for end, value in (("Estimate", c.get("estimate")), ("Low", ci[0]), ("High", ci[1])):
            ok = isinstance(value, int | float) and math.isfinite(value)
            lines.append(_macro(stem + end, f"{value:.3g}" if ok else ""))
    return lines


def macros_tex(records: list[CollectedRun], df: pd.DataFrame, verdicts: list[dict[str, Any]]) -> str:
    """The macros file: every cell of the comparison (`df`, slmexp.report.build_table) and every claim (`verdicts`,
    slmexp.report.claims.evaluate), as \\newcommand lines; deterministic, so a rebuilt report is byte-identical."""
    head = ["% slmexp comparison macros: one \\newcommand per table cell and claim; \\input this file once in the",
            "% preamble. Names: slmexp + [task] + arm + column (digits spelt as words); see docs/exporting.md."]
    return "\n".join([*head, *_table_lines(df, arms_by_dir(records)), *_claim_lines(verdicts)]) + "\n"
