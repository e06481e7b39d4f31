"""Distillation: a teacher model labels the task's train inputs and the student trains on those labels only.

Why a stage of its own: in real use the teacher is a paid API LLM, so its answers are an asset to keep, count and
price. Every answer goes, as soon as it arrives, into a JSONL cache under `paths.cache_dir/distill/<key>.jsonl`,
keyed by the teacher (model and runtime config), the prompt rendering and the sha256 of the input data; a re-run,
in any run dir, queries only the inputs the cache lacks (none, usually), and a crash loses at most one answer.
The teacher is loaded and asked by slmexp.teacher, as the router's LLM is. The run dir gets the rows it used
(`distill/teacher_outputs.jsonl`: teacher, prompt, raw output, parse status).

An answer the task kind's parse rule rejects (`TaskKind.teacher_parse` in slmexp.tasks.kinds; for classification:
the evaluation's own label extractor, slmexp.tasks.extract, finds none of `task.labels`) is counted with its reason
and skipped, never trained on; a kept answer becomes the label as written in `task.labels`. The
student is then trained by the ordinary training stage (`slmexp.train.cached_or_train`) on a Task whose train split
holds the kept (text, teacher label) pairs and whose train sha256 is that data's, so the training cache never
confuses a distilled adapter with a gold one. Gold labels are not used: the validation split (eval loss during
training) is dropped from the student's task.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from slmexp import decoding
from slmexp.cache import append_jsonl, content_key, read_jsonl_cache
from slmexp.origin import fail
from slmexp.tasks import Task, render_prompt
from slmexp.tasks.extract import same_label
from slmexp.tasks.kinds import KINDS, kind
from slmexp.teacher import answer, answer_config, load_model_runtime, sub_config

log = logging.getLogger("slmexp.distill")

PARSE_VERSION = 2  # bump when a parse rule changes: cached raw outputs are re-parsed, not re-queried
CACHE_SUBDIR = "distill"
RUN_FILE = "distill/teacher_outputs.jsonl"


def enabled(cfg: DictConfig) -> bool:
    """Whether the config asks for a teacher (`distill=<teacher>`, not `distill=none`)."""
    d = cfg.get("distill")
    return d is not None and str(d.get("name", "none")) != "none"


def validate(cfg: DictConfig) -> None:
    """Fail before any model loads when distillation cannot run as configured."""
    if not enabled(cfg):
        return
    d = cfg.distill
    if str(cfg.adapter.name) == "none":
        raise fail("adapter.name", f"distill={d.name} trains the student on teacher labels: choose an adapter "
                   "(adapter=lora or arm=slm-lora)")
    if not kind(str(cfg.task.kind)).can_distill:
        has = [k.name for k in KINDS.values() if k.can_distill]
        raise fail("task.kind", f"distillation has no parse rule for task.kind={cfg.task.kind} "
                   f"(has: {', '.join(has)})")
    for key in ("teacher.model.name", "teacher.runtime.name", "teacher.runtime._target_"):
        if not OmegaConf.select(d, key):
            raise fail(f"distill.{key}", "must be set")
    if str(d.get("split", "train")) != "train":
        raise fail("distill.split", f"{d.split!r}: the teacher labels the train split's inputs (train)")
    limit = d.get("limit")
    if limit is not None and (not isinstance(limit, int) or limit <= 0):
        raise fail("distill.limit", f"must be a positive integer or null (all train inputs), got {limit!r}")
    if not isinstance(d.get("min_kept"), int) or d.min_kept < 1:
        raise fail("distill.min_kept", f"must be a positive integer, got {d.get('min_kept')!r}")


# --- the cache -------------------------------------------------------------------------------------------------------


def cache_key(cfg: DictConfig, task: Task, split: str) -> str:
    """Teacher model + runtime config, the task's prompt rendering (not where its files live), the inputs' sha256."""
    d = cfg.distill
    parts = {
        "teacher_model": OmegaConf.to_container(d.teacher.model, resolve=True),
        "teacher_runtime": answer_config(d.teacher.runtime),
        "task_render": {k: v for k, v in OmegaConf.to_container(cfg.task, resolve=True).items() if k != "data"},
        "data": task.sha256[split],
        "seed": int(cfg.seed),
    }
    if decoding.mode(cfg) != "free":  # constrained teacher answers differ (free keys stay as they were)
        parts["decoding"] = decoding.mode(cfg)
    return content_key(parts)


# --- the stage -------------------------------------------------------------------------------------------------------


def label_with_teacher(cfg: DictConfig, task: Task, run_dir: Path,
                       load_teacher: Callable[[], Any] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Ask the teacher for every input of `distill.split` (first `distill.limit`) the cache lacks; parse all.

    Returns (rows in input order, each with `status` kept/rejected, `label`, `reason`; the record's `distill`
    block). `load_teacher` builds the teacher runtime (default: from `distill.teacher`); it is called only when
    an input is missing from the cache.
    """
    d = cfg.distill
    split = str(d.get("split", "train"))
    rows = task.splits[split]
    limit = d.get("limit")
    inputs = rows[: int(limit)] if limit else rows
    key = cache_key(cfg, task, split)
    cache_path = Path(str(cfg.paths.cache_dir)).expanduser() / CACHE_SUBDIR / f"{key}.jsonl"
    cached = read_jsonl_cache(cache_path)
    todo = [i for i in range(len(inputs)) if i not in cached]
    teacher_name = str(d.teacher.model.name)
    gen = task.cfg.generation
    sub = sub_config(cfg, d.teacher.model, d.teacher.runtime)
    load_s = None
    t_stage = time.perf_counter()
    if todo:
        log.info("distill: asking teacher %s for %d of %d inputs (%d cached in %s)", teacher_name, len(todo),
                 len(inputs), len(inputs) - len(todo), cache_path)
        t0 = time.perf_counter()
        runtime = (load_teacher() if load_teacher is not None
                   else load_model_runtime(sub, "distill.teacher", Path(run_dir) / "distill" / "teacher"))
        runtime = decoding.attach(runtime, decoding.build(cfg, task))  # decoding=constrained holds for the teacher
        load_s = round(time.perf_counter() - t0, 3)
        with runtime:
            for n, i in enumerate(todo, 1):
                prompt = render_prompt(task.cfg, inputs[i])
                out = answer(runtime, prompt, int(gen.max_new_tokens), list(gen.until))
                entry = {"i": i, "id": inputs[i].get("id"), "teacher": teacher_name,
                         "teacher_runtime": str(d.teacher.runtime.name), "prompt": prompt, **out,
                         "queried_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
                append_jsonl(cache_path, entry)  # kept the moment it arrives: a crash or a failed check loses nothing
                cached[i] = entry
                if n % 25 == 0:
                    log.info("distill: %d/%d teacher answers", n, len(todo))
    parse = kind(task.kind).teacher_parse
    assert parse is not None  # validate() refused the kind otherwise
    pricer = _pricer(cfg, sub)
    out_rows: list[dict[str, Any]] = []
    for i in range(len(inputs)):
        entry = dict(cached[i])
        value, reason = parse(entry["raw"], task.cfg)
        entry.update(status="kept" if reason is None else "rejected", label=value, reason=reason,
                     parse_rule=f"{task.cfg.kind}/v{PARSE_VERSION}", from_cache=i not in todo)
        if pricer is not None:
            entry["cost_usd"] = pricer[1](entry["latency_s"], entry.get("input_tokens"), entry.get("output_tokens"))
        out_rows.append(entry)
    run_file = Path(run_dir) / RUN_FILE
    run_file.parent.mkdir(parents=True, exist_ok=True)
    run_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out_rows), encoding="utf-8")
    block = _block(cfg, task, out_rows, inputs, key, cache_path, pricer, load_s, time.perf_counter() - t_stage)
    return out_rows, block


def _pricer(cfg: DictConfig, sub: DictConfig) -> tuple[dict[str, Any], Any] | None:
    from slmexp.cost import request_pricer

    return request_pricer(cfg.get("cost"), sub.runtime)


def _block(cfg: DictConfig, task: Task, rows: list[dict[str, Any]], inputs: list[dict[str, Any]], key: str,
           cache_path: Path, pricer: Any, load_s: float | None, wall_s: float) -> dict[str, Any]:
    kept = [r for r in rows if r["status"] == "kept"]
    rejected = [r for r in rows if r["status"] == "rejected"]
    queried = [r for r in rows if not r["from_cache"]]
    k = kind(task.kind)
    gold = task.cfg.fields[k.gold_role]
    agree = sum(1 for r, row in zip(rows, inputs, strict=True)
                if r["status"] == "kept" and _agrees(r["label"], row[gold], k.needs_labels))
    costs = [r["cost_usd"] for r in rows if r.get("cost_usd") is not None]
    lat = [r["latency_s"] for r in rows]
    return {
        "teacher": str(cfg.distill.teacher.model.name),
        "teacher_runtime": str(cfg.distill.teacher.runtime.name),
        "split": str(cfg.distill.get("split", "train")),
        "limit": cfg.distill.get("limit"),
        "n_inputs": len(rows),
        "n_queried": len(queried),  # asked in this run; the rest came from the cache
        "n_cached": len(rows) - len(queried),
        "cached": not queried,
        "teacher_loaded": load_s is not None,
        "teacher_load_s": load_s,
        "n_kept": len(kept),
        "n_rejected": len(rejected),
        "rejected_reasons": dict(sorted(Counter(r["reason"] for r in rejected).items())),
        "parse_rule": f"{k.name}/v{PARSE_VERSION}: {k.teacher_parse_note}",
        # a diagnostic of label noise only: gold labels never reach the student
        "teacher_agreement_with_gold": round(agree / len(kept), 4) if kept else None,
        "gold_labels_used_for_training": False,
        "teacher_request_s": {"total": round(sum(lat), 3), "mean": round(sum(lat) / len(lat), 4) if lat else None},
        "cost_usd": _sig(sum(costs)) if pricer is not None else None,
        "cost_usd_this_run": _sig(sum(r["cost_usd"] for r in queried)) if pricer is not None else None,
        "cost": pricer[0] if pricer is not None else None,
        "cost_note": "cost of producing every label used, from each request's measured wall time/tokens when it "
                     "was asked (cached answers keep their original figures)",
        "min_kept": int(cfg.distill.min_kept),
        "wall_s": round(wall_s, 3),
        "file": RUN_FILE,
        "cache_file": str(cache_path),
        "cache_key": key,
    }


def _agrees(label: Any, gold: Any, is_label: bool) -> bool:
    """Teacher label == gold: as labels (the one normaliser) for classification, else as values."""
    return same_label(label, gold) if is_label else label == gold


def _sig(x: float) -> float:
    return float(f"{x:.6g}")  # 6 significant digits, as the cost block


def student_task(task: Task, rows: list[dict[str, Any]], block: dict[str, Any], eval_split: str) -> Task:
    """The student's Task: train = kept (text, teacher label) pairs only; the validation split (gold labels, used
    for eval loss) dropped unless it is the evaluation split; train sha256 = the teacher data's."""
    fields = task.cfg.fields
    gold = fields[kind(task.kind).gold_role]  # the teacher's label takes the gold answer's place
    src = task.splits[str(block["split"])]
    train = [{"id": src[r["i"]].get("id"), "_line": src[r["i"]]["_line"], fields.text: src[r["i"]][fields.text],
              gold: r["label"]} for r in rows if r["status"] == "kept"]
    data = json.dumps([[t[fields.text], t[gold]] for t in train], ensure_ascii=False)
    sha = hashlib.sha256(f"{block['cache_key']}\n{data}".encode()).hexdigest()
    block["data_sha256"] = sha
    splits = {k: v for k, v in task.splits.items() if k != "validation" or k == eval_split}
    splits["train"] = train
    sha256 = {k: v for k, v in task.sha256.items() if k in splits}
    sha256["train"] = f"distill:{sha}"
    files = {k: v for k, v in task.files.items() if k in splits}
    return Task(task.cfg, splits, files, sha256)


def run(cfg: DictConfig, task: Task, run_dir: Path, record: Any) -> Task:
    """The pipeline's hook: label (or read the cache), record the block, check `distill.min_kept`, return the
    student's Task. The block is in run.json before a too-small kept set fails the job."""
    rows, block = label_with_teacher(cfg, task, run_dir)
    record.set("distill", block)
    if block["n_kept"] < int(cfg.distill.min_kept):
        raise fail("distill.min_kept", f"the teacher {block['teacher']} gave only {block['n_kept']} usable labels of "
                   f"{block['n_inputs']} (rejected: {block['rejected_reasons']}); need {cfg.distill.min_kept}. Its "
                   f"answers are cached ({block['cache_file']}): raise distill.limit or lower distill.min_kept and "
                   "re-run; nothing is asked twice")
    out = student_task(task, rows, block, str(cfg.eval.split))
    record.set("distill", block)
    return out
