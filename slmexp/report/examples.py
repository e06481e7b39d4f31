"""Every arm's answer to every example, side by side: the data behind report.html's per-example browser and the
sweep's wandb Table.

Why apart: both views must show the same thing (prompt, gold, each arm's extracted answer and raw output, right or
wrong on the primary metric), read from each run's `generations.jsonl` (slmexp.generations) alone. One arm per
table row (seeds collapsed: the first run of the row is shown).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slmexp import generations
from slmexp.report.collect import CollectedRun, collect

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

MAX_TEXT = 4000  # characters of a prompt or raw output kept per cell (the store keeps them whole)


def _text(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + " …"


def _gold(doc: dict[str, Any]) -> str:
    gold = doc.get("gold")
    if isinstance(gold, str):  # structured golds travel as JSON strings (slmexp.tasks.metrics)
        with contextlib.suppress(json.JSONDecodeError):
            gold = json.loads(gold)
    return _text(doc.get("target") if gold is None else gold)


def side_by_side(records: list[CollectedRun], df: pd.DataFrame) -> dict[str, Any]:
    """{"arms": [{"label", "role", "baseline", "metric", "dir"}], "examples": [{"id", "task", "prompt", "gold",
    "answers": [{"answer", "raw", "score", "right"} | None per arm]}]} for every table row whose first run kept
    its generations. Examples in first-seen order; an arm that did not score an example has None there."""
    by_dir = {str(r.get("_rel") or r.get("_dir")): r for r in records}
    arms: list[dict[str, Any]] = []
    stores: list[dict[str, dict[str, Any]]] = []
    for row in df.to_dict("records"):
        if row["status"] != "finished":
            continue
        rec = by_dir.get(str(row["run_dirs"]).split(";")[0])
        path = generations.find(Path(rec["_dir"]), rec) if rec else None
        if path is None:
            continue
        metric = str(row["metric"] or "")
        arms.append({"label": str(row["label"]) + (f" [{row['variant']}]" if row.get("variant") else ""),
                     "role": str(row["role"]), "baseline": bool(row["is_baseline"]), "metric": metric,
                     "task": str(row["task"]), "dir": str(row["run_dirs"]).split(";")[0]})
        stores.append({f"{row['task']}\x00{g['id']}": g for g in generations.read(path)})
    keys: list[str] = []
    seen: set[str] = set()
    for store in stores:
        for key in store:
            if key not in seen:
                seen.add(key)
                keys.append(key)
    examples = []
    for key in keys:
        first = next(s[key] for s in stores if key in s)
        doc = first.get("doc") or {}
        answers: list[dict[str, Any] | None] = []
        for arm, store in zip(arms, stores, strict=True):
            g = store.get(key)
            if g is None:
                answers.append(None)
                continue
            score = (g.get("metrics") or {}).get(arm["metric"])
            answers.append({"answer": _text(g.get("extracted")), "raw": _text(g.get("raw")),
                            "score": score, "right": isinstance(score, int | float) and score >= 1.0 - 1e-9})
        examples.append({"id": str(first["id"]), "task": key.split("\x00", 1)[0],
                         "prompt": _text(doc.get("prompt") or doc.get("question") or doc.get("text") or ""),
                         "gold": _gold(doc), "answers": answers})
    return {"arms": arms, "examples": examples}


def table_columns(data: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The side-by-side data as (columns, rows) for a wandb.Table: id, task, prompt, gold, then per arm its answer
    and whether it was right."""
    cols = ["id", "task", "prompt", "gold"]
    for arm in data["arms"]:
        cols += [f"{arm['label']} answer", f"{arm['label']} right"]
    rows = []
    for ex in data["examples"]:
        row: list[Any] = [ex["id"], ex["task"], ex["prompt"], ex["gold"]]
        for ans in ex["answers"]:
            row += [ans["answer"], ans["right"]] if ans else ["", None]
        rows.append(row)
    return cols, rows


def examples_table(root: Path) -> tuple[list[str], list[list[Any]]]:
    """`table_columns` of the sweep below `root` (its runs' records and table, the sweep's `baseline` as the
    report callback used it); ([], []) when no run kept its generations."""
    from slmexp.report.table import build_table

    records = collect(root)
    if not records:
        return [], []
    names = {str(b) for r in records if (b := (r.get("config") or {}).get("baseline"))}
    data = side_by_side(records, build_table(records, baseline=names.pop() if len(names) == 1 else None))
    return table_columns(data) if data["examples"] else ([], [])
