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
  answer, in the evaluation's context (chat template, lm-eval's context/continuation split). On transformers the
  prompt is encoded once and all labels scored in one batched pass on its KV cache (`shared_prefix_logprobs`);
  other runtimes get lm-eval `loglikelihood` requests on their LM (llama.cpp's reuses the shared prefix itself).
  The SLM's answer is the most likely label; one "request" is the scoring of all labels for one input;
- extraction / tool_call / qa -> `validity`: the SLM generates; confidence is 1 when its output passes the kind's
  validity check (a JSON object; a JSON tool call with a name and arguments; a non-empty answer), else 0. These
  checks are pluggable (`VALIDITY`); routing those kinds end to end waits for their scoring rules in tasks/.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from slmexp.config import fail
from slmexp.tasks import Task, render_prompt
from slmexp.tasks.metrics import normalize_label

log = logging.getLogger("slmexp.router")

CACHE_SUBDIR = "router"
SAMPLES_FILE = "router/samples.jsonl"


def enabled(cfg: DictConfig) -> bool:
    """Whether the config routes (`router=slm-first`), not `router=none`."""
    r = cfg.get("router")
    return r is not None and str(r.get("name", "none")) != "none"


# --- confidence functions -------------------------------------------------------------------------------------------


def _json_object(text: str) -> dict[str, Any] | None:
    """The JSON object in a model's output (a ```json fence or surrounding prose tolerated), or None."""
    text = (text or "").strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fence:
        text = fence.group(1).strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        obj = json.loads(text[start:end + 1])
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def valid_extraction(output: str, task_cfg: DictConfig | None = None) -> float:
    """1.0 when the output holds a JSON object (with every `task.required_keys`, if the task lists them)."""
    obj = _json_object(output)
    if obj is None:
        return 0.0
    required = list((task_cfg.get("required_keys") if task_cfg is not None else None) or [])
    return float(all(k in obj for k in required))


def valid_tool_call(output: str, task_cfg: DictConfig | None = None) -> float:
    """1.0 when the output is a JSON call {"name": str, "arguments": object}, naming a known tool if the task
    lists them (`task.tools`: names, or objects with a `name`)."""
    obj = _json_object(output)
    if obj is None or not isinstance(obj.get("name"), str) or not isinstance(obj.get("arguments"), dict):
        return 0.0
    tools = (task_cfg.get("tools") if task_cfg is not None else None) or []
    names = {t if isinstance(t, str) else t.get("name") for t in tools}
    return float(not names or obj["name"] in names)


def valid_answer(output: str, task_cfg: DictConfig | None = None) -> float:
    """1.0 for a non-empty answer (free-form QA: the weakest useful check)."""
    return float(bool((output or "").strip()))


# task.kind -> validity check of a generated output (confidence 1.0 / 0.0)
VALIDITY: dict[str, Callable[[str, DictConfig | None], float]] = {
    "extraction": valid_extraction,
    "tool_call": valid_tool_call,
    "qa": valid_answer,
}
# task.kind -> the default confidence function's name
DEFAULT_CONFIDENCE = {"classification": "label_prob", **{k: "validity" for k in VALIDITY}}
# kinds whose routed answers can be scored here end to end
ROUTABLE = ("classification",)


def label_softmax(logprobs: list[float]) -> np.ndarray:
    """Probabilities over the labels from their total log-likelihoods (numerically stable softmax)."""
    x = np.asarray(logprobs, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def validate(cfg: DictConfig) -> None:
    """Fail before any model loads when routing cannot run as configured."""
    if not enabled(cfg):
        return
    r, kind = cfg.router, str(cfg.task.kind)
    thr = r.get("threshold")
    if isinstance(thr, bool) or not isinstance(thr, int | float) or thr < 0:
        raise fail("router.threshold", f"must be a number >= 0 (escalate when confidence < it), got {thr!r}")
    conf = r.get("confidence") or DEFAULT_CONFIDENCE.get(kind)
    if conf not in ("label_prob", "validity"):
        raise fail("router.confidence", f"{r.get('confidence')!r} is not label_prob or validity")
    if conf == "label_prob" and kind != "classification":
        raise fail("router.confidence", f"label_prob needs a classification task (task.kind={kind})")
    if kind not in ROUTABLE:
        raise fail("task.kind", f"routing scores {', '.join(ROUTABLE)} tasks end to end; task.kind={kind} has a "
                   f"validity check ({'yes' if kind in VALIDITY else 'no'}) but no routed scoring rule yet")
    for key in ("llm.model.name", "llm.runtime.name", "llm.runtime._target_"):
        if not OmegaConf.select(r, key):
            raise fail(f"router.{key}", "must be set")
    if int(cfg.eval.get("num_fewshot") or 0) > 0:
        raise fail("eval.num_fewshot", "routing scores zero-shot prompts only; set eval.num_fewshot=0")


# --- per-request measurements, cached ------------------------------------------------------------------------------


def _key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def slm_key(cfg: DictConfig, task: Task, record: dict[str, Any]) -> str:
    """Everything that decides the SLM's answers: its weights, adapter/training (incl. distillation data),
    quantization, runtime, prompt rendering, the eval split's data, and the confidence function."""
    c = OmegaConf.to_container(cfg, resolve=True)
    skip = ("paths", "router", "logger", "name", "eval", "cost", "baseline", "optimized_metric", "hydra")
    parts = {k: v for k, v in c.items() if k not in skip}
    parts["task"] = {k: v for k, v in parts["task"].items() if k != "data"}
    from slmexp.distill import answer_config

    parts["runtime"] = answer_config(cfg.runtime)  # threads and batch size change timings, not answers
    if str(cfg.adapter.name) == "none":
        parts.pop("train", None)
        parts.pop("distill", None)
    parts.update(split=str(cfg.eval.split), data=task.sha256[str(cfg.eval.split)],
                 model_sha=(record.get("model") or {}).get("sha256"),
                 distill_data=(record.get("distill") or {}).get("data_sha256"),
                 confidence=confidence_name(cfg))
    return _key(parts)


def llm_key(cfg: DictConfig, task: Task) -> str:
    """The LLM's model and runtime config, the prompt rendering and the eval split's data."""
    from slmexp.distill import answer_config

    return _key({"llm_model": OmegaConf.to_container(cfg.router.llm.model, resolve=True),
                 "llm_runtime": answer_config(cfg.router.llm.runtime),
                 "task": {k: v for k, v in OmegaConf.to_container(cfg.task, resolve=True).items() if k != "data"},
                 "split": str(cfg.eval.split), "data": task.sha256[str(cfg.eval.split)], "seed": int(cfg.seed)})


def confidence_name(cfg: DictConfig) -> str:
    return str(cfg.router.get("confidence") or DEFAULT_CONFIDENCE[str(cfg.task.kind)])


def _measure(path: Path, n: int, load: Callable[[], Any], one: Callable[[Any, int], dict[str, Any]],
             what: str) -> tuple[dict[int, dict[str, Any]], int]:
    """Per-request results 0..n-1 from the cache file, measuring (and appending) only the missing ones.

    Returns (results by index, how many were measured now). The model is loaded only if something is missing.
    """
    from slmexp.distill import read_cache

    have = read_cache(path, "answer")
    todo = [i for i in range(n) if i not in have]
    if todo:
        log.info("router: %s answers %d of %d requests (%d cached in %s)", what, len(todo), n, n - len(todo), path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with load() as runtime, open(path, "a", encoding="utf-8") as f:
            for i in todo:
                entry = {"i": i, **one(runtime, i)}
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
                f.flush()
                have[i] = entry
    return have, len(todo)


def _slm_label_prob(task: Task, rows: list[dict[str, Any]]) -> Callable[[Any, int], dict[str, Any]]:
    """One SLM request = the log-likelihood of every label as the answer to row i's prompt, timed as one call."""
    from lm_eval.api.instance import Instance

    labels = task.labels
    state: dict[str, Any] = {}

    def one(runtime: Any, i: int) -> dict[str, Any]:
        if "lm" not in state:
            state["lm"] = runtime.lm_eval_model()
            state["chat"] = runtime.uses_chat_template()
        lm, prompt = state["lm"], render_prompt(task.cfg, rows[i])
        if state["chat"]:  # the evaluation's context: the user turn through the chat template, answer follows
            ctx, conts = lm.apply_chat_template([{"role": "user", "content": prompt}]), labels
        else:
            ctx, conts = f"{prompt}\n{task.cfg.get('answer_prefix') or ''}", [f" {x}" for x in labels]
        t0 = time.perf_counter()
        if getattr(runtime, "name", None) == "transformers" and hasattr(lm, "_encode_pair"):
            pairs = [lm._encode_pair(ctx, c) for c in conts]  # lm-eval's own split of context / continuation
            lp = shared_prefix_logprobs(runtime.model, pairs)
        else:  # e.g. llama.cpp's LM, which already reuses the shared prompt's KV cache across requests
            reqs = [Instance("loglikelihood", {}, (ctx, c), j) for j, c in enumerate(conts)]
            lp = [float(x[0]) for x in lm.loglikelihood(reqs, disable_tqdm=True)]
        latency = time.perf_counter() - t0
        probs = label_softmax(lp)
        best = int(np.argmax(probs))
        return {"id": rows[i].get("id"), "answer": labels[best], "confidence": round(float(probs[best]), 6),
                "label_logprobs": [round(x, 4) for x in lp], "latency_s": round(latency, 4),
                "input_tokens": len(lm.tok_encode(ctx)), "output_tokens": 0}

    return one


def shared_prefix_logprobs(model: Any, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
    """log p(continuation | context) for every continuation of one context: the context encoded once, then all
    continuations in one batched forward pass on its KV cache.

    lm-eval's HFLM re-encodes the whole prompt for every label (12 prompts of ~280 tokens per request here, ~10x
    the cost of answering it); a router pays the prompt once plus one short batched step, as a deployment would.
    Same numbers as HFLM's `loglikelihood` (tests/test_router.py checks it). Right padding in the batch does not
    change the earlier positions' logits (causal attention), and only those are read.
    """
    import torch

    ctxs = {tuple(ctx) for ctx, _ in pairs}
    if len(ctxs) > 1:  # not one shared prompt: score each context on its own
        return [shared_prefix_logprobs(model, [p])[0] for p in pairs]
    ctx = pairs[0][0]
    dev = next(model.parameters()).device
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ctx], device=dev), use_cache=True)
        first = torch.log_softmax(out.logits[0, -1].float(), -1)
        totals = [float(first[cont[0]]) for _, cont in pairs]
        rest = [i for i, (_, cont) in enumerate(pairs) if len(cont) > 1]
        if rest:
            width = max(len(pairs[i][1]) - 1 for i in rest)
            batch = [pairs[i][1][:-1] + [pairs[i][1][0]] * (width - len(pairs[i][1]) + 1) for i in rest]
            cache = out.past_key_values
            cache.batch_repeat_interleave(len(rest))
            o = model(input_ids=torch.tensor(batch, device=dev), past_key_values=cache, use_cache=True)
            lp = torch.log_softmax(o.logits.float(), -1)
            for row, i in enumerate(rest):
                cont = pairs[i][1]
                idx = torch.arange(len(cont) - 1, device=dev)
                totals[i] += float(lp[row, idx, torch.tensor(cont[1:], device=dev)].sum())
    return totals


def _llm_answer(task: Task, rows: list[dict[str, Any]]) -> Callable[[Any, int], dict[str, Any]]:
    from slmexp.distill import answer

    gen = task.cfg.generation

    def one(runtime: Any, i: int) -> dict[str, Any]:
        out = answer(runtime, render_prompt(task.cfg, rows[i]), int(gen.max_new_tokens), list(gen.until))
        return {"id": rows[i].get("id"), "answer": out.pop("raw"), **out}

    return one


def _correct(kind: str, answer: str, gold: str) -> float:
    if kind == "classification":
        return float(normalize_label(answer) == gold)
    raise NotImplementedError(kind)  # validate() refuses other kinds before anything runs


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
    return {
        "threshold": threshold if only is None else None, "system": only or "routed", "n": n,
        "accuracy": acc,
        "accuracy_stderr": math.sqrt(acc * (1 - acc) / (n - 1)) if acc is not None and n > 1 else None,
        "n_escalated": int(sum(esc)), "escalated_share": sum(esc) / n if n else None,
        "latency_ms": {"mean": float(lat_ms.mean()), "p50": float(np.percentile(lat_ms, 50)),
                       "p95": float(np.percentile(lat_ms, 95))} if n else None,
        "usd_per_1k_requests": usd_1k,
        "usd_per_correct": usd_1k / 1000 / acc if usd_1k is not None and acc else None,
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


def run(cfg: DictConfig, task: Task, run_dir: Path, record: Any, load_slm: Callable[[], Any]) -> dict[str, Any]:
    """The pipeline's `route` stage: measure (or read) both models per request, compose this threshold, record."""
    from slmexp.cost import request_pricer
    from slmexp.distill import load_model_runtime, sub_config

    split, kind = str(cfg.eval.split), str(cfg.task.kind)
    rows = task.splits[split]
    limit = cfg.eval.get("limit")
    rows = rows[: int(limit)] if limit else rows
    n = len(rows)
    cache = Path(str(cfg.paths.cache_dir)).expanduser() / CACHE_SUBDIR
    sk, lk = slm_key(cfg, task, record.data), llm_key(cfg, task)
    llm_sub = sub_config(cfg, cfg.router.llm.model, cfg.router.llm.runtime)
    t0 = time.perf_counter()
    slm_raw, slm_new = _measure(cache / f"slm-{sk}.jsonl", n, load_slm, _slm_label_prob(task, rows), "SLM")
    llm_raw, llm_new = _measure(cache / f"llm-{lk}.jsonl", n,
                                lambda: load_model_runtime(llm_sub, "router.llm"), _llm_answer(task, rows), "LLM")
    wall = time.perf_counter() - t0
    gold_field = task.cfg.fields.label
    pricers = {"slm": request_pricer(cfg.get("cost"), cfg.runtime),
               "llm": request_pricer(cfg.get("cost"), llm_sub.runtime)}

    def enrich(raw: dict[int, dict[str, Any]], who: str) -> list[dict[str, Any]]:
        out = []
        for i, row in enumerate(rows):
            m = dict(raw[i])
            m["correct"] = _correct(kind, m["answer"], row[gold_field])
            p = pricers[who]
            m["cost_usd"] = p[1](m["latency_s"], m.get("input_tokens"), m.get("output_tokens")) if p else None
            out.append(m)
        return out

    slm, llm = enrich(slm_raw, "slm"), enrich(llm_raw, "llm")
    thr = float(cfg.router.threshold)
    routed = compose(slm, llm, thr)
    slm_only, llm_only = compose(slm, llm, None, "slm"), compose(slm, llm, None, "llm")

    samples = Path(run_dir) / SAMPLES_FILE
    samples.parent.mkdir(parents=True, exist_ok=True)
    with open(samples, "w", encoding="utf-8") as f:
        for i, row in enumerate(rows):
            esc = routed["_escalated"][i]
            f.write(json.dumps({
                "doc_id": i, "id": row.get("id"), "target": row[gold_field],
                "response": llm[i]["answer"] if esc else slm[i]["answer"], "exact_match": routed["_correct"][i],
                "escalated": esc, "slm_answer": slm[i]["answer"], "slm_confidence": slm[i]["confidence"],
                "slm_correct": slm[i]["correct"], "llm_answer": llm[i]["answer"], "llm_correct": llm[i]["correct"],
                "slm_latency_s": slm[i]["latency_s"], "llm_latency_s": llm[i]["latency_s"],
            }, ensure_ascii=False) + "\n")

    llm_name = str(cfg.router.llm.model.name)
    block = {
        "threshold": thr, "confidence": confidence_name(cfg),
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
        "slm_usd_per_1k_requests": slm_only["usd_per_1k_requests"],
        "llm_usd_per_1k_requests": llm_only["usd_per_1k_requests"],
        "assumption": COMPOSITION,
    }))
    return block


# --- the report's router section -------------------------------------------------------------------------------------


def _fmt(v: Any, spec: str) -> str:
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _router_row(ident: dict[str, Any], system: str, threshold: float | None, figs: dict[str, Any],
                slm_only: dict[str, Any], llm_only: dict[str, Any]) -> dict[str, Any]:
    lat = figs.get("latency_ms") or {}
    acc, usd = figs.get("accuracy"), figs.get("usd_per_1k_requests")
    beats = None
    if system == "routed" and None not in (acc, usd, slm_only["accuracy"], llm_only["usd_per_1k_requests"]):
        beats = acc > slm_only["accuracy"] and usd < llm_only["usd_per_1k_requests"]
    per_correct = figs.get("usd_per_correct")
    return {**ident, "system": system, "threshold": threshold, "accuracy": acc,
            "escalated_share": figs.get("escalated_share"), "latency_p50_ms": lat.get("p50"),
            "latency_p95_ms": lat.get("p95"), "latency_mean_ms": lat.get("mean"), "usd_per_1k_req": usd,
            "usd_per_1k_correct": 1000 * per_correct if per_correct is not None else None,
            "beats_slm_acc_and_llm_cost": beats}


def router_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per finished router run (by threshold) plus the SLM-only and LLM-only rows of each (SLM, LLM) pair,
    all composed from the same per-request measurements; `beats` = more accurate than SLM-only and cheaper than
    LLM-only."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for rec in records:
        r = rec.get("router")
        if not r or (rec.get("run") or {}).get("status") != "finished":
            continue
        slm_label = (rec.get("model") or {}).get("name", "?")
        adapter = (rec.get("model") or {}).get("adapter")
        if adapter and adapter != "none":
            slm_label += f"+{adapter}"
        groups.setdefault((slm_label, r["llm"], r["n"]), []).append(r)
    out = []
    for (slm_label, llm, n), runs in sorted(groups.items()):
        ref = runs[0]
        slm_only, llm_only = ref["slm_only"], ref["llm_only"]

        ident = {"slm": slm_label, "llm": llm, "n": n}
        out.append(_router_row(ident, "slm-only", None, slm_only, slm_only, llm_only))
        seen = set()
        for r in sorted(runs, key=lambda r: r["threshold"]):
            if r["threshold"] not in seen:
                seen.add(r["threshold"])
                out.append(_router_row(ident, "routed", r["threshold"], r["routed"], slm_only, llm_only))
        out.append(_router_row(ident, "llm-only", None, llm_only, slm_only, llm_only))
    return out


def write_router_report(records: list[dict[str, Any]], out: Path) -> dict[str, Path]:
    """router.md / router.csv (a row per threshold next to SLM-only and LLM-only) and the accuracy-vs-cost curve
    (router_accuracy_vs_cost.png/.svg); nothing when no record routed."""
    import csv
    import io

    rows = router_rows(records)
    if not rows:
        return {}
    out = Path(out)
    cols = [("slm", "SLM", "s"), ("llm", "LLM", "s"), ("system", "system", "s"), ("threshold", "threshold", "g"),
            ("n", "n", "d"), ("accuracy", "accuracy", ".3f"), ("escalated_share", "escalated", ".0%"),
            ("latency_p50_ms", "latency p50 (ms)", ".0f"), ("latency_p95_ms", "latency p95 (ms)", ".0f"),
            ("latency_mean_ms", "latency mean (ms)", ".0f"), ("usd_per_1k_req", "$/1k req", ".4g"),
            ("usd_per_1k_correct", "$/1k correct", ".4g"),
            ("beats_slm_acc_and_llm_cost", "beats SLM acc. & LLM $", "s")]
    lines = ["**SLM-first routing.** A request is escalated to the LLM when the SLM's confidence < threshold. "
             "Routed figures are composed per request from each model's measured answers, wall times and costs "
             "(run.json `router.composition`); SLM-only and LLM-only use the same measurements. Latency: per "
             "request, one at a time (ms); $/1k req: USD per 1,000 requests under the run's cost profile.", "",
             "| " + " | ".join(h for _c, h, _s in cols) + " |",
             "|" + "|".join("---" if s == "s" else "---:" for _c, _h, s in cols) + "|"]
    for r in rows:
        cells = []
        for c, _h, s in cols:
            v = r[c]
            cells.append(("yes" if v else "no") if isinstance(v, bool) else
                         ("" if v is None else str(v)) if s == "s" else _fmt(v, s))
        lines.append("| " + " | ".join(cells) + " |")
    md = out / "router.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[c for c, _h, _s in cols], lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: ("" if r[c] is None else f"{r[c]:.6g}" if isinstance(r[c], float) else r[c])
                         for c, _h, _s in cols})
    csv_path = out / "router.csv"
    csv_path.write_text(buf.getvalue(), encoding="utf-8", newline="\n")
    png, svg = _plot_router(rows, out / "router_accuracy_vs_cost")
    return {"router_md": md, "router_csv": csv_path, "router_png": png, "router_svg": svg}


def _plot_router(rows: list[dict[str, Any]], out: Path) -> tuple[Path, Path]:
    import matplotlib
    from matplotlib.figure import Figure

    from slmexp.report import SVG_HASHSALT

    with matplotlib.rc_context({"svg.hashsalt": SVG_HASHSALT, "svg.fonttype": "path", "font.size": 9}):
        fig = Figure(figsize=(8.0, 5.5), dpi=120)
        fig.subplots_adjust(left=0.09, right=0.97, top=0.93, bottom=0.1)
        ax = fig.add_subplot()
        pairs = sorted({(r["slm"], r["llm"]) for r in rows})
        for k, (slm, llm) in enumerate(pairs):
            mine = [r for r in rows if (r["slm"], r["llm"]) == (slm, llm) and r["usd_per_1k_req"] is not None
                    and r["accuracy"] is not None]
            routed = [r for r in mine if r["system"] == "routed"]
            color = f"C{k}"
            ax.plot([r["usd_per_1k_req"] for r in routed], [r["accuracy"] for r in routed], "-o", color=color,
                    label=f"{slm} -> {llm}, routed (threshold)")
            for r in routed:
                ax.annotate(f"{r['threshold']:g} ({r['escalated_share']:.0%})", (r["usd_per_1k_req"], r["accuracy"]),
                            xytext=(5, -10), textcoords="offset points", fontsize=7)
            for system, marker, size in (("slm-only", "s", 80), ("llm-only", "*", 220)):
                pts = [r for r in mine if r["system"] == system]
                ax.scatter([r["usd_per_1k_req"] for r in pts], [r["accuracy"] for r in pts], marker=marker, s=size,
                           color="tab:red" if system == "llm-only" else "tab:green", zorder=3,
                           label=f"{(slm if system == 'slm-only' else llm)} only")
        ax.set_xlabel("cost per 1,000 requests (USD; routed = SLM for all + LLM for escalated)")
        ax.set_ylabel("accuracy (primary metric, 0-1)")
        ax.set_title("SLM-first routing: accuracy vs cost (labels: threshold (escalated share))")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=7)
        paths = (out.with_suffix(".png"), out.with_suffix(".svg"))
        fig.savefig(paths[0], format="png", metadata={"Software": None})
        fig.savefig(paths[1], format="svg", metadata={"Date": None})
    return paths
