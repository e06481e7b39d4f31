"""Tasks: load and validate JSONL splits, render prompts, and hand lm-eval a task that reads local files.

The one home for prompt rendering: evaluation (through lm-eval) and training both take the user turn from
`render_prompt` and the answer from `render_target`, and the model's chat template wraps them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from slmexp.errors import ConfigError, DataError
from slmexp.tasks import jsonl
from slmexp.tasks.extract import check_labels, task_labels
from slmexp.tasks.kinds import TaskKind
from slmexp.tasks.kinds import kind as kind_record

LM_EVAL_TEMPLATES = Path(__file__).resolve().parent / "lm_eval"


def _fail(key: str, message: str) -> ConfigError:
    """`slmexp.origin.fail`, imported when an error is raised: config.py reads the task-kind records
    (slmexp.tasks.kinds), so this package must not import config while it is itself being imported."""
    from slmexp.origin import fail

    return fail(key, message)


@dataclass
class Task:
    """A task config plus its validated rows, per split."""

    cfg: DictConfig
    splits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    # kind lm_eval: the TaskManager that found the named tasks, and test prompts for the speed stage
    lm_eval_manager: Any = None
    prompts: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.cfg.name)

    @property
    def kind(self) -> str:
        return str(self.cfg.kind)

    @property
    def task_kind(self) -> TaskKind:
        """The kind's record (slmexp.tasks.kinds): the facts callers read instead of comparing kind names."""
        return kind_record(self.kind)

    @property
    def labels(self) -> list[str]:
        """`task.labels` as written (a list, or the keys of a label -> description mapping)."""
        return task_labels(self.cfg)

    @property
    def lm_eval_name(self) -> str:
        return "slmexp_" + self.name.replace("-", "_")


def read_jsonl(path: Path, key: str) -> tuple[list[dict[str, Any]], str]:
    """Parse a JSONL file (the rules of `slmexp.tasks.jsonl`); bad lines raise one DataError listing them with
    file:line. Returns rows and the sha256 of the file's bytes."""
    rows, sha, problems = _read_split(Path(path), key)
    _refuse(Path(path), key, rows, problems)
    return rows, sha


def _read_split(path: Path, key: str) -> tuple[list[dict[str, Any]], str, list[jsonl.Problem]]:
    """A split's rows, sha256 and unparsable lines; a missing file is a config error on `key` (with its origin)."""
    if not path.is_file():
        raise _fail(key, f"data file not found: {path}")
    return jsonl.read(path, key)


def _refuse(path: Path, key: str, rows: list[dict[str, Any]], problems: list[jsonl.Problem]) -> None:
    """Raise a file's problems, all in one DataError, or that it has no rows at all."""
    if problems:
        raise jsonl.data_error(path, key, problems)
    if not rows:
        raise DataError(f"{path}: no rows [{key}]")


def _check_config(task: Task) -> None:
    """What the task config must say before its files are worth reading: every required role mapped to a field, and
    labels the normaliser can tell apart (`check_labels`: none empty, none the same once normalised)."""
    kind = kind_record(task.kind)
    for role in kind.roles:
        if role not in kind.optional_roles and not task.cfg.fields.get(role):
            raise _fail(f"task.fields.{role}", f"a {kind.name} task maps its {role!r} role to a JSONL field; set it")
    if not kind.needs_labels:
        return
    raw = task.cfg.get("labels")
    entries = list(raw.keys()) if isinstance(raw, DictConfig) else list(raw or [])
    for i, label in enumerate(entries):  # str() would turn a null or a nested list into a "label" named `None`
        if label is None or isinstance(label, DictConfig | ListConfig | dict | list):
            raise _fail("task.labels", f"item {i} is {label!r}: each label is a string")
    if why := check_labels(task.labels):
        raise _fail("task.labels", why)  # answers could not tell these labels apart (slmexp.tasks.extract)


def load_task(task_cfg: DictConfig, splits: list[str]) -> Task:
    """Read and validate the named splits (each `task.data.<split>`). A file's bad lines are reported together, in
    one DataError (`slmexp.tasks.jsonl`): the job's validate stage calls this, so they fail before any model loads."""
    task = Task(task_cfg)
    kind = kind_record(task.kind)
    if not kind.roles:  # lm-eval's own tasks: lm-eval loads their datasets (slmexp.evaluate)
        return task
    _check_config(task)
    labels = set(task.labels)
    for split in splits:
        key = f"task.data.{split}"
        value = OmegaConf.select(task_cfg, f"data.{split}")
        if not value:
            raise _fail(key, "is not set")
        path = task.files[split] = Path(str(value)).expanduser()
        rows, sha, problems = _read_split(path, key)
        _refuse(path, key, rows, problems + jsonl.row_problems(kind, task_cfg.fields, labels, rows))
        task.splits[split] = rows
        task.sha256[split] = sha
    return task


def _to_json(value: Any) -> str:
    """Compact, readable JSON for prompts (Jinja's own `tojson` HTML-escapes `<`, `>`, `&` and `'`)."""
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value, resolve=True)
    return json.dumps(value, ensure_ascii=False)


@cache
def _jinja_env():
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
    env.filters["json"] = _to_json
    return env


def _field(task_cfg: DictConfig, row: dict[str, Any], role: str) -> Any:
    name = task_cfg.fields.get(role)
    return row.get(name) if name else None


def render_prompt(task_cfg: DictConfig, row: dict[str, Any]) -> str:
    """The user turn for one example (the chat template is applied later, by the model's tokenizer).

    The template sees `text`, `labels` (classification), `tools` (tool calls), `context` (qa, when mapped) and
    the whole `row`, so a user task can show any other field without Python.
    """
    labels = OmegaConf.to_container(task_cfg.labels, resolve=True) if task_cfg.get("labels") else {}
    if isinstance(labels, list):
        labels = {x: "" for x in labels}
    tools = _field(task_cfg, row, "tools") or []
    template = _jinja_env().from_string(str(task_cfg.prompt))
    return template.render(text=row[task_cfg.fields.text], labels=labels, row=row,
                           tools=[t.get("function", t) if isinstance(t, dict) else t for t in tools],  # agent: names
                           context=_field(task_cfg, row, "context")).strip()


def gold_value(task_cfg: DictConfig, row: dict[str, Any]) -> Any:
    """The structured gold answer: the label, the target object, the call, or the list of accepted answers (the
    field the kind's `gold_role` maps to)."""
    return row[task_cfg.fields[kind_record(str(task_cfg.kind)).gold_role]]


def render_target(task_cfg: DictConfig, row: dict[str, Any]) -> str:
    """The answer text the model should produce (training target and few-shot answer): the label, compact JSON
    for objects and calls (keys in the data's order), the first accepted answer for qa."""
    gold = gold_value(task_cfg, row)
    if isinstance(gold, dict):
        return json.dumps(gold, ensure_ascii=False)
    if isinstance(gold, list):
        return str(gold[0])
    return str(gold)


def chat_messages(task_cfg: DictConfig, row: dict[str, Any], with_answer: bool) -> list[dict[str, str]]:
    """The conversation both training and evaluation give the model's chat template."""
    msgs = [{"role": "user", "content": render_prompt(task_cfg, row)}]
    if with_answer:
        msgs.append({"role": "assistant", "content": render_target(task_cfg, row)})
    return msgs


def lm_eval_doc(task: Task, split: str, i: int, row: dict[str, Any]) -> dict[str, Any]:
    """One rendered example as our lm-eval templates read it; structured golds as JSON strings (see metrics)."""
    cfg = task.cfg
    id_field = cfg.fields.get("id") or "id"  # pairs examples across runs in the report's statistics
    doc: dict[str, Any] = {"id": str(row.get(id_field, f"{split}-{i}")), "prompt": render_prompt(cfg, row),
                           "target": render_target(cfg, row)}
    kind = kind_record(task.kind)
    if kind.doc_choices:  # the label extractor reads both (slmexp.tasks.extract)
        doc["choices"] = task.labels
        doc["answer_prefix"] = str(cfg.get("answer_prefix") or "")
        if str(cfg.get("formulation") or "generate") == "choice":  # lm-eval multiple_choice: the gold's index
            from slmexp.tasks.extract import normalize_label

            labels = [normalize_label(x) for x in task.labels]
            doc["gold_index"] = labels.index(normalize_label(doc["target"]))
    for key, role in kind.doc_json.items():
        doc[key] = json.dumps(_field(cfg, row, role), ensure_ascii=False)
    return doc


def write_lm_eval_task(task: Task, out_dir: Path, splits: list[str], use_chat_template: bool) -> Path:
    """Write rendered data and a task YAML (including our shipped template) that lm-eval reads offline.

    The YAML names absolute `data_files`: lm-eval resolves relative ones against the working directory.
    """
    out_dir = Path(out_dir)
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    data_files = {}
    for split in splits:
        path = data_dir / f"{split}.jsonl"
        with open(path, "w") as f:
            for i, row in enumerate(task.splits[split]):
                f.write(json.dumps(lm_eval_doc(task, split, i, row), ensure_ascii=False) + "\n")
        data_files[split] = str(path.resolve())
    gen = task.cfg.generation
    prefix = task.cfg.get("answer_prefix") or ""
    choice = str(task.cfg.get("formulation") or "generate") == "choice"
    template = "classification_choice.yaml" if choice else str(kind_record(task.kind).template)
    cfg: dict[str, Any] = {
        "task": task.lm_eval_name,
        "include": str(LM_EVAL_TEMPLATES / template),
        "dataset_kwargs": {"data_files": data_files},
        "test_split": splits[0],
        # Models with a chat template get the bare user turn; plain LMs get the answer prefix to continue.
        "doc_to_text": "{{prompt}}" if use_chat_template else "{{prompt}}\n" + prefix,
        "generation_kwargs": {
            "until": list(gen.until),
            "max_gen_toks": int(gen.max_new_tokens),
            "do_sample": False,
        },
    }
    if choice:  # each label scored as the answer: after the chat template's assistant turn, or " label" after
        del cfg["generation_kwargs"]  # the answer prefix (as slmexp.router scores labels)
        cfg["target_delimiter"] = "" if use_chat_template else " "
    if "train" in data_files:
        cfg["fewshot_split"] = "train"
    path = out_dir / f"{task.lm_eval_name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return path
