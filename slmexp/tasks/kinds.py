"""Task kinds: one record per kind holds every fact the framework needs about it, so no other module branches on
`task.kind`.

A kind says what a row holds (its roles and how each value is checked when the JSONL is loaded), how lm-eval
scores it (the template and the metrics it reports, the primary one first), how a teacher's answer becomes a
training label (distillation), and how the router judges the small model's answer (confidence and correctness).
A record field left None means "this kind does not support that": distillation and routing refuse such a kind in
their `validate()`, naming `task.kind`, before any model loads.

Adding a task kind:
  1. its record here, in `KINDS` (metric functions and answer parsers go in `slmexp/tasks/metrics.py`; the
     classification label parser, shared by evaluation, distillation and routing, is `slmexp/tasks/extract.py`);
  2. its lm-eval template, `slmexp/tasks/lm_eval/<template>`, whose `process_results` returns `metrics`;
  3. a test: a small JSONL task of the kind loading and scoring (see tests/test_user_tasks.py).
`task.kind` in a task YAML then accepts it; config validation, data loading and lm-eval read the record.
Another package adds a kind without touching slmexp: an entry point in the group `slmexp.task_kinds`
(`toy = "yourpkg.kinds:TOY"`, a TaskKind whose `template` is an absolute path to its lm-eval template).

This module is imported at config time: it imports nothing heavier than `slmexp.tasks.metrics` and
`slmexp.tasks.extract` (pure Python).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slmexp.registry import Registry
from slmexp.tasks.extract import extract_label, normalize_label, same_label, task_labels
from slmexp.tasks.metrics import valid_answer, valid_extraction, valid_tool_call

# (value, the task's labels) -> why the value is not valid, or None
ValueCheck = Callable[[Any, set[str]], "str | None"]
# (row, task.fields) -> why the row as a whole is not valid, or None
RowCheck = Callable[[Mapping[str, Any], Any], "str | None"]
# (raw teacher output, the task config) -> (training label, None) or (None, why it was rejected)
TeacherParse = Callable[[str, Any], "tuple[Any, str | None]"]
# (an answer, the gold value, the task config) -> 1.0 right / 0.0 wrong
RoutedCorrect = Callable[[str, Any, Any], float]


# --- value checks, applied to every row when a split is loaded ------------------------------------------------------


def check_string(value: Any, labels: set[str]) -> str | None:
    return None if isinstance(value, str) and value.strip() else f"must be a non-empty string, got {value!r}"


def check_label(value: Any, labels: set[str]) -> str | None:
    """The gold is one of task.labels under the one label normaliser (`Bill dispute` == `bill_dispute`)."""
    if not isinstance(value, str) or not value.strip():
        return f"must be a non-empty string, got {value!r}"
    if normalize_label(value) in {normalize_label(x) for x in labels}:
        return None
    return f"label {value!r} is not in task.labels ({', '.join(sorted(labels))})"


def check_object(value: Any, labels: set[str]) -> str | None:
    return None if isinstance(value, dict) and value else f"must be a non-empty JSON object, got {value!r}"


def check_answers(value: Any, labels: set[str]) -> str | None:
    ok = (isinstance(value, str) and value.strip()) or (
        isinstance(value, list) and value and all(isinstance(a, str) and a.strip() for a in value))
    return None if ok else f"must be a non-empty string or list of non-empty strings, got {value!r}"


def check_tools(value: Any, labels: set[str]) -> str | None:
    if not isinstance(value, list) or not value:
        return f"must be a non-empty list of tool schemas, got {value!r}"
    for i, tool in enumerate(value):
        fn = tool.get("function", tool) if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not isinstance(
                fn.get("parameters", {}), dict):
            return f"item {i} must be a tool schema with a string `name` and an object `parameters`"
    return None


def check_call(value: Any, labels: set[str]) -> str | None:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not isinstance(
            value.get("arguments"), dict):
        return f'must be {{"name": str, "arguments": object}}, got {value!r}'
    return None


def check_call_offered(row: Mapping[str, Any], fields: Any) -> str | None:
    """The gold call names one of the tools the row offers (else no answer could be right)."""
    offered = {t.get("function", t)["name"] for t in row[fields.tools]}
    call = row[fields.target]
    if call["name"] not in offered:
        return f"gold call {call['name']!r} is not among the row's tools ({', '.join(sorted(offered))})"
    return None


# --- distillation and routing rules ---------------------------------------------------------------------------------


def parse_label(raw: str, task_cfg: Any) -> tuple[str | None, str | None]:
    """The task label (as written in task.labels) the teacher's answer gives, by the evaluation's own extractor
    (`slmexp.tasks.extract.extract_label`), so a student is trained on exactly what its evaluation would score."""
    if not (raw or "").strip():
        return None, "empty output"
    label = extract_label(raw, task_labels(task_cfg), task_cfg.get("answer_prefix"))
    if label is None:
        return None, "not a label"
    return label, None


def label_correct(answer: str, gold: Any, task_cfg: Any) -> float:
    """1.0 when the label extracted from the answer is the gold label (the evaluation's exact_match)."""
    label = extract_label(answer, task_labels(task_cfg), task_cfg.get("answer_prefix"))
    return float(same_label(label, gold))


# --- the record ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskKind:
    """Everything slmexp knows about one task kind. See the module docstring for the recipe."""

    name: str
    # role -> check of the JSONL value the role maps to (`task.fields.<role>` names the field)
    roles: Mapping[str, ValueCheck] = field(default_factory=dict)
    # roles whose `task.fields` entry may be null (then the role is absent from every row)
    optional_roles: frozenset[str] = frozenset()
    # a check on the whole row after its values passed (e.g. the gold call is among the offered tools)
    check_row: RowCheck | None = None
    # the role holding the gold answer (`gold_value`, training target, routed correctness)
    gold_role: str | None = None
    # the task config must list its labels (`task.labels`)
    needs_labels: bool = False
    # metric names the lm-eval template reports, the default primary first; empty for kind lm_eval, whose
    # metrics are whatever the named lm-eval tasks define
    metrics: tuple[str, ...] = ()
    # lm-eval template file under slmexp/tasks/lm_eval/ (None: lm-eval's own tasks)
    template: str | None = None
    # the rendered lm-eval doc lists task.labels as `choices`
    doc_choices: bool = False
    # lm-eval doc key -> role whose value the doc carries as a JSON string (structured golds, see metrics.py)
    doc_json: Mapping[str, str] = field(default_factory=dict)
    # distillation: the rule turning a teacher's raw answer into a training label (None: cannot be distilled)
    teacher_parse: TeacherParse | None = None
    teacher_parse_note: str | None = None  # what the rule demands, in words, for the run record
    # routing: (SLM or LLM answer, gold, task config) -> 0/1 for the routed accuracy (None: not routed end to end)
    routed_correct: RoutedCorrect | None = None
    # routing: a generated answer's validity, 1.0/0.0, as the SLM's confidence (None: no validity check)
    validity: Callable[[str, Any], float] | None = None
    # routing: the confidence function `router.confidence: null` picks ("label_prob" | "validity")
    default_confidence: str | None = None

    @property
    def is_routable(self) -> bool:
        return self.routed_correct is not None

    @property
    def can_distill(self) -> bool:
        return self.teacher_parse is not None


# kind name -> record: slmexp's own below, plus the `slmexp.task_kinds` entry points of other packages (each a
# "module:attr" naming a TaskKind; slmexp.registry), loaded when first used.
KINDS = Registry("slmexp.task_kinds", {k.name: k for k in (
    TaskKind(
        name="classification",
        roles={"text": check_string, "label": check_label},
        gold_role="label", needs_labels=True,
        metrics=("exact_match", "strict_match", "valid_label"), template="classification.yaml", doc_choices=True,
        teacher_parse=parse_label,
        teacher_parse_note="the evaluation's label extractor (slmexp.tasks.extract) must find one of task.labels",
        routed_correct=label_correct, default_confidence="label_prob",
    ),
    TaskKind(
        name="extraction",
        roles={"text": check_string, "target": check_object}, gold_role="target",
        metrics=("exact_match", "field_f1", "json_valid", "json_strict"), template="extraction.yaml",
        doc_json={"gold": "target"},
        validity=valid_extraction, default_confidence="validity",
    ),
    TaskKind(
        name="tool_call",
        roles={"text": check_string, "tools": check_tools, "target": check_call}, check_row=check_call_offered,
        gold_role="target",
        metrics=("exact_match", "name_accuracy", "args_f1", "valid_call"), template="tool_call.yaml",
        doc_json={"gold": "target", "tools": "tools"},
        validity=valid_tool_call, default_confidence="validity",
    ),
    TaskKind(
        name="qa",
        roles={"text": check_string, "target": check_answers, "context": check_string},
        optional_roles=frozenset({"context"}), gold_role="target",
        metrics=("f1", "exact_match"), template="qa.yaml", doc_json={"gold": "target"},
        validity=valid_answer, default_confidence="validity",
    ),
    # lm-eval's own benchmarks: lm-eval loads the data and scores it (slmexp.evaluate); no rows of ours to check
    TaskKind(name="lm_eval"),
)})


def kind(name: str) -> TaskKind:
    """The record of task kind `name`; KeyError names the known kinds (config validation reports it earlier)."""
    try:
        found = KINDS[name]
    except KeyError:
        raise KeyError(f"unknown task kind {name!r}; known: {', '.join(KINDS)}") from None
    if not isinstance(found, TaskKind):
        raise TypeError(f"task kind {name!r} ({KINDS.origin(name)}) is a {type(found).__name__}, not a TaskKind")
    return found
