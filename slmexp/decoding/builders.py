"""slmexp's own constraint builders: each task kind's answer space under `decoding=constrained`, built from the
task's loaded rows (a `TaskKind` names its builder as "module:attr": `slmexp.tasks.kinds`).

Why a module of its own, named by string rather than imported: a builder reads rows through `slmexp.tasks` (gold
values, rendered prompts), and `slmexp.tasks` imports the task-kind records; the records naming their builder as a
string keeps the kinds module cheap at config time and free of an import cycle. `slmexp.decoding.build` resolves
and calls the builder; `slmexp.decoding.check` has already refused kinds that have none.
"""

from __future__ import annotations

from typing import Any

from slmexp.decoding import extraction_schema
from slmexp.decoding.schema import first_violation, number_bound, string_bound, tool_call_schema
from slmexp.decoding.spec import Constraint, ConstraintSpec
from slmexp.tasks import gold_value, render_prompt


def _rows(task: Any) -> list[tuple[str, dict[str, Any]]]:
    """(file:line, row) of every loaded split: where a gold answer the constraint rejects is reported."""
    return [(f"{task.files.get(split, split)}:{row.get('_line', i + 1)}", row)
            for split, split_rows in task.splits.items() for i, row in enumerate(split_rows)]


def label_choices(task: Any) -> ConstraintSpec:
    """Classification: exactly one of `task.labels`, as written."""
    return ConstraintSpec(task.kind, default=Constraint(task.kind, choices=tuple(task.labels)))


def json_object(task: Any) -> ConstraintSpec:
    """Extraction: `task.schema`, else the schema derived from the gold objects of every loaded split; either must
    accept every loaded gold object (else the constraint would make the right answer impossible: an error naming
    `task.schema` and the row)."""
    schema = extraction_schema(task)
    golds = [(where, gold_value(task.cfg, row)) for where, row in _rows(task)]
    if why := first_violation(schema, golds):
        from slmexp.origin import fail

        raise fail("task.schema", why)
    return ConstraintSpec(task.kind, default=Constraint(task.kind, schema=schema))


def tool_calls(task: Any) -> ConstraintSpec:
    """Tool calls: per rendered prompt, one of the row's offered tools with arguments valid under its schema
    (strings and numbers bounded by the gold arguments seen: slmexp.decoding.schema)."""
    rows = _rows(task)
    tools_field = task.cfg.fields.tools
    args = [gold_value(task.cfg, row)["arguments"] for _where, row in rows]
    bound, numbers = string_bound(args), number_bound(args)
    return ConstraintSpec(task.kind, by_prompt={
        render_prompt(task.cfg, row): Constraint(task.kind, schema=tool_call_schema(row[tools_field], bound, numbers),
                                                 tools=tuple(row[tools_field]))
        for _where, row in rows})
