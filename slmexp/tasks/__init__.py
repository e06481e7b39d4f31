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
from omegaconf import DictConfig, OmegaConf

from slmexp.config import fail
from slmexp.errors import DataError

LM_EVAL_TEMPLATES = Path(__file__).resolve().parent / "lm_eval"
TEMPLATE_BY_KIND = {"classification": "classification.yaml"}


@dataclass
class Task:
    """A task config plus its validated rows, per split."""

    cfg: DictConfig
    splits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.cfg.name)

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


def _validate_rows(task: Task, split: str, rows: list[dict[str, Any]]) -> None:
    fields = task.cfg.fields
    labels = set(task.labels)
    path = task.files[split]
    for row in rows:
        where = f"{path}:{row['_line']}"
        for role in ("text", "label"):
            name = fields[role]
            if name not in row:
                raise DataError(f"{where}: missing field {name!r} (task.fields.{role})")
            if not isinstance(row[name], str) or not row[name].strip():
                raise DataError(f"{where}: field {name!r} must be a non-empty string, got {row[name]!r}")
        if row[fields.label] not in labels:
            raise DataError(
                f"{where}: label {row[fields.label]!r} is not in task.labels ({', '.join(sorted(labels))})"
            )


def load_task(task_cfg: DictConfig, splits: list[str]) -> Task:
    """Read and validate the named splits (each `task.data.<split>`), failing on the first bad row."""
    task = Task(task_cfg)
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


@cache
def _jinja_env():
    import jinja2

    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


def render_prompt(task_cfg: DictConfig, row: dict[str, Any]) -> str:
    """The user turn for one example (the chat template is applied later, by the model's tokenizer)."""
    labels = OmegaConf.to_container(task_cfg.labels, resolve=True)
    if isinstance(labels, list):
        labels = {x: "" for x in labels}
    template = _jinja_env().from_string(str(task_cfg.prompt))
    return template.render(text=row[task_cfg.fields.text], labels=labels, row=row).strip()


def render_target(task_cfg: DictConfig, row: dict[str, Any]) -> str:
    """The answer the model should produce for one example."""
    return str(row[task_cfg.fields.label])


def chat_messages(task_cfg: DictConfig, row: dict[str, Any], with_answer: bool) -> list[dict[str, str]]:
    """The conversation both training and evaluation give the model's chat template."""
    msgs = [{"role": "user", "content": render_prompt(task_cfg, row)}]
    if with_answer:
        msgs.append({"role": "assistant", "content": render_target(task_cfg, row)})
    return msgs


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
                doc = {
                    "id": row.get("id", f"{split}-{i}"),
                    "prompt": render_prompt(task.cfg, row),
                    "target": render_target(task.cfg, row),
                    "choices": task.labels,
                }
                f.write(json.dumps(doc, ensure_ascii=False) + "\n")
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
