"""`slmexp export DIR --format eee|hf|lm-eval|latex[,...]|all --out OUT`: parse, check, dispatch to the formats.

Why a module of its own: the formats are plain functions of the runs; this module owns the command line, the
one-line refusals of bad input (slmexp.cli_errors.refuse: exit 2, no traceback) and the order the formats run in.
DIR is a run dir, a sweep dir or any folder of run dirs (every run.json below it, as `slmexp report` reads them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

FORMATS = ("eee", "hf", "lm-eval", "latex")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the argument (slmexp's way), not usage plus a message."""

    def error(self, message: str) -> NoReturn:
        from slmexp.cli_errors import refuse

        refuse([f"export: {message}"])


def parse_formats(text: str) -> list[str]:
    """`eee,latex` -> ["eee", "latex"]; `all` -> every format; an unknown name is refused in one line."""
    from slmexp.cli_errors import refuse

    names = [t.strip() for t in text.split(",") if t.strip()]
    if names == ["all"]:
        return list(FORMATS)
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        refuse([f"--format: unknown format {bad[0] if bad else text!r}; one of {', '.join(FORMATS)}, a comma-separated "
                "list of them, or all"])
    return list(dict.fromkeys(names))


def _parser() -> _Parser:
    parser = _Parser(prog="slmexp export",
                     description="Export the runs below DIR: Every Eval Ever JSON (eee), Hugging Face .eval_results "
                                 "and model-index (hf), lm-eval results and samples files (lm-eval), LaTeX macros "
                                 "(latex). docs/exporting.md says what each file holds.")
    parser.add_argument("dir", type=Path, help="a run dir, a sweep dir or a folder of run dirs")
    parser.add_argument("--format", required=True, help=f"{', '.join(FORMATS)}, a comma-separated list, or all")
    parser.add_argument("--out", type=Path, required=True, help="output dir (one subdir per format)")
    parser.add_argument("--baseline", help="hf, latex: model name or short label of the baseline row, as `slmexp "
                                           "report --baseline` (default: the run whose model role is baseline)")
    parser.add_argument("--organization", default="unknown",
                        help="eee: source_organization_name, who provides the results (default: unknown)")
    return parser


def export(root: Path, formats: list[str], out: Path, organization: str = "unknown",
           baseline: str | None = None) -> dict[str, list[Path]]:
    """Write each format under `out/<format>/`; returns the paths written per format. `baseline` picks the
    comparison's baseline row as `slmexp report --baseline` does (hf and latex follow the table)."""
    from slmexp.export import eee, hf, latex, lmeval
    from slmexp.export.runs import arms_by_dir, load_runs
    from slmexp.report import build_table, claims, collect

    records = collect(root)
    runs = load_runs(records, root)
    written: dict[str, list[Path]] = {}
    if "eee" in formats:
        written["eee"] = eee.export(runs, out / "eee", organization)
    if "lm-eval" in formats:
        written["lm-eval"] = lmeval.export(runs, out / "lm-eval")
    if {"hf", "latex"} & set(formats):
        df = build_table(records, baseline=baseline)
        if "hf" in formats:
            written["hf"] = hf.export(runs, df, arms_by_dir(records), out / "hf")
        if "latex" in formats:
            path = out / "latex" / "comparison.macros.tex"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(latex.macros_tex(records, df, claims.evaluate(records, df)), encoding="utf-8",
                            newline="\n")
            written["latex"] = [path]
    return written


def main(argv: list[str] | None = None) -> int:
    """`slmexp export DIR --format F --out OUT`: 0 done; 2 bad input (one line: the argument and what is wrong)."""
    from slmexp.cli_errors import refuse
    from slmexp.errors import SlmexpError
    from slmexp.record import RECORD_NAME
    from slmexp.report import collect

    args = _parser().parse_args(argv)
    formats = parse_formats(args.format)
    if not args.dir.is_dir():
        refuse([f"DIR: {args.dir} is not a directory"])
    if not collect(args.dir):
        refuse([f"DIR: no {RECORD_NAME} below {args.dir} (a run dir, a sweep dir or a folder of run dirs)"])
    if args.out.exists() and not args.out.is_dir():
        refuse([f"--out: {args.out} exists and is not a directory"])
    try:
        written = export(args.dir, formats, args.out, args.organization, args.baseline)
    except SlmexpError as e:  # bad records' input (a claim naming an unknown metric, ...): one line
        refuse([str(e)])
    for fmt, paths in written.items():
        print(f"{fmt}: {len(paths)} file(s) under {args.out / fmt}")
    sys.stdout.flush()
    return 0
