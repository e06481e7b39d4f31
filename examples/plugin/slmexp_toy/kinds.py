"""The `yesno` task kind: a question answered yes or no.

File 1 of a task kind (the record); file 2 is its lm-eval template, slmexp_toy/yesno.yaml, whose process_results is
`yesno_results` below; file 3 a test (slmexp's tests/test_plugin_package.py runs a sweep with it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slmexp.tasks.kinds import Metric, TaskKind, check_label, check_string

_YES, _NO = ("yes", "y", "true", "correct"), ("no", "n", "false", "incorrect")


def yesno_answer(doc: Any, raw: str) -> str | None:
    """`yes` or `no` from the answer's first word (`Yes.`, `no,`, `True`), else None."""
    words = (raw or "").strip().lower().split()
    first = words[0].strip(".,!:;\"'") if words else ""
    return "yes" if first in _YES else "no" if first in _NO else None


def yesno_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """exact_match: the answer's yes/no is the gold; valid_answer: it said yes or no at all."""
    answer = yesno_answer(doc, results[0] if results else "")
    return {"exact_match": float(answer == str(doc["target"]).lower()), "valid_answer": float(answer is not None)}


YESNO = TaskKind(
    name="yesno",
    roles={"text": check_string, "label": check_label}, gold_role="label", needs_labels=True,
    metrics=(Metric("exact_match", binary=True), Metric("valid_answer", binary=True, validity=True)),
    template=str(Path(__file__).with_name("yesno.yaml")), doc_choices=True,
    extract=yesno_answer, constraint="slmexp.decoding.builders:label_choices", answer_space="labels",
)
