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

from slmexp.config import fail
from slmexp.errors import DataError

LM_EVAL_TEMPLATES = Path(__file__).resolve().parent / "lm_eval"
TEMPLATE_BY_KIND = {"classification": "classification.yaml", "extraction": "extraction.yaml",
                    "tool_call": "tool_call.yaml", "qa": "qa.yaml"}


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
    def labels(self) -> list[str]:
        labels = self.cfg.get("labels")
        if isinstance(labels, DictConfig):
            return [str(k) for k in labels]
        return [str(x) for x in labels or []]

    @property
    def lm_eval_name(self) -> str:
        return "slmexp_" + self.name.replace("-", "_")


def read_jsonl(path: Path, key: str) -> tuple[list[dict[str, Any]], str]:
    """Parse a JSONL file; a malformed line raises DataError with file:line. Returns rows and the sha256."""
    import hashlib

    path = Path(path)
    if not path.is_file():
        raise fail(key, f"data file not found: {path}")
    raw = path.read_bytes()
    rows = []
    for lineno, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno}) [{key}]") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__} [{key}]")
        row["_line"] = lineno
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows [{key}]")
    return rows, hashlib.sha256(raw).hexdigest()


# Each kind's row roles: role -> what the JSONL field it maps to (task.fields.<role>) must hold. A role whose
# `task.fields` entry is null is optional (qa's `context`).
KIND_ROLES: dict[str, dict[str, str]] = {
    "classification": {"text": "string", "label": "label"},
    "extraction": {"text": "string", "target": "object"},
    "tool_call": {"text": "string", "tools": "tools", "target": "call"},
    "qa": {"text": "string", "target": "answers", "context": "string"},
}
OPTIONAL_ROLES = {"context"}


def _check_value(kind: str, value: Any, labels: set[str]) -> str | None:
    """Why `value` is not a valid `kind` (None when it is)."""
    if kind == "string":
        return None if isinstance(value, str) and value.strip() else f"must be a non-empty string, got {value!r}"
    if kind == "label":
        if not isinstance(value, str) or not value.strip():
            return f"must be a non-empty string, got {value!r}"
        return None if value in labels else f"label {value!r} is not in task.labels ({', '.join(sorted(labels))})"
    if kind == "object":
        return None if isinstance(value, dict) and value else f"must be a non-empty JSON object, got {value!r}"
    if kind == "answers":
        ok = (isinstance(value, str) and value.strip()) or (
            isinstance(value, list) and value and all(isinstance(a, str) and a.strip() for a in value))
        return None if ok else f"must be a non-empty string or list of non-empty strings, got {value!r}"
    if kind == "tools":
        if not isinstance(value, list) or not value:
            return f"must be a non-empty list of tool schemas, got {value!r}"
        for i, tool in enumerate(value):
            fn = tool.get("function", tool) if isinstance(tool, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not isinstance(
                    fn.get("parameters", {}), dict):
                return f"item {i} must be a tool schema with a string `name` and an object `parameters`"
        return None
    if kind == "call":
        if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not isinstance(
                value.get("arguments"), dict):
            return f'must be {{"name": str, "arguments": object}}, got {value!r}'
        return None
    raise ValueError(kind)


def _validate_rows(task: Task, split: str, rows: list[dict[str, Any]]) -> None:
    """Every row has every mapped field with the right type; the first bad row fails with file:line."""
    kind = str(task.cfg.kind)
    fields = task.cfg.fields
    labels = set(task.labels)
    path = task.files[split]
    roles = KIND_ROLES[kind]
    for role in roles:
        if role not in OPTIONAL_ROLES and not fields.get(role):
            raise fail(f"task.fields.{role}", f"a {kind} task maps its {role!r} role to a JSONL field; set it")
    for row in rows:
        where = f"{path}:{row['_line']}"
        for role, value_kind in roles.items():
            name = fields.get(role)
            if not name:
                continue
            if name not in row:
                raise DataError(f"{where}: missing field {name!r} (task.fields.{role})")
            why = _check_value(value_kind, row[name], labels)
            if why:
                raise DataError(f"{where}: field {name!r} (task.fields.{role}) {why}")
        if kind == "tool_call":
            offered = {t.get("function", t)["name"] for t in row[fields.tools]}
            call = row[fields.target]
            if call["name"] not in offered:
                raise DataError(f"{where}: gold call {call['name']!r} is not among the row's tools "
                                f"({', '.join(sorted(offered))})")


def load_task(task_cfg: DictConfig, splits: list[str]) -> Task:
    """Read and validate the named splits (each `task.data.<split>`), failing on the first bad row."""
    task = Task(task_cfg)
    if str(task_cfg.kind) == "lm_eval":  # lm-eval loads its own datasets (slmexp.evaluate)
        return task
    for split in splits:
        key = f"task.data.{split}"
        value = OmegaConf.select(task_cfg, f"data.{split}")
        if not value:
            raise fail(key, "is not set")
        task.files[split] = Path(str(value)).expanduser()
        rows, sha = read_jsonl(task.files[split], key)
        _validate_rows(task, split, rows)
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
                           tools=[t.get("function", t) for t in tools],
                           context=_field(task_cfg, row, "context")).strip()


def gold_value(task_cfg: DictConfig, row: dict[str, Any]) -> Any:
    """The structured gold answer: the label, the target object, the call, or the list of accepted answers."""
    if str(task_cfg.kind) == "classification":
        return row[task_cfg.fields.label]
    return row[task_cfg.fields.target]


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
    kind = str(cfg.kind)
    if kind == "classification":
        doc["choices"] = task.labels
    else:
        doc["gold"] = json.dumps(gold_value(cfg, row), ensure_ascii=False)
    if kind == "tool_call":
        doc["tools"] = json.dumps(_field(cfg, row, "tools"), ensure_ascii=False)
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
    cfg: dict[str, Any] = {
        "task": task.lm_eval_name,
        "include": str(LM_EVAL_TEMPLATES / TEMPLATE_BY_KIND[str(task.cfg.kind)]),
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
    if "train" in data_files:
        cfg["fewshot_split"] = "train"
    path = out_dir / f"{task.lm_eval_name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return path
