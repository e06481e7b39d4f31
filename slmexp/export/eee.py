"""Every Eval Ever: one aggregate file per run and its instance-level file, validated against the vendored schema.

Why this format: Every Eval Ever (`every-eval-ever` on PyPI) is one schema for results from inspect, HELM and lm-eval
that carries uncertainty, generation settings and checksums, so a slmexp run can sit beside theirs. The package
needs Python >= 3.12, so its two JSON Schemas (version 0.3.0) are vendored in slmexp/export/schemas/ (NOTICE says
why and which version) and every file is checked against them with `jsonschema` before it is written: a file that
does not validate is never left in OUT.

Layout, as the Every Eval Ever datastore lays it out: `eee/data/slmexp/<developer>/<model>/<uuid>.json` and
`<uuid>_samples.jsonl` (one instance record per example and metric, each with its `sample_hash`). The uuid is a
version-4 UUID derived from the run's fingerprint and start time, so exporting a run again replaces its files.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from slmexp.export.runs import Run, interval, metric_values, model_id, sanitize
from slmexp.record_types import AttestationBlock, MetricsBlock, ModelBlock, ProvenanceBlock
from slmexp.report.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CI_LEVEL, mean_std

SCHEMAS = Path(__file__).resolve().parent / "schemas"
AGGREGATE, INSTANCE = "eval.schema.json", "instance_level_eval.schema.json"
COLLECTION = "slmexp"
# slmexp metric -> the Every Eval Ever registry's canonical metric id (the rest are namespaced `slmexp.<name>`)
CANONICAL = {"exact_match": "exact-match", "acc": "accuracy", "f1": "f1"}
KINDS = {"exact_match": "accuracy", "acc": "accuracy", "acc_norm": "accuracy", "f1": "f1", "field_f1": "f1",
         "args_f1": "f1"}
CI_METHODS = {"wilson": "Wilson score interval",
              "bootstrap": f"percentile bootstrap over examples ({BOOTSTRAP_RESAMPLES} resamples, "
                           f"seed {BOOTSTRAP_SEED})"}


@cache
def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


def validate(doc: dict[str, Any], name: str) -> None:
    """Raise ValueError naming the first place `doc` breaks the vendored schema `name` (nothing is written then)."""
    from jsonschema import Draft7Validator

    errors = sorted(Draft7Validator(schema(name)).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        e = errors[0]
        where = "/".join(map(str, e.absolute_path)) or "(top level)"
        raise ValueError(f"Every Eval Ever {name}: {where}: {e.message} ({len(errors)} error(s))")


def _strings(d: dict[str, Any]) -> dict[str, str]:
    """An `additional_details` map: the schema wants string values; empty ones are left out."""
    return {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, sort_keys=True)
            for k, v in d.items() if v is not None and v != ""}


def _file_uuid(run: Run) -> str:
    seed = json.dumps([run.run.get("fingerprint"), run.run.get("started"), run.key])
    return str(uuid.UUID(bytes=hashlib.sha256(seed.encode()).digest()[:16], version=4))


def _model_info(run: Run) -> dict[str, Any]:
    """`model_info`: the Hub id the weights came from (or the configured name), the row label, the engine."""
    mid = model_id(run)
    model: ModelBlock = run.model
    info = run.info
    remote = bool(model.get("endpoint"))
    out: dict[str, Any] = {
        "name": run.label, "id": mid,
        "inference_engine": {"name": str(info["runtime"]), **({"version": v} if (v := run.engine_version()) else {})},
        "additional_details": {
            "deployment_type": "externally_managed" if remote else "self_deployed",
            "model_availability": "open_weights" if model.get("source") in ("hub", "wheel") else "unknown",
            **_strings({"slmexp_model": info["model"], "role": info["role"], "params_b": info["params_b"],
                        "adapter": info["adapter"], "quantization": info["quantization"], "dtype": model.get("dtype"),
                        "weights_provenance": info["weights_provenance"], "model_sha256": model.get("sha256"),
                        "source": model.get("source")}),
        },
    }
    if "/" in mid:
        out["developer"] = mid.split("/", 1)[0]
    if remote:
        out["inference_platform"] = "OpenAI-compatible endpoint"
    return out


def _source_data(run: Run) -> dict[str, Any]:
    """What the examples came from: a Hub dataset when lm-eval loaded one by id, else the local task by name with the
    sha256 of its data file (a local task has no Hub id)."""
    hub, n = run.hub_dataset(), run.info["n"]
    if hub is not None:
        return {"dataset_name": run.info["task"], "source_type": "hf_dataset", "hf_repo": hub,
                "hf_split": run.info["split"] or "test", **({"samples_number": n} if n else {})}
    return {"dataset_name": run.info["task"], "source_type": "other",
            "additional_details": _strings({"split": run.info["split"], "data_sha256": run.data_sha256(),
                                            "n_examples": str(n or ""), "lm_eval_tasks": ",".join(run.lm_eval_tasks()),
                                            "note": "a local slmexp task: no Hub dataset id; the data file is named "
                                                    "by its sha256"})}


def _generation_config(run: Run) -> dict[str, Any]:
    """Generation settings as lm-eval ran them: greedy (do_sample false, temperature 0), the token budget, stop
    strings, decoding free/constrained, few-shot count, chat template."""
    gen = run.generation(next(iter(run.lm_eval_tasks()), None))
    kwargs = gen["generation_kwargs"]
    args: dict[str, Any] = {}
    if gen["output_type"] == "generate_until":
        greedy = not kwargs.get("do_sample")
        args["temperature"] = 0.0 if greedy else kwargs.get("temperature")
        if isinstance(kwargs.get("max_gen_toks"), int) and kwargs["max_gen_toks"] > 0:
            args["max_tokens"] = kwargs["max_gen_toks"]
    prompt = ((run.record.get("config") or {}).get("task") or {}).get("prompt")
    if isinstance(prompt, str):
        args["prompt_template"] = prompt
    until = kwargs.get("until")
    details = _strings({"output_type": gen["output_type"], "stop": [until] if isinstance(until, str) else until,
                        "do_sample": kwargs.get("do_sample"), "decoding": gen["decoding"],
                        "decoding_budget": run.metrics.get("decoding_budget"), "formulation": gen["formulation"],
                        "num_fewshot": gen["num_fewshot"], "chat_template": gen.get("chat_template")})
    return {"generation_args": args, "additional_details": details}


def _metric_config(run: Run, metric: str) -> dict[str, Any]:
    """Direction, range and identity of one metric, from the task kind's declaration (slmexp.tasks.kinds)."""
    from slmexp.tasks.kinds import kind

    try:
        record = kind(run.kind)
        spec = next((m for m in record.metric_specs if m.name == metric), None)
    except (KeyError, TypeError):
        record, spec = None, None
    hib = (run.lm_eval.get("higher_is_better") or {}).get(next(iter(run.lm_eval_tasks()), ""), {}).get(metric)
    out: dict[str, Any] = {
        "evaluation_description": f"{metric} on {run.info['task']} ({run.info['split'] or 'test'} split)",
        "metric_id": CANONICAL.get(metric, f"slmexp.{metric}"), "metric_name": metric,
        "lower_is_better": not (spec.higher_is_better if spec else hib is not False),
    }
    if metric in KINDS:
        out["metric_kind"] = KINDS[metric]
    if spec is not None and (not record.lm_eval_native or spec.binary):  # slmexp's own metrics: means in [0, 1]
        out.update(score_type="continuous", min_score=0.0, max_score=1.0, metric_unit="proportion")
    details = {"aggregation": spec.aggregation if spec else None,
               "per_example": ("0/1" if spec.binary else "in [0, 1]") if spec else None,
               "bounds_status": None if "min_score" in out else "unknown",
               "polarity": None if spec or isinstance(hib, bool) else "unknown"}
    if _strings(details):
        out["additional_details"] = _strings(details)
    return out


def _score_details(run: Run, metric: str, value: float) -> dict[str, Any]:
    """The score with its uncertainty: lm-eval's standard error, the report's 95% CI (Wilson for 0/1 scores,
    bootstrap otherwise), the per-example standard deviation and n."""
    vals = metric_values(run, metric)
    unc: dict[str, Any] = {}
    metrics: MetricsBlock = run.metrics
    stderr = (metrics.get("values") or {}).get(f"{metric}_stderr")
    if isinstance(stderr, int | float) and not isinstance(stderr, bool):
        unc["standard_error"] = {"value": float(stderr), "method": "analytic (lm-eval: sample std / sqrt(n))"}
    ci = interval(vals, metric)
    if ci is not None:
        unc["confidence_interval"] = {"lower": ci[0], "upper": ci[1], "confidence_level": CI_LEVEL,
                                      "method": CI_METHODS.get(ci[2], ci[2])}
        if ci[2] == "bootstrap":
            unc["num_bootstrap_samples"] = BOOTSTRAP_RESAMPLES
    std = mean_std(vals)[1]
    if std is not None:
        unc["standard_deviation"] = std
    n = len(vals) or run.info["n"]
    if n:
        unc["num_samples"] = int(n)
    details = _strings({"split": run.info["split"], "chance": metrics.get("chance"),
                        "primary": "true" if metric == run.info["metric"] else None})
    return {"score": float(value), **({"uncertainty": unc} if unc else {}), **({"details": details} if details else {})}


def _results(run: Run) -> list[dict[str, Any]]:
    """One evaluation result per metric the run recorded (the primary first), each with its uncertainty."""
    metrics: MetricsBlock = run.metrics
    values = metrics.get("values") or {}
    names = [m for m in values if not m.endswith("_stderr") and isinstance(values[m], int | float)]
    names.sort(key=lambda m: m != run.info["metric"])
    source, gen = _source_data(run), _generation_config(run)
    when = run.run.get("finished") or run.run.get("started")
    return [{"evaluation_result_id": m, "evaluation_name": run.info["task"], "source_data": source,
             **({"evaluation_timestamp": when} if when else {}), "metric_config": _metric_config(run, m),
             "score_details": _score_details(run, m, float(values[m])), "generation_config": gen} for m in names]


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                                                   sort_keys=True)


def _instances(run: Run, evaluation_id: str, mid: str) -> list[dict[str, Any]]:
    """One instance record per example and metric (the schema's rule for several aggregate results), each with the
    sample_hash of (input.raw, reference) as Every Eval Ever's converters compute it, and the run's own hashes."""
    timed = run.info.get("requests") or {}
    out = []
    for row in run.rows:
        doc = row.get("doc") or {}
        raw_input = doc["prompt"] if isinstance(doc.get("prompt"), str) else _text(doc)
        target = run.target(row)
        sample_hash = hashlib.sha256(json.dumps({"raw": raw_input, "reference": target},
                                                sort_keys=True).encode()).hexdigest()
        choices = doc.get("choices")
        inp = {"raw": raw_input, "formatted": run.context(row), "reference": [target],
               **({"choices": [str(c) for c in choices]} if isinstance(choices, list) and choices else {})}
        attribution = [{"turn_idx": 0, "source": "output.raw", "extracted_value": _text(row.get("extracted")),
                        "extraction_method": f"slmexp task kind {run.kind}: extract" if run.kind else "none",
                        "is_terminal": True}]
        meta = _strings({"doc_id": str(row.get("doc_id")), "lm_eval_task": row.get("task"),
                         "prompt_sha256": row.get("prompt_sha256"), "split": run.info["split"]})
        lat = (timed.get(str(row.get("id"))) or {}).get("latency_ms")
        for metric, score in (row.get("metrics") or {}).items():
            if not isinstance(score, int | float) or isinstance(score, bool):
                continue
            out.append({"schema_version": schema(INSTANCE)["version"], "evaluation_id": evaluation_id,
                        "model_id": mid, "evaluation_name": run.info["task"], "evaluation_result_id": metric,
                        "sample_id": str(row.get("id")), "sample_hash": sample_hash, "interaction_type": "single_turn",
                        "input": inp, "output": {"raw": [_text(row.get("raw"))]}, "answer_attribution": attribution,
                        "evaluation": {"score": float(score), "is_correct": float(score) == 1.0},
                        **({"performance": {"latency_ms": lat}} if lat is not None else {}), "metadata": meta})
    return out


def _document(run: Run, evaluation_id: str, organization: str, retrieved: str) -> dict[str, Any]:
    """The aggregate file: who produced it, the model, the library, every metric with its uncertainty."""
    adapted = run.info["adapter"] not in ("", "none")  # the evaluator trained the adapter it evaluates
    attested: AttestationBlock = run.record.get("attestation") or {}
    provenance: ProvenanceBlock = run.provenance
    git = provenance.get("git") or {}
    return {
        "schema_version": schema(AGGREGATE)["version"], "evaluation_id": evaluation_id,
        **({"evaluation_timestamp": run.run["started"]} if run.run.get("started") else {}),
        "retrieved_timestamp": retrieved,
        "source_metadata": {
            "source_name": "slmexp", "source_type": "evaluation_run", "source_organization_name": organization,
            "evaluator_relationship": "first_party" if adapted else "third_party",
            "additional_details": _strings({
                "run_dir": run.record.get("_rel"), "fingerprint": run.run.get("fingerprint"), "seed": run.info["seed"],
                "results_sha256": attested.get("results_sha256"), "outputs_sha256": attested.get("outputs_sha256")})},
        "eval_library": {"name": "slmexp", "version": run.version("slmexp") or "unknown",
                         "additional_details": _strings({"lm_eval": run.version("lm_eval"), "git_sha": git.get("sha"),
                                                         "scored_by": "lm-evaluation-harness with slmexp's task "
                                                                      "templates"})},
        "model_info": _model_info(run),
        "evaluation_results": _results(run),
    }


def write_run(run: Run, out: Path, organization: str = "unknown") -> list[Path]:
    """The run's aggregate file and, when it kept per-example rows, its instance-level file; both validated."""
    mid = model_id(run)
    developer = sanitize(mid.split("/", 1)[0]) if "/" in mid else "unknown"
    model_dir = sanitize(mid.split("/", 1)[-1])  # the datastore's dir per model id; arms differ in model_info
    uid, retrieved = _file_uuid(run), str(int(time.time()))
    evaluation_id = f"{run.info['task']}/{mid}/{retrieved}"
    doc = _document(run, evaluation_id, organization, retrieved)
    rows = _instances(run, evaluation_id, mid)
    for row in rows:
        validate(row, INSTANCE)
    dest = out / "data" / COLLECTION / developer / model_dir
    text = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in rows)
    samples = dest / f"{uid}_samples.jsonl"
    if rows:
        doc["detailed_evaluation_results"] = {
            "format": "jsonl", "file_path": f"data/{COLLECTION}/{developer}/{model_dir}/{samples.name}",
            "hash_algorithm": "sha256", "checksum": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "total_rows": len(rows)}
    validate(doc, AGGREGATE)  # both files are checked before either is written
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{uid}.json"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8",
                    newline="\n")
    if not rows:
        return [path]
    samples.write_text(text, encoding="utf-8", newline="\n")
    return [path, samples]


def export(runs: list[Run], out: Path, organization: str = "unknown") -> list[Path]:
    """Every Eval Ever files for every finished run, under `out`."""
    return [p for run in runs for p in write_run(run, out, organization)]
