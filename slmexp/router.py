"""SLM-first routing: the small model answers every request; a request it is unsure of is escalated to the LLM.

Why measured this way: a threshold sweep must not re-run two models per threshold. Each model answers every test
request once, and the per-request facts are cached (`paths.cache_dir/router/{slm,llm}-<key>.jsonl`, one line per
request, appended as measured): the SLM's answer, confidence, wall time and tokens; the LLM's answer, wall time and
tokens. A threshold then only decides, per request, whose answer counts, and the routed system's figures are
composed from those measured per-request figures:
- escalated   = SLM confidence < router.threshold;
- accuracy    = mean over requests of (LLM correct if escalated else SLM correct);
- latency     = SLM wall time + (LLM wall time if escalated), per request; p50/p95/mean over requests;
- $ / request = SLM cost + (LLM cost if escalated), each priced by `cost.request_pricer` from that request's
                measured wall time (hardware basis) or tokens (API basis), under the run's `cost` profile.
The record (`router.composition`) says so. SLM-only and LLM-only are composed from the same measurements.

Confidence, by task.kind (`router.confidence` = null picks the kind's default):
- classification -> `label_prob`: softmax over task.labels of the SLM's log-likelihoods of each label as the
  answer, in the evaluation's context (chat template, lm-eval's context/continuation split): slmexp.label_scoring,
  the runtime's `score_labels` (on transformers the prompt is encoded once and all labels scored in one batched
  pass on its KV cache; other runtimes answer lm-eval `loglikelihood` requests, llama.cpp's reusing the shared
  prefix itself). The SLM's answer is the most likely label; one "request" is the scoring of all labels for one
  input;
- extraction / tool_call / qa -> `validity`: the SLM generates; confidence is 1 when its output passes the kind's
  validity check (a JSON object; a JSON tool call with a name and arguments; a non-empty answer), else 0. The
  checks are the kinds' `validity` (slmexp.tasks.kinds); routing those kinds end to end waits for their
  `routed_correct` rule there. The LLM is loaded and asked by slmexp.teacher, as a distillation teacher is.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from slmexp import decoding
from slmexp.cache import append_jsonl, content_key, read_jsonl_cache
from slmexp.label_scoring import label_scorer
from slmexp.origin import fail
from slmexp.tasks import Task, render_prompt
from slmexp.tasks.kinds import KINDS
from slmexp.teacher import answer, answer_config, load_model_runtime, sub_config

log = logging.getLogger("slmexp.router")

CACHE_SUBDIR = "router"
SAMPLES_FILE = "router/samples.jsonl"


def enabled(cfg: DictConfig) -> bool:
    """Whether the config routes (`router=slm-first`), not `router=none`."""
    r = cfg.get("router")
    return r is not None and str(r.get("name", "none")) != "none"


def validate(cfg: DictConfig) -> None:
    """Fail before any model loads when routing cannot run as configured."""
    if not enabled(cfg):
        return
    r, kind = cfg.router, str(cfg.task.kind)
    thr = r.get("threshold")
    if isinstance(thr, bool) or not isinstance(thr, int | float) or thr < 0:
        raise fail("router.threshold", f"must be a number >= 0 (escalate when confidence < it), got {thr!r}")
    rec = KINDS.get(kind)
    conf = r.get("confidence") or (rec.default_confidence if rec else None)
    if conf not in ("label_prob", "validity"):
        raise fail("router.confidence", f"{r.get('confidence')!r} is not label_prob or validity")
    if conf == "label_prob" and not (rec and rec.needs_labels):  # a softmax over the task's labels
        raise fail("router.confidence", f"label_prob needs a classification task (task.kind={kind})")
    if rec is None or not rec.is_routable:
        routable = [k.name for k in KINDS.values() if k.is_routable]
        raise fail("task.kind", f"routing scores {', '.join(routable)} tasks end to end; task.kind={kind} has a "
                   f"validity check ({'yes' if rec and rec.validity else 'no'}) but no routed scoring rule yet")
    for key in ("llm.model.name", "llm.runtime.name", "llm.runtime._target_"):
        if not OmegaConf.select(r, key):
            raise fail(f"router.{key}", "must be set")
    if int(cfg.eval.get("num_fewshot") or 0) > 0:
        raise fail("eval.num_fewshot", "routing scores zero-shot prompts only; set eval.num_fewshot=0")


# --- per-request measurements, cached ------------------------------------------------------------------------------


def slm_key(cfg: DictConfig, task: Task, record: dict[str, Any]) -> str:
    """Everything that decides the SLM's answers: its weights, adapter/training (incl. distillation data),
    quantization, runtime, prompt rendering, the eval split's data, and the confidence function."""
    c = OmegaConf.to_container(cfg, resolve=True)
    skip = ("paths", "router", "logger", "name", "eval", "cost", "baseline", "optimized_metric", "hydra")
    parts = {k: v for k, v in c.items() if k not in skip}
    parts["task"] = {k: v for k, v in parts["task"].items() if k != "data"}
    parts["runtime"] = answer_config(cfg.runtime)  # threads and batch size change timings, not answers
    if str(cfg.adapter.name) == "none":
        parts.pop("train", None)
        parts.pop("distill", None)
    parts.update(split=str(cfg.eval.split), data=task.sha256[str(cfg.eval.split)],
                 model_sha=(record.get("model") or {}).get("sha256"),
                 distill_data=(record.get("distill") or {}).get("data_sha256"),
                 confidence=confidence_name(cfg))
    return content_key(parts)


def llm_key(cfg: DictConfig, task: Task) -> str:
    """The LLM's model and runtime config, the prompt rendering and the eval split's data."""
    return content_key({
        "llm_model": OmegaConf.to_container(cfg.router.llm.model, resolve=True),
        "llm_runtime": answer_config(cfg.router.llm.runtime),
        "task": {k: v for k, v in OmegaConf.to_container(cfg.task, resolve=True).items() if k != "data"},
        "split": str(cfg.eval.split), "data": task.sha256[str(cfg.eval.split)], "seed": int(cfg.seed),
        # constrained LLM answers differ; free keys stay as they were
        **({"decoding": decoding.mode(cfg)} if decoding.mode(cfg) != "free" else {})})


def confidence_name(cfg: DictConfig) -> str:
    """The confidence function in use: `router.confidence`, else the task kind's default."""
    return str(cfg.router.get("confidence") or KINDS[str(cfg.task.kind)].default_confidence)


def _measure(path: Path, n: int, load: Callable[[], Any], one: Callable[[Any, int], dict[str, Any]],
             what: str) -> tuple[dict[int, dict[str, Any]], int]:
    """Per-request results 0..n-1 from the cache file, measuring (and appending) only the missing ones.

    Returns (results by index, how many were measured now). The model is loaded only if something is missing.
    """
    have = read_jsonl_cache(path, "answer")
    todo = [i for i in range(n) if i not in have]
    if todo:
        log.info("router: %s answers %d of %d requests (%d cached in %s)", what, len(todo), n, n - len(todo), path)
        with load() as runtime:
            for i in todo:
                entry = {"i": i, **one(runtime, i)}
                append_jsonl(path, entry)
                have[i] = entry
    return have, len(todo)


def _llm_answer(task: Task, rows: list[dict[str, Any]]) -> Callable[[Any, int], dict[str, Any]]:
    gen = task.cfg.generation

    def one(runtime: Any, i: int) -> dict[str, Any]:
        out = answer(runtime, render_prompt(task.cfg, rows[i]), int(gen.max_new_tokens), list(gen.until))
        return {"id": rows[i].get("id"), "answer": out.pop("raw"), **out}

    return one


# --- composing a threshold -----------------------------------------------------------------------------------------


def compose(slm: list[dict[str, Any]], llm: list[dict[str, Any]], threshold: float | None,
            only: str | None = None) -> dict[str, Any]:
    """Figures of the routed system (or `only`='slm'/'llm') from per-request measurements.

    Each item of `slm`/`llm` has `correct` (0/1), `latency_s`, `cost_usd` (None when unpriced) and the SLM's
    `confidence`. Latency in ms; $ per 1,000 requests.
    """
    n = len(slm)
    esc = [only == "llm" or (only is None and s["confidence"] < threshold) for s in slm]
    use_slm = only != "llm"
    correct = [(l_["correct"] if e else s["correct"]) for s, l_, e in zip(slm, llm, esc, strict=True)]
    lat = [(s["latency_s"] if use_slm else 0.0) + (l_["latency_s"] if e else 0.0)
           for s, l_, e in zip(slm, llm, esc, strict=True)]
    priced = all(x.get("cost_usd") is not None for x in (*slm, *llm))
    cost = [(s["cost_usd"] if use_slm else 0.0) + (l_["cost_usd"] if e else 0.0)
            for s, l_, e in zip(slm, llm, esc, strict=True)] if priced else None
    acc = sum(correct) / n if n else None
    lat_ms = np.asarray(lat, dtype=float) * 1000
    usd_1k = 1000 * sum(cost) / n if cost is not None and n else None
    from slmexp.cost import per_correct

    dollars: dict[str, Any] = {}
    per_correct(dollars, usd_1k, acc)  # the cost stage's rule: at accuracy 0 a note, not an empty "not measured"
    return {
        "threshold": threshold if only is None else None, "system": only or "routed", "n": n,
        "accuracy": acc,
        "accuracy_stderr": math.sqrt(acc * (1 - acc) / (n - 1)) if acc is not None and n > 1 else None,
        "n_escalated": int(sum(esc)), "escalated_share": sum(esc) / n if n else None,
        "latency_ms": {"mean": float(lat_ms.mean()), "p50": float(np.percentile(lat_ms, 50)),
                       "p95": float(np.percentile(lat_ms, 95))} if n else None,
        "usd_per_1k_requests": usd_1k,
        "usd_per_correct": dollars["usd_per_correct"],
        "usd_per_correct_note": dollars.get("usd_per_correct_note", ""),
        "_correct": correct, "_escalated": esc,
    }


COMPOSITION = ("per request i: escalated_i = slm_confidence_i < threshold; correct_i = llm_correct_i if escalated_i "
               "else slm_correct_i; latency_i = slm_latency_i + escalated_i * llm_latency_i; usd_i = slm_usd_i + "
               "escalated_i * llm_usd_i, with each model's per-request wall time and tokens measured once (one "
               "request at a time, this machine) and priced by the cost profile (hardware: USD/h x wall time; "
               "api: tokens x price). Accuracy, escalated share and $ are means over requests (x1000 for $/1k); "
               "latency p50/p95 are over requests. SLM-only / LLM-only: the same measurements, no routing.")


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.6g}")
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items() if not k.startswith("_")}
    return v


def _write_samples(path: Path, rows: list[dict[str, Any]], gold_field: str, slm: list[dict[str, Any]],
                   llm: list[dict[str, Any]], routed: dict[str, Any]) -> None:
    """router/samples.jsonl: per test example, both models' answers, the confidence and whether it escalated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for i, row in enumerate(rows):
            esc = routed["_escalated"][i]
            f.write(json.dumps({
                "doc_id": i, "id": row.get("id"), "target": row[gold_field],
                "response": llm[i]["answer"] if esc else slm[i]["answer"], "exact_match": routed["_correct"][i],
                "escalated": esc, "slm_answer": slm[i]["answer"], "slm_confidence": slm[i]["confidence"],
                "slm_correct": slm[i]["correct"], "llm_answer": llm[i]["answer"], "llm_correct": llm[i]["correct"],
                "slm_latency_s": slm[i]["latency_s"], "llm_latency_s": llm[i]["latency_s"],
            }, ensure_ascii=False) + "\n")


def _record_system(cfg: DictConfig, task: Task, record: Any, block: dict[str, Any], routed: dict[str, Any],
                   slm_only: dict[str, Any], llm_only: dict[str, Any]) -> None:
    """The routed system's metrics, speed and cost blocks: the comparison table reads it like any other run."""
    split, n, llm_name = block["split"], block["n"], block["llm"]
    record.set("metrics", {
        "task": task.name, "split": split, "n_examples": n,
        "formulation": f"routed: SLM {block['confidence']} (answer = most likely label), escalated -> {llm_name} "
                       "generate_until/chat_template/0-shot",
        "primary": str(cfg.task.primary_metric),
        "chance": 1.0 / len(task.labels) if task.labels else None,
        "values": {"exact_match": routed["accuracy"], "exact_match_stderr": routed["accuracy_stderr"],
                   "escalated_share": routed["escalated_share"]},
        "samples": SAMPLES_FILE,
    })
    lat = routed["latency_ms"] or {}
    mean_s = lat.get("mean", 0) / 1000
    record.set("speed", {
        "latency_ms": {"p50": lat.get("p50"), "p95": lat.get("p95")}, "mean_latency_ms": lat.get("mean"),
        "requests_per_s": round(1 / mean_s, 4) if mean_s else None, "n_requests": n, "concurrency": 1,
        "note": "composed per request from measured SLM and LLM wall times (router.composition)",
    })
    record.set("cost", _round({
        "basis": "routed", "profile": str(cfg.cost.name) if cfg.get("cost") is not None else None,
        "usd_per_1k_requests": routed["usd_per_1k_requests"], "usd_per_correct": routed["usd_per_correct"],
        "usd_per_correct_note": routed["usd_per_correct_note"] or None,
        "slm_usd_per_1k_requests": slm_only["usd_per_1k_requests"],
        "llm_usd_per_1k_requests": llm_only["usd_per_1k_requests"],
        "assumption": COMPOSITION,
    }))


def run(cfg: DictConfig, task: Task, run_dir: Path, record: Any, load_slm: Callable[[], Any]) -> dict[str, Any]:
    """The pipeline's `route` stage: measure (or read) both models per request, compose this threshold, record."""
    from slmexp.cost import request_pricer

    split, kind = str(cfg.eval.split), KINDS[str(cfg.task.kind)]
    correct = kind.routed_correct
    assert correct is not None  # validate() refused the kind otherwise
    rows = task.splits[split]
    limit = cfg.eval.get("limit")
    rows = rows[: int(limit)] if limit else rows
    n = len(rows)
    cache = Path(str(cfg.paths.cache_dir)).expanduser() / CACHE_SUBDIR
    sk, lk = slm_key(cfg, task, record.data), llm_key(cfg, task)
    llm_sub = sub_config(cfg, cfg.router.llm.model, cfg.router.llm.runtime)
    t0 = time.perf_counter()
    slm_raw, slm_new = _measure(cache / f"slm-{sk}.jsonl", n, load_slm, label_scorer(task, rows), "SLM")
    llm_raw, llm_new = _measure(cache / f"llm-{lk}.jsonl", n,
                                lambda: decoding.attach(load_model_runtime(llm_sub, "router.llm", Path(run_dir)
                                                                           / "router" / "llm"),
                                                        decoding.build(cfg, task)),
                                _llm_answer(task, rows), "LLM")
    wall = time.perf_counter() - t0
    gold_field = task.cfg.fields[kind.gold_role]
    pricers = {"slm": request_pricer(cfg.get("cost"), cfg.runtime),
               "llm": request_pricer(cfg.get("cost"), llm_sub.runtime)}

    def enrich(raw: dict[int, dict[str, Any]], who: str) -> list[dict[str, Any]]:
        out = []
        for i, row in enumerate(rows):
            m = dict(raw[i])
            m["correct"] = correct(m["answer"], row[gold_field], task.cfg)  # the evaluation's label extractor
            p = pricers[who]
            m["cost_usd"] = p[1](m["latency_s"], m.get("input_tokens"), m.get("output_tokens")) if p else None
            out.append(m)
        return out

    slm, llm = enrich(slm_raw, "slm"), enrich(llm_raw, "llm")
    thr = float(cfg.router.threshold)
    routed = compose(slm, llm, thr)
    slm_only, llm_only = compose(slm, llm, None, "slm"), compose(slm, llm, None, "llm")

    _write_samples(Path(run_dir) / SAMPLES_FILE, rows, gold_field, slm, llm, routed)
    llm_name = str(cfg.router.llm.model.name)
    block = {
        "threshold": thr, "split": split, "confidence": confidence_name(cfg),
        "slm": (record.data.get("model") or {}).get("name"), "llm": llm_name,
        "llm_runtime": str(cfg.router.llm.runtime.name),
        "n": n, "n_escalated": routed["n_escalated"], "escalated_share": _round(routed["escalated_share"]),
        "routed": _round(routed), "slm_only": _round(slm_only), "llm_only": _round(llm_only),
        "measured_now": {"slm": slm_new, "llm": llm_new}, "cached": {"slm": n - slm_new, "llm": n - llm_new},
        "composition": COMPOSITION,
        "slm_request": "one request = log-likelihood of every label given the prompt, in one lm-eval call"
                       if confidence_name(cfg) == "label_prob" else "one request = one greedy generation",
        "cost": {k: (v[0] if v else None) for k, v in pricers.items()},
        "wall_s": round(wall, 3), "samples": SAMPLES_FILE,
        "cache_files": {"slm": str(cache / f"slm-{sk}.jsonl"), "llm": str(cache / f"llm-{lk}.jsonl")},
    }
    record.set("router", block)
    _record_system(cfg, task, record, block, routed, slm_only, llm_only)
    return block
