"""Quantization fidelity: how far a quantized model's next-token distributions drift from its own parent.

Why: accuracy on ~100 test examples moves in steps of 1% and hides drift until it is large; llama.cpp states
quantization quality as `llama-perplexity --kl-divergence` does: on the same tokens, teacher-forced, the mean KL
divergence KL(parent ‖ quantized) of the next-token distributions, the share of positions where both pick the same
top-1 token, and the perplexity ratio. Measured here on the task's own test examples (prompt + gold answer, as the
model sees them in training) plus a short generic English text, each scored on its own.

The parent is the checkpoint the quantizer started from (the run's merged adapter, or the model as resolved);
when that checkpoint was itself rebuilt from a GGUF (weights_provenance: "dequantized from GGUF Q4_1"), the
record says so: the rung is then compared with a dequantized copy, not with the original weights.

Backend-neutral by duck typing: the quantized side is read through the runtime's lm-eval LM, either an in-process
prefix LM (`_logits_for(tokens)`: llama.cpp, ONNX Runtime GenAI) or lm-eval's HFLM (`.model`: bitsandbytes); the
parent is loaded with transformers in float32. Both see the same token ids (the parent's tokenizer; a GGUF or ONNX
export keeps the checkpoint's vocabulary).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

# A short generic text (written for this project, no licence attached): fidelity off the task's own distribution.
GENERIC_TEXT = (
    "The river town woke slowly. Fishermen pulled their boats onto the gravel, and the baker opened his shutters "
    "to let the smell of bread into the street. Children ran to school along the old stone bridge, counting the "
    "swallows that nested under its arches. By noon the market was full: farmers sold apples, honey and cheese, "
    "and a travelling musician played the same three songs again and again. In the afternoon clouds came over the "
    "hills, the wind turned cold, and everyone hurried home before the first drops of rain."
)


def texts_for(task: Any, split: str, n: int) -> list[str]:
    """The first `n` examples of `split` as prompt + newline + gold answer, then the generic text."""
    from slmexp.tasks import render_prompt, render_target

    rows = (task.splits.get(split) or [])[:n] if getattr(task, "splits", None) else []
    texts = [f"{render_prompt(task.cfg, r)}\n{render_target(task.cfg, r)}" for r in rows]
    if not texts and getattr(task, "prompts", None):  # lm-eval's own tasks: their first test prompts
        texts = list(task.prompts)[:n]
    return [*texts, GENERIC_TEXT]


def _log_softmax(x: Any) -> Any:
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def compare_logits(parent: Any, rung: Any, tokens: list[int]) -> dict[str, Any]:
    """Per-position statistics of one text: rows i of both logit arrays predict tokens[i + 1].

    Returns {"kld": [..], "top1_same": [..], "nll_parent": [..], "nll_rung": [..]} over positions 0..len-2; the
    vocabularies are cut to the shorter one (a checkpoint's embedding may be padded past the tokenizer's size).
    """
    import numpy as np

    n = len(tokens) - 1
    vocab = min(parent.shape[-1], rung.shape[-1])
    lp = _log_softmax(np.asarray(parent)[:n, :vocab])
    lq = _log_softmax(np.asarray(rung)[:n, :vocab])
    p = np.exp(lp)
    kld = (p * (lp - lq)).sum(axis=-1)
    nxt = np.asarray(tokens[1:n + 1])
    rows = np.arange(n)
    return {"kld": kld.tolist(), "top1_same": (lp.argmax(-1) == lq.argmax(-1)).tolist(),
            "nll_parent": (-lp[rows, nxt]).tolist(), "nll_rung": (-lq[rows, nxt]).tolist()}


def summarize(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the positions of every text: mean KLD (nats), its 99th percentile, top-1 agreement (%), both
    perplexities and their ratio (rung / parent)."""
    import numpy as np

    kld = np.concatenate([np.asarray(s["kld"], dtype=float) for s in stats])
    same = np.concatenate([np.asarray(s["top1_same"], dtype=bool) for s in stats])
    nll_p = np.concatenate([np.asarray(s["nll_parent"], dtype=float) for s in stats])
    nll_q = np.concatenate([np.asarray(s["nll_rung"], dtype=float) for s in stats])
    ppl_p, ppl_q = math.exp(float(nll_p.mean())), math.exp(float(nll_q.mean()))
    return {"kld_mean": round(float(kld.mean()), 6), "kld_p99": round(float(np.percentile(kld, 99)), 6),
            "top1_agreement_pct": round(100.0 * float(same.mean()), 3), "ppl_parent": round(ppl_p, 4),
            "ppl": round(ppl_q, 4), "ppl_ratio": round(ppl_q / ppl_p, 6), "n_tokens": int(kld.size)}


def _rung_logits(lm: Any, tokens: list[int]) -> Any:
    """The quantized model's logits for every position of `tokens`, through the runtime's lm-eval LM."""
    if hasattr(lm, "_logits_for"):  # in-process prefix LM (slmexp.runtimes._prefix_lm)
        lm.clear_cache()
        import numpy as np

        return np.array(lm._logits_for(tokens), dtype=np.float32)
    model = getattr(lm, "model", None)
    if model is None:
        raise TypeError(f"{type(lm).__name__} exposes no logits (no _logits_for, no .model)")
    import torch

    with torch.no_grad():
        ids = torch.tensor([tokens], device=model.device)
        return model(ids).logits[0].float().cpu().numpy()


def measure(lm: Any, parent_path: Path, texts: list[str], *, max_tokens: int = 512) -> dict[str, Any]:
    """KLD / top-1 agreement / PPL ratio of the runtime's model (`lm`) against the checkpoint at `parent_path`.

    Args:
        lm: the runtime's lm-eval LM (`runtime.lm_eval_model()`).
        parent_path: the full-precision checkpoint the quantizer started from.
        texts: what to score (`texts_for`); each text is tokenized by the parent's tokenizer, cut to `max_tokens`.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(parent_path))
    parent = AutoModelForCausalLM.from_pretrained(str(parent_path), dtype=torch.float32)
    parent.eval()
    stats = []
    try:
        for text in texts:
            ids = tok(text, add_special_tokens=True)["input_ids"][:max_tokens]
            if len(ids) < 2:
                continue
            with torch.no_grad():
                p_logits = parent(torch.tensor([ids])).logits[0].float().numpy()
            stats.append(compare_logits(p_logits, _rung_logits(lm, ids), ids))
    finally:
        del parent
    out = summarize(stats)
    out.update(n_texts=len(stats), max_tokens_per_text=max_tokens, wall_s=round(time.perf_counter() - t0, 3),
               method="teacher-forced next-token distributions on the same token ids (the parent's tokenizer); "
                      "KL(parent ‖ rung) in nats, pooled over every position of every text; PPL ratio = rung / "
                      "parent perplexity (llama-perplexity --kl-divergence's figures)")
    return out
