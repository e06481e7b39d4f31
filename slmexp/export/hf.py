"""Hugging Face Hub results: `.eval_results/<task>.yaml` and a model card's `model-index` block per evaluated model.

Why: results in a model repo's `.eval_results/` folder appear on the model page and in benchmark leaderboards
(https://huggingface.co/docs/hub/eval-results); the older `model-index` block in the model card's YAML header is what
`huggingface_hub` (ModelCardData, EvalResult) and Papers with Code read. One folder per row of the comparison
(seeds collapsed: the table's mean, CI and n), named after its arm (or row label), holding both.

A local task has no Hub dataset id. What stands in for it: `dataset.id` is the slmexp task name and
`dataset.revision` the sha256 of the data file of the split scored (provenance.data_sha256), so the exact data is
named; `notes` says so. (An lm-eval task that loaded a Hub dataset gets that dataset's id.) The Hub accepts results
only for datasets registered as benchmarks, so these files document a result; they do not place it on a leaderboard.

`value` in `.eval_results` is the primary metric in percent (leaderboards show 0-100); `model-index` keeps the
metric's own 0-1 scale, with the 95% CI and n as metric args.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from slmexp.export.runs import Run, row_arm, sanitize


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def _dataset(run: Run, task: str) -> dict[str, Any]:
    """The Hub dataset reference: a Hub id where lm-eval loaded one, else the task name and its data sha256."""
    hub = run.hub_dataset()
    if hub is not None:
        return {"id": hub, "task_id": task}
    sha = run.data_sha256()
    return {"id": task, "task_id": task, **({"revision": sha} if sha else {})}


def _notes(row: dict[str, Any], run: Run) -> str:
    lo, hi = _num(row.get("ci95_low")), _num(row.get("ci95_high"))
    ci = "" if lo is None or hi is None else f", 95% CI [{100 * lo:.2f}, {100 * hi:.2f}] ({row.get('ci_method')})"
    seeds = f", mean of {row['n_seeds']} seeds" if int(row["n_seeds"]) > 1 else ""
    local = "" if run.hub_dataset() else (f"; local slmexp task: dataset.id is its name, dataset.revision the sha256 "
                                          f"of its {row['split'] or 'test'} data file (no Hub dataset)")
    n = f", n={int(row['n'])}" if _num(row.get("n")) is not None else ""
    return (f"{row['metric']} x 100 (%) on the {row['split'] or 'test'} split{n}{ci}{seeds}; slmexp {row['label']}, "
            f"decoding {row['decoding']}{local}")


def eval_result(row: dict[str, Any], run: Run) -> dict[str, Any]:
    """One `.eval_results/<task>.yaml` entry (the Hub's format): dataset, value (%), date, notes."""
    when = str(run.run.get("finished") or run.run.get("started") or "")[:10]
    return {"dataset": _dataset(run, str(row["task"])), "value": round(100 * float(row["accuracy"]), 4),
            **({"date": when} if when else {}), "notes": _notes(row, run)}


def model_index(name: str, rows: list[tuple[dict[str, Any], Run]]) -> str:
    """The model card: a YAML header with `model-index` (huggingface_hub's ModelCardData renders it) and a line
    saying where the figures come from."""
    from huggingface_hub import EvalResult, ModelCardData

    results = []
    for row, run in rows:
        ds = _dataset(run, str(row["task"]))
        n = _num(row.get("n"))
        args = {k: v for k, v in (("n", None if n is None else int(n)), ("ci95_low", _num(row.get("ci95_low"))),
                                  ("ci95_high", _num(row.get("ci95_high"))), ("ci_method", row.get("ci_method")),
                                  ("n_seeds", int(row["n_seeds"]))) if v not in (None, "")}
        for col, metric in ((("accuracy", row["metric"])), ("strict_match", "strict_match"), ("validity", "validity")):
            value = _num(row.get(col))
            if value is None:
                continue
            results.append(EvalResult(
                task_type="text-generation", dataset_type=str(ds["id"]), dataset_name=str(row["task"]),
                dataset_split=str(row["split"] or "test"), dataset_revision=ds.get("revision"),
                metric_type=str(metric), metric_value=value, metric_name=str(metric),
                metric_args=args if col == "accuracy" else None))
    header = ModelCardData(model_name=name, eval_results=results).to_yaml()
    return (f"---\n{header}\n---\n\n# {name}\n\nEvaluation results written by `slmexp export --format hf` from the "
            "run records (run.json) of an slmexp comparison; docs/exporting.md in slmexp says what each field "
            "holds.\n")


def export(runs: list[Run], df: Any, arms: dict[str, str], out: Path) -> list[Path]:
    """Per finished row of the comparison `df` (slmexp.report.build_table): a folder named after its arm with
    `.eval_results/<task>.yaml` and a README.md model card. A second row of the same arm and task (another variant)
    is another model: its folder gets `__2`, `__3` in table order."""
    by_dir = {str(run.record.get("_rel")): run for run in runs}
    folders: dict[str, list[tuple[dict[str, Any], Run]]] = {}
    seen: dict[tuple[str, str], int] = {}
    for row in df.to_dict("records"):
        run = next((by_dir[d] for d in str(row["run_dirs"]).split(";") if d in by_dir), None)
        if run is None or row["status"] != "finished" or _num(row.get("accuracy")) is None:
            continue
        name = sanitize(row_arm(row, arms))
        k = seen[(name, str(row["task"]))] = seen.get((name, str(row["task"])), 0) + 1
        folders.setdefault(name + (f"__{k}" if k > 1 else ""), []).append((row, run))
    paths = []
    for folder, rows in folders.items():
        for row, run in rows:
            path = out / folder / ".eval_results" / f"{sanitize(str(row['task']))}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump([eval_result(row, run)], sort_keys=False, allow_unicode=True),
                            encoding="utf-8", newline="\n")
            paths.append(path)
        card = out / folder / "README.md"
        card.write_text(model_index(row_arm(rows[0][0], arms), rows), encoding="utf-8", newline="\n")
        paths.append(card)
    return paths
