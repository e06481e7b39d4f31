"""One label-scoring request: every label of a classification task scored as the answer to one prompt, the prompt
rendered as the evaluation renders it, timed as one call.

Why one home: the router's `label_prob` confidence (slmexp.router) and the timed requests of
`task.formulation=choice` (slmexp.decoding.choice) are the same request, so what is timed is what was scored.
The runtime does the scoring (its `score_labels` capability, called through slmexp.runtimes: the transformers
runtime on the prompt's KV cache, the others with lm-eval `loglikelihood` requests); this module renders the
context and turns the log-likelihoods into an answer (softmax over the labels, the likeliest label).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from slmexp.runtimes import score_labels
from slmexp.tasks import Task, render_prompt


def label_softmax(logprobs: list[float]) -> np.ndarray:
    """Probabilities over the labels from their total log-likelihoods (numerically stable softmax)."""
    x = np.asarray(logprobs, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def label_context(lm: Any, chat: bool, prompt: str, labels: Sequence[str], answer_prefix: str | None
                  ) -> tuple[str, list[str]]:
    """The evaluation's (context, continuations): with a chat template, the user turn through it and each label
    as written after it; without, the prompt, a newline and `answer_prefix`, each label after a space (lm-eval's
    target delimiter). `lm` is the runtime's lm-eval model, whose rendering the accuracy pass used."""
    if chat:
        return lm.apply_chat_template([{"role": "user", "content": prompt}]), list(labels)
    return f"{prompt}\n{answer_prefix or ''}", [f" {x}" for x in labels]


def label_scorer(task: Task, rows: list[dict[str, Any]]) -> Callable[[Any, int], dict[str, Any]]:
    """`one(runtime, i)`: the log-likelihood of every label as the answer to row i's prompt, timed as one call.

    Returns per request: the row's `id`, `answer` (the likeliest label), `confidence` (its softmax probability),
    `label_logprobs`, `latency_s` (the scoring call only, not the rendering), `input_tokens` (the context's, by the
    runtime's tokenizer) and `output_tokens` (0: nothing is generated).
    """
    labels = task.labels
    state: dict[str, Any] = {}

    def one(runtime: Any, i: int) -> dict[str, Any]:
        if "lm" not in state:
            state["lm"] = runtime.lm_eval_model()
            state["chat"] = runtime.uses_chat_template()
        lm = state["lm"]
        ctx, conts = label_context(lm, state["chat"], render_prompt(task.cfg, rows[i]), labels,
                                   task.cfg.get("answer_prefix"))
        t0 = time.perf_counter()
        lp = score_labels(runtime, ctx, conts)
        latency = time.perf_counter() - t0
        probs = label_softmax(lp)
        best = int(np.argmax(probs))
        return {"id": rows[i].get("id"), "answer": labels[best], "confidence": round(float(probs[best]), 6),
                "label_logprobs": [round(x, 4) for x in lp], "latency_s": round(latency, 4),
                "input_tokens": len(lm.tok_encode(ctx)), "output_tokens": 0}

    return one
