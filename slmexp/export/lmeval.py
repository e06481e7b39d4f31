"""lm-eval's own output layout: `results_<date>.json` and `samples_<task>_<date>.jsonl` per run.

Why: lm-evaluation-harness users already read `--output_path ... --log_samples` directories with lm-eval's helpers
(`lm_eval.utils.get_results_filenames`, `get_sample_results_filenames`, `get_latest_filename`), its Hub uploader
and viewers. An slmexp run already keeps lm-eval's results summary (lm_eval/results.json, which is lm-eval's own
dict less the samples): it is reused as is, with the `task_hashes` lm-eval's tracker adds. The samples are rebuilt
from generations.jsonl, which holds each example's lm-eval doc, raw answer, per-example metrics and prompt hash.

Layout, as lm-eval's EvaluationTracker writes it: `lm-eval/<run>/<model_name_sanitized>/results_<date>.json` and
`.../samples_<lm-eval task>_<date>.jsonl`, `<date>` the evaluation's own time from results.json (UTC,
`2026-12-08T01-19-27.116904`). Hashes are lm-eval's: `lm_eval.utils.hash_string` (sha256 hex) of the doc as lm-eval
dumps it, of the prompt sent and of the target.

What a record cannot give back, said in the docs: the exact context a chat template built (`arguments`' arg_0 is
the context when it can be rebuilt and checked against the recorded prompt hash, else the doc's user turn;
`prompt_hash` is always the hash of what was sent), and a log-likelihood run's per-choice log-likelihoods (its
`resps` are empty and `slmexp_choice` holds the index chosen).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from slmexp.export.runs import Run, model_id


def date_id(run: Run) -> str:
    """lm-eval's file date (`datetime.isoformat()` with `-` for `:`) of the evaluation, from its results file."""
    stamp = run.lm_eval.get("date")
    if isinstance(stamp, int | float):
        when = _dt.datetime.fromtimestamp(float(stamp), _dt.timezone.utc).replace(tzinfo=None)
    else:
        when = _dt.datetime.fromisoformat(str(run.run.get("finished") or run.run["started"]))
        when = when.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return when.isoformat().replace(":", "-")


def _task_doc_id(row: dict[str, Any]) -> Any:
    """lm-eval's doc_id within its task (slmexp prefixes `<task>/` when a run scored several tasks)."""
    doc_id = row.get("doc_id")
    if isinstance(doc_id, str) and "/" in doc_id:
        tail = doc_id.rsplit("/", 1)[1]
        return int(tail) if tail.isdigit() else tail
    return doc_id


def sample(run: Run, row: dict[str, Any], conf: dict[str, Any]) -> dict[str, Any]:
    """One line of lm-eval's samples file from one generations.jsonl row (`conf`: the task's lm-eval config)."""
    from lm_eval.utils import handle_non_serializable, hash_string

    doc, raw, target = row.get("doc") or {}, row.get("raw"), run.target(row)
    context = run.context(row)
    context = context if context is not None else str(doc.get("prompt") or "")
    metrics = {k: v for k, v in (row.get("metrics") or {}).items()}
    out: dict[str, Any] = {"doc_id": _task_doc_id(row), "doc": doc, "target": target}
    if isinstance(raw, str):  # generate_until: one request, its generation, the "none" filter's take-first
        out.update(arguments={"gen_args_0": {"arg_0": context, "arg_1": dict(conf.get("generation_kwargs") or {})}},
                   resps=[[raw]], filtered_resps=[raw])
    else:  # log-likelihood: one request per choice; the record keeps the choice made, not the log-likelihoods
        delim = str(conf.get("target_delimiter") if conf.get("target_delimiter") is not None else " ")
        choices = doc.get("choices") if isinstance(doc.get("choices"), list) else []
        out.update(arguments={f"gen_args_{i}": {"arg_0": context, "arg_1": f"{delim}{c}"}
                              for i, c in enumerate(choices)}, resps=[], filtered_resps=[], slmexp_choice=raw)
    out.update({
        "filter": "none", "metrics": list(metrics),
        "doc_hash": hash_string(json.dumps(doc, indent=2, default=handle_non_serializable, ensure_ascii=False)),
        "prompt_hash": row.get("prompt_sha256") or hash_string(context),
        "target_hash": hash_string(str(target)),
        **metrics,
    })
    return out


def _results(run: Run, samples: dict[str, list[dict[str, Any]]], name: str) -> dict[str, Any]:
    """lm-eval's results dict: the run's lm_eval/results.json (or, when absent, its metrics in lm-eval's keys), plus
    the tracker's task_hashes and model name."""
    from lm_eval.utils import hash_string, sanitize_model_name

    results = dict(run.lm_eval)
    if not results:
        values = run.metrics.get("values") or {}
        task = next(iter(run.lm_eval_tasks()), run.info["task"])
        results = {"results": {task: {f"{m},none": v for m, v in values.items() if v is not None}},
                   "n-samples": {task: {"effective": run.info["n"]}}}
    results["task_hashes"] = {task: hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"]
                                                        for s in rows)) for task, rows in samples.items()}
    results.update(model_name=name, model_name_sanitized=sanitize_model_name(name), model_source="slmexp")
    if isinstance(run.speed.get("eval_wall_s"), int | float):
        results["total_evaluation_time_seconds"] = str(run.speed["eval_wall_s"])
    return results


def write_run(run: Run, out: Path) -> list[Path]:
    """The run's results file and one samples file per lm-eval task, in lm-eval's directory layout."""
    from lm_eval.utils import sanitize_model_name

    configs = run.lm_eval.get("configs") or {}
    samples: dict[str, list[dict[str, Any]]] = {}
    for row in run.rows:
        task = str(row.get("task") or next(iter(configs), run.info["task"]))
        samples.setdefault(task, []).append(sample(run, row, configs.get(task) or {}))
    name = model_id(run)
    dest = out / run.key / sanitize_model_name(name)
    dest.mkdir(parents=True, exist_ok=True)
    when = date_id(run)
    path = dest / f"results_{when}.json"
    path.write_text(json.dumps(_results(run, samples, name), indent=2, ensure_ascii=False, default=str) + "\n",
                    encoding="utf-8", newline="\n")
    paths = [path]
    for task, rows in samples.items():
        spath = dest / f"samples_{task}_{when}.jsonl"
        spath.write_text("".join(json.dumps(s, ensure_ascii=False, default=str) + "\n" for s in rows),
                         encoding="utf-8", newline="\n")
        paths.append(spath)
    return paths


def export(runs: list[Run], out: Path) -> list[Path]:
    """lm-eval files for every finished run, under `out`."""
    return [p for run in runs for p in write_run(run, out)]
