"""Structured outputs: the `decoding` group (free | constrained) turned into one constraint per prompt.

`decoding=constrained` forces each answer into the task's answer space, on every runtime that can: the
classification label (exactly one of `task.labels`, as written), the extraction object (a JSON Schema, `task.schema`
or derived from the gold objects: slmexp.decoding.schema), the tool call (one of the row's offered tools with
arguments valid under its schema). QA answers are free text: constraining them is refused (a stop string and the
token budget already bound them). Each task kind declares its answer space (`TaskKind.constraint`, the builder;
`no_constraint_why`, `takes_schema`, `needs_labels` for `task.formulation=choice`: slmexp.tasks.kinds); slmexp's own
builders are in slmexp.decoding.builders, so this module names no task kind.

How it reaches the model: `build(cfg, task)` returns a `ConstraintSpec` before any model loads; the pipeline (and
the distillation teacher and router, slmexp.teacher) hand it to `runtime.constrain(spec)`; each runtime turns a
`Constraint` into its own library's form (llama.cpp: GBNF; transformers: llguidance; vLLM: structured-output
params; openai: `response_format` / `tools`) and applies it to the accuracy pass and to `stream()` (the speed
stage), which look the constraint up by the prompt (`for_doc`, `for_text`): tool calls differ per row.

This module is imported at config time: it imports nothing heavy (jsonschema when a schema is checked).
"""

from __future__ import annotations

import copy
from typing import Any

from omegaconf import DictConfig, OmegaConf

from slmexp.decoding.schema import derive_schema, schema_problem
from slmexp.decoding.spec import Constraint as Constraint  # re-exported: the stage's public types
from slmexp.decoding.spec import ConstraintSpec
from slmexp.errors import SlmexpError

MODES = ("free", "constrained")
FORMULATIONS = ("generate", "choice")
BUDGETS = ("fit", "task")


def mode(cfg: DictConfig) -> str:
    """`decoding.name` (free when the group is absent: configs written before the group existed)."""
    dec = cfg.get("decoding")
    return str(dec.get("name") or "free") if dec is not None else "free"


def formulation(task_cfg: DictConfig) -> str:
    """`task.formulation`: generate (the answer is generated, then parsed) or choice (the likeliest label)."""
    return str(task_cfg.get("formulation") or "generate")


def check(cfg: DictConfig, runtime_cls: type | None = None) -> None:
    """Config-time checks of `decoding.name` and `task.formulation` against the task kind and the runtime class
    (its `constrained_decoding` / `scores_choices` attributes), before any model loads."""
    from slmexp.origin import fail
    from slmexp.runtimes import capabilities
    from slmexp.tasks.kinds import KINDS
    from slmexp.tasks.kinds import kind as kind_record

    m, form, kind = mode(cfg), formulation(cfg.task), str(cfg.task.kind)
    if kind not in KINDS:
        return  # slmexp.schema.rules.task_fits_its_kind names the unknown kind
    record = kind_record(kind)
    if m not in MODES:
        raise fail("decoding.name", f"{m!r} is not one of {', '.join(MODES)}")
    if form not in FORMULATIONS:
        raise fail("task.formulation", f"{form!r} is not one of {', '.join(FORMULATIONS)}")
    if runtime_cls is None:
        from slmexp.runtimes import runtime_class

        runtime_cls = runtime_class(cfg.runtime)
    runtime = str(cfg.runtime.name)
    if form == "choice":
        if not record.needs_labels:
            raise fail("task.formulation", f"choice scores each of task.labels; task={cfg.task.name} is a {kind} "
                       "task without labels (use task.formulation=generate)")
        if not capabilities(runtime_cls).scores_choices:
            raise fail("task.formulation", f"choice needs each label's log-likelihood, which runtime={runtime} "
                       "does not give (chat endpoints return text); use a local runtime (transformers, llamacpp, "
                       "ortgenai, vllm) or task.formulation=generate")
        if m == "constrained":
            raise fail("decoding.name", "task.formulation=choice already answers one of task.labels (nothing is "
                       "generated to constrain); use decoding=free with it")
    if m == "free":
        return
    budget = str(cfg.decoding.get("budget") or "task")
    if budget not in BUDGETS:
        raise fail("decoding.budget", f"{budget!r} is not one of {', '.join(BUDGETS)}")
    if record.constraint is None:
        why = record.no_constraint_why or f"task={{task}} is a {kind} task, which declares no answer space to " \
            "constrain; use decoding=free"
        raise fail("decoding.name", why.format(task=cfg.task.name))
    for role, cls, name in [("", runtime_cls, runtime), *_other_runtimes(cfg)]:
        can = capabilities(cls)
        if not can.constrained_decoding:
            why = can.constrained_decoding_note or "it has no structured-output support"
            raise fail("decoding.name", f"{role}runtime={name} cannot constrain decoding: {why}. Runtimes that "
                       "can: transformers, llamacpp, openai (and its server recipes)")
    schema = cfg.task.get("schema")
    if schema is not None:
        if not record.takes_schema:
            takers = " and ".join(n for n in KINDS if kind_record(n).takes_schema) or "no"
            raise fail("task.schema", f"only {takers} tasks take a schema (a {kind} task's answer space comes "
                       f"from its {record.answer_space or 'kind'})")
        container = OmegaConf.to_container(schema, resolve=True) if OmegaConf.is_config(schema) else schema
        if why := schema_problem(container):
            raise fail("task.schema", why)


def _other_runtimes(cfg: DictConfig) -> list[tuple[str, type, str]]:
    """(role, runtime class, name) of the job's other models that generate under the same decoding: the
    distillation teacher and the router's LLM, when enabled."""
    from slmexp.runtimes import runtime_class

    out = []
    for role, key in (("distill.teacher: ", "distill.teacher.runtime"), ("router.llm: ", "router.llm.runtime")):
        owner = key.split(".")[0]
        if str(OmegaConf.select(cfg, f"{owner}.name", default="none") or "none") == "none":
            continue
        rcfg = OmegaConf.select(cfg, key)
        if rcfg is not None and rcfg.get("_target_"):
            out.append((role, runtime_class(rcfg), str(rcfg.get("name"))))
    return out


def build(cfg: DictConfig, task: Any) -> ConstraintSpec | None:
    """The constraint of each prompt of `task` (loaded rows), or None under `decoding=free`: the task kind's own
    constraint builder (`TaskKind.constraint`; slmexp's kinds: slmexp.decoding.builders), called before any model
    loads. An extraction schema that rejects a loaded gold object is an error naming `task.schema` and the row.
    """
    if mode(cfg) != "constrained":
        return None
    from slmexp.tasks.kinds import kind as kind_record

    builder = kind_record(task.kind).constraint_builder()  # the kind's own (slmexp.decoding.builders for slmexp's)
    if builder is None:  # check() refused it earlier
        raise SlmexpError(f"decoding=constrained: no constraint for task kind {task.kind!r}")
    return builder(task)


def fit_budget(cfg: DictConfig, spec: ConstraintSpec | None) -> dict[str, Any] | None:
    """`decoding.budget=fit`: the `task.generation.max_new_tokens` every stage of the job should use, raised to the
    longest answer the constraint admits so the grammar can always close the answer, as the record's block (what was
    done and why); `with_budget` makes the job's config from it (`cfg` itself is not changed). Why: under a grammar
    a small model can loop inside a value (a vendor name repeated to its length bound); the task's budget (sized for
    real answers) then cuts the JSON, and the answer counts as invalid though the constraint would have ended it.
    Each token adds at least one character, so characters bound tokens. Well-formed answers end where they did: only
    looping ones run longer. `task` keeps the task's budget."""
    if spec is None:
        return None
    rule = str(cfg.decoding.get("budget") or "task")  # checked by `check`
    asked = int(cfg.task.generation.max_new_tokens)
    longest = spec.max_chars
    block: dict[str, Any] = {"rule": rule, "task_max_new_tokens": asked, "answer_max_chars": longest,
                             "max_new_tokens": asked}
    if rule == "fit" and longest is not None and longest > asked:
        block["max_new_tokens"] = longest
    elif longest is None:
        block["note"] = "the answer space is unbounded (a string without maxLength, an array without maxItems)"
    return block


def with_budget(cfg: DictConfig, block: dict[str, Any] | None) -> DictConfig:
    """A copy of `cfg` (which is not changed) with the fitted budget (`fit_budget`'s block) in
    `task.generation.max_new_tokens`. Every key that interpolates the task's budget (a runtime's `max_gen_toks`,
    `eval.max_new_tokens`) follows it in the copy."""
    job_cfg = copy.deepcopy(cfg)
    if block is not None and block["max_new_tokens"] != int(cfg.task.generation.max_new_tokens):
        job_cfg.task.generation.max_new_tokens = int(block["max_new_tokens"])
    return job_cfg


def extraction_schema(task: Any) -> dict[str, Any]:
    """`task.schema` as written, else derived from the gold objects of every loaded split (slmexp.decoding.schema)."""
    from slmexp.tasks import gold_value

    given = task.cfg.get("schema")
    if given is not None:
        return OmegaConf.to_container(given, resolve=True) if OmegaConf.is_config(given) else dict(given)
    return derive_schema(gold_value(task.cfg, row) for rows in task.splits.values() for row in rows)


def attach(runtime: Any, spec: ConstraintSpec | None) -> Any:
    """`runtime` constrained to `spec` (`runtime.constrain(spec)`), or as it is under decoding=free."""
    if spec is not None:
        runtime.constrain(spec)
    return runtime
