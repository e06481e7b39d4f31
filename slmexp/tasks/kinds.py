"""Task kinds: one record per kind holds every fact the framework needs about it, so no other module branches on
`task.kind`.

A kind says what a row holds (its roles and how each value is checked when the JSONL is loaded), how lm-eval
scores it (the template and the metrics it reports, primary first, each declared with its direction, aggregation,
whether it is a 0/1 score and whether it is the validity metric), how an answer is found in a raw generation (the
per-example store and `slmexp rescore`), the answer space `decoding=constrained` forces (its constraint builder),
how a teacher's answer becomes a training label (distillation), and how the router judges the small model's answer
(confidence and correctness). A record field left None means "this kind does not support that": decoding,
distillation and routing refuse such a kind at config time, naming the key, before any model loads.

Adding a task kind (3 files; tests/test_task_kinds.py builds one as a worked example):
  1. its `TaskKind` record, here in `KINDS` or in another package (entry point below). It declares:
     - `roles` (role -> value check) and `optional_roles`, `check_row`, `gold_role`, `needs_labels` (the answer is
       one of `task.labels`: chance level, `task.formulation=choice`), `doc_choices`, `doc_json`;
     - `metrics`: `Metric(name, higher_is_better, aggregation, binary, validity)` specs, the primary first (a bare
       name is a non-binary mean metric; `kind.metrics` reads back the names, `kind.metric_specs` the specs); at
       most one `validity=True` (the share of answers in the answer space, which the report shows and
       decoding=constrained forces); `binary=True` for a 0/1 score per example (the report's Wilson interval);
     - `template`: its lm-eval template, whose `process_results` returns exactly `metrics`;
     - `extract(doc, raw) -> answer`: the answer the metric compares with the gold (None: the raw output is kept);
     - `constraint(task) -> ConstraintSpec` (a callable, or a "module:attr" string resolved on use) and
       `answer_space` (where its answers come from, in words), or `constraint=None` and `no_constraint_why` (why
       decoding=constrained is refused; `{task}` is the task's name); `takes_schema` if `task.schema` shapes it;
     - optionally `teacher_parse` (distillation), `routed_correct`, `validity`, `default_confidence` (routing).
     Metric functions and answer parsers go in `slmexp/tasks/metrics.py`; the classification label parser, shared
     by evaluation, distillation and routing, is `slmexp/tasks/extract.py`; slmexp's own constraint builders are
     in `slmexp/decoding/builders.py`.
  2. its lm-eval template, `slmexp/tasks/lm_eval/<template>`, whose `metric_list` and `process_results` give the
     record's metrics (tests/test_task_kinds.py holds the two to each other);
  3. a test: a small JSONL task of the kind loading, extracting, scoring and constraining.
`task.kind` in a task YAML then accepts it; config validation, data loading, lm-eval, the per-example store,
decoding and the report read the record. Another package adds a kind without touching slmexp: an entry point in
the group `slmexp.task_kinds` (`toy = "yourpkg.kinds:TOY"`, a TaskKind whose `template` is an absolute path to its
lm-eval template).

This module is imported at config time: it imports nothing heavier than `slmexp.tasks.metrics` and
`slmexp.tasks.extract` (pure Python); constraint builders are named as "module:attr" strings (they read rows
through `slmexp.tasks`, which imports this module).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slmexp.registry import Registry, load_ref
from slmexp.tasks.extract import extract_label, normalize_label, same_label, task_labels
from slmexp.tasks.metrics import (
    parse_json_output,
    parse_tool_call,
    valid_answer,
    valid_extraction,
    valid_tool_call,
)

# (value, the task's labels) -> why the value is not valid, or None
ValueCheck = Callable[[Any, set[str]], "str | None"]
# (row, task.fields) -> why the row as a whole is not valid, or None
RowCheck = Callable[[Mapping[str, Any], Any], "str | None"]
# (raw teacher output, the task config) -> (training label, None) or (None, why it was rejected)
TeacherParse = Callable[[str, Any], "tuple[Any, str | None]"]
# (an answer, the gold value, the task config) -> 1.0 right / 0.0 wrong
RoutedCorrect = Callable[[str, Any, Any], float]
# (the lm-eval doc, the raw generation) -> the answer the metric compares with the gold (None: none found)
Extract = Callable[[Mapping[str, Any], str], Any]
# (a loaded slmexp.tasks.Task) -> its slmexp.decoding.ConstraintSpec
ConstraintBuilder = Callable[[Any], Any]


@dataclass(frozen=True)
class Metric:
    """One metric a kind's lm-eval template reports, with what the report and rescoring need to know of it."""

    name: str
    higher_is_better: bool = True
    aggregation: str = "mean"  # lm-eval's aggregation of the per-example values
    # a 0/1 score per example: its run value is a proportion (the report's Wilson interval from n alone)
    binary: bool = False
    # the share of answers inside the kind's answer space (what decoding=constrained forces; the report's column)
    validity: bool = False
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


def check_tool_names(value: Any, labels: set[str]) -> str | None:
    ok = isinstance(value, list) and value and all(isinstance(n, str) and n for n in value)
    return None if ok else f"must be a non-empty list of tool names, got {value!r}"


def check_episode_gold(value: Any, labels: set[str]) -> str | None:
    """An agent episode's gold: `calls` (the gold trajectory, [{"name", "arguments"}]), `answer` (the facts the
    final answer must state) and `reply` (the gold final answer, a training target)."""
    if not isinstance(value, dict) or not isinstance(value.get("calls"), list) or not isinstance(
            value.get("answer"), list) or not isinstance(value.get("reply"), str):
        return f'must be {{"calls": [...], "answer": [...], "reply": str}}, got {str(value)[:80]}'
    return next((f"calls[{i}]: {why}" for i, c in enumerate(value["calls"]) if (why := check_call(c, labels))), None)


def check_call_offered(row: Mapping[str, Any], fields: Any) -> str | None:
    """The gold call names one of the tools the row offers (else no answer could be right)."""
    offered = {t.get("function", t)["name"] for t in row[fields.tools]}
    call = row[fields.target]
    if call["name"] not in offered:
        return f"gold call {call['name']!r} is not among the row's tools ({', '.join(sorted(offered))})"
    return None


# --- answer extraction: the answer each kind's metric compares with the gold (slmexp.generations) ----------------


def extract_choice(doc: Mapping[str, Any], raw: str) -> str | None:
    """The label the evaluation's extractor finds (the doc's `choices` are task.labels)."""
    return extract_label(raw, list(doc.get("choices") or []), doc.get("answer_prefix"))


def extract_object(doc: Mapping[str, Any], raw: str) -> dict[str, Any] | None:
    """The JSON object the output holds (a code fence allowed), or None."""
    value, _status = parse_json_output(raw)
    return value if isinstance(value, dict) else None


def extract_call(doc: Mapping[str, Any], raw: str) -> dict[str, Any] | None:
    """The `{"name", "arguments"}` call the output holds, or None."""
    return parse_tool_call(raw)


def extract_first_line(doc: Mapping[str, Any], raw: str) -> str:
    """The first line of the output (a QA answer)."""
    text = raw.strip()
    return text.splitlines()[0].strip() if text else ""


def extract_episode(doc: Mapping[str, Any], raw: str) -> dict[str, Any]:
    """An agent episode's final answer and the checker's verdict (raw: its transcript; slmexp.tasks.agent)."""
    from slmexp.tasks.agent.judge import extract

    return extract(doc, raw)


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
    # the task config lists its labels (`task.labels`) and the answer is one of them: chance level is 1/labels and
    # `task.formulation=choice` (the likeliest label) applies
    needs_labels: bool = False
    # the metrics the lm-eval template reports, the default primary first: `Metric` specs or bare names (a bare
    # name is `Metric(name)`). Read back as names here (`__post_init__`) and as specs in `metric_specs`. Kind
    # lm_eval declares the multiple-choice metrics lm-eval's own tasks report (acc, acc_norm); a named lm-eval
    # task may report others.
    metrics: tuple[str | Metric, ...] = ()
    # filled from `metrics` (a bare name keeps the spec of that name given here: `dataclasses.replace` passes both)
    metric_specs: tuple[Metric, ...] = ()
    # lm-eval template file under slmexp/tasks/lm_eval/ (None: lm-eval's own tasks)
    template: str | None = None
    # the rendered lm-eval doc lists task.labels as `choices`
    doc_choices: bool = False
    # lm-eval doc key -> role whose value the doc carries as a JSON string (structured golds, see metrics.py)
    doc_json: Mapping[str, str] = field(default_factory=dict)
    # (lm-eval doc, raw generation) -> the answer the metric compares with the gold (None: the raw output is kept)
    extract: Extract | None = None
    # decoding=constrained: (loaded task) -> its ConstraintSpec, a callable or a "module:attr" string resolved on
    # use (None: the kind has no answer space to constrain, and `no_constraint_why` says why)
    constraint: ConstraintBuilder | str | None = None
    # where a constrained answer's space comes from, after "its" (the error when task.schema is given wrongly)
    answer_space: str | None = None
    # why decoding=constrained is refused for this kind (`{task}`: the task's name)
    no_constraint_why: str | None = None
    # `task.schema` (a JSON Schema) shapes the constraint; other kinds refuse it
    takes_schema: bool = False
    # lm-eval loads and scores the data itself (lm-eval's own tasks): no rows, ids or prompts of slmexp's
    lm_eval_native: bool = False
    # distillation: the rule turning a teacher's raw answer into a training label (None: cannot be distilled)
    teacher_parse: TeacherParse | None = None
    teacher_parse_note: str | None = None  # what the rule demands, in words, for the run record
    # routing: (SLM or LLM answer, gold, task config) -> 0/1 for the routed accuracy (None: not routed end to end)
    routed_correct: RoutedCorrect | None = None
    # routing: a generated answer's validity, 1.0/0.0, as the SLM's confidence (None: no validity check)
    validity: Callable[[str, Any], float] | None = None
    # routing: the confidence function `router.confidence: null` picks ("label_prob" | "validity")
    default_confidence: str | None = None
    # the kind's own evaluation, "module:attr" of `(runtime, task, eval_cfg, out_dir, *, constraints) -> EvalResult`,
    # called by the serving stage instead of lm-eval (kind `agent`: multi-turn episodes are no one lm-eval request).
    # It writes samples/generations in lm-eval's shapes and times what it scores (EvalResult.speed): the serving
    # stage then runs no separate speed pass. It needs the runtime's `chat` capability (checked at config time).
    runner: str | None = None
    # training rows other than one prompt/answer pair per row: "module:attr" of `(task_cfg, row) -> [{"prompt":
    # [messages], "completion": [message]}]` (kind `agent`: one example per assistant turn of a gold trajectory)
    sft_rows: str | None = None

    def __post_init__(self) -> None:
        """Split `metrics` into names (what every reader of `kind.metrics` expects) and specs."""
        known = {m.name: m for m in self.metric_specs}
        specs = tuple(m if isinstance(m, Metric) else known.get(str(m), Metric(str(m))) for m in self.metrics)
        if sum(m.validity for m in specs) > 1:
            raise ValueError(f"task kind {self.name!r}: more than one validity metric")
        object.__setattr__(self, "metric_specs", specs)
        object.__setattr__(self, "metrics", tuple(m.name for m in specs))

    @property
    def is_routable(self) -> bool:
        return self.routed_correct is not None

    @property
    def can_distill(self) -> bool:
        return self.teacher_parse is not None

    @property
    def validity_metric(self) -> str | None:
        """The metric that is the share of valid answers (the report's validity column), or None."""
        return next((m.name for m in self.metric_specs if m.validity), None)

    def chance(self, labels: Sequence[str]) -> float | None:
        """The accuracy of a uniform guess among `labels` for a kind whose answer is one label, else None."""
        return 1.0 / len(labels) if self.needs_labels and labels else None

    def constraint_builder(self) -> ConstraintBuilder | None:
        """The constraint builder, imported now if named as "module:attr" (None: decoding=constrained refused)."""
        return load_ref(self.constraint) if isinstance(self.constraint, str) else self.constraint


_BUILDERS = "slmexp.decoding.builders"  # slmexp's own constraint builders (they read rows through slmexp.tasks)

# kind name -> record: slmexp's own below, plus the `slmexp.task_kinds` entry points of other packages (each a
# "module:attr" naming a TaskKind; slmexp.registry), loaded when first used.
KINDS = Registry("slmexp.task_kinds", {k.name: k for k in (
    TaskKind(
        name="classification",
        roles={"text": check_string, "label": check_label},
        gold_role="label", needs_labels=True,
        metrics=(Metric("exact_match", binary=True), Metric("strict_match", binary=True),
                 Metric("valid_label", binary=True, validity=True)),
        template="classification.yaml", doc_choices=True,
        extract=extract_choice, constraint=f"{_BUILDERS}:label_choices", answer_space="labels",
        teacher_parse=parse_label,
        teacher_parse_note="the evaluation's label extractor (slmexp.tasks.extract) must find one of task.labels",
        routed_correct=label_correct, default_confidence="label_prob",
    ),
    TaskKind(
        name="extraction",
        roles={"text": check_string, "target": check_object}, gold_role="target",
        metrics=(Metric("exact_match", binary=True), Metric("field_f1"),
                 Metric("json_valid", binary=True, validity=True), Metric("json_strict", binary=True)),
        template="extraction.yaml", doc_json={"gold": "target"},
        extract=extract_object, constraint=f"{_BUILDERS}:json_object", takes_schema=True,
        answer_space="JSON Schema (task.schema, or the one derived from its gold objects)",
        validity=valid_extraction, default_confidence="validity",
    ),
    TaskKind(
        name="tool_call",
        roles={"text": check_string, "tools": check_tools, "target": check_call}, check_row=check_call_offered,
        gold_role="target",
        metrics=(Metric("exact_match", binary=True), Metric("name_accuracy", binary=True), Metric("args_f1"),
                 Metric("valid_call", binary=True, validity=True)),
        template="tool_call.yaml", doc_json={"gold": "target", "tools": "tools"},
        extract=extract_call, constraint=f"{_BUILDERS}:tool_calls", answer_space="rows' tools",
        validity=valid_tool_call, default_confidence="validity",
    ),
    TaskKind(
        name="qa",
        roles={"text": check_string, "target": check_answers, "context": check_string},
        optional_roles=frozenset({"context"}), gold_role="target",
        metrics=(Metric("f1"), Metric("exact_match", binary=True)), template="qa.yaml", doc_json={"gold": "target"},
        extract=extract_first_line,
        no_constraint_why="task={task} is a qa task: its answers are free text, with no answer space to constrain "
                          "(generation already ends at task.generation.until and max_new_tokens); use decoding=free",
        validity=valid_answer, default_confidence="validity",
    ),
    # multi-step tool use: episodes of a goal, tools over the task's data and a checker (slmexp.tasks.agent)
    TaskKind(
        name="agent",
        roles={"text": check_string, "target": check_episode_gold, "tools": check_tool_names},
        optional_roles=frozenset({"tools"}), gold_role="target",
        metrics=(Metric("success", binary=True), Metric("steps", higher_is_better=False),
                 Metric("tool_calls", higher_is_better=False), Metric("valid_calls"),
                 Metric("tool_errors", higher_is_better=False), Metric("input_tokens", higher_is_better=False),
                 Metric("output_tokens", higher_is_better=False), Metric("wall_s", higher_is_better=False),
                 Metric("answer_s", higher_is_better=False)),
        template="agent.yaml", doc_json={"gold": "target", "tools": "tools"},
        extract=extract_episode, constraint="slmexp.tasks.agent.steps:call_steps",
        answer_space="offered tools and final_answer, per model call",
        runner="slmexp.tasks.agent.runner:evaluate", sft_rows="slmexp.tasks.agent.steps:sft_rows",
    ),
    # lm-eval's own benchmarks: lm-eval loads the data and scores it (slmexp.evaluate); no rows of ours to check
    TaskKind(
        name="lm_eval", lm_eval_native=True,
        metrics=(Metric("acc", binary=True), Metric("acc_norm", binary=True)),
        no_constraint_why="task={task} runs lm-eval's own benchmarks, which define no answer schema; "
                          "use decoding=free",
    ),
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


def declared_metrics() -> Iterator[Metric]:
    """Every metric spec of every kind (plug-ins included), in kind order: what the report derives its sets from."""
    for name in KINDS:
        yield from kind(name).metric_specs


def binary_metrics() -> frozenset[str]:
    """Names some kind declares a 0/1 score per example (the report's Wilson interval when samples are missing)."""
    return frozenset(m.name for m in declared_metrics() if m.binary)


def validity_metrics() -> tuple[str, ...]:
    """The kinds' validity metrics, in kind order, each once (the report's validity column)."""
    return tuple(dict.fromkeys(m.name for m in declared_metrics() if m.validity))
