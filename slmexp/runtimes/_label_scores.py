"""Label scoring, the runtimes' `score_labels(context, continuations)`: log p(continuation | context) of every label
of one prompt, in one call (task.formulation=choice's timed request; the router's `label_prob` confidence).

Two ways, by engine, with the same numbers:
- in-process torch (transformers): `shared_prefix_logprobs`, the context encoded once and every continuation
  scored in one batched pass on its KV cache (what a deployment that picks a label does);
- engines whose lm-eval `LM` already reuses a shared prompt (llama.cpp's and ORT GenAI's `PrefixLM`) or batches
  (vLLM): lm-eval `loglikelihood` requests on that LM (`lm_loglikelihoods`), as the accuracy pass scores them.

lm-eval and torch are imported inside the functions: runtime modules stay cheap to import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def lm_loglikelihoods(lm: Any, context: str, continuations: Sequence[str]) -> list[float]:
    """log p(continuation | context) for each continuation, through lm-eval `loglikelihood` requests on `lm`."""
    from lm_eval.api.instance import Instance

    reqs = [Instance("loglikelihood", {}, (context, c), j) for j, c in enumerate(continuations)]
    return [float(x[0]) for x in lm.loglikelihood(reqs, disable_tqdm=True)]


def hf_label_scores(model: Any, lm: Any, context: str, continuations: Sequence[str]) -> list[float]:
    """`shared_prefix_logprobs` on lm-eval HFLM's own split of each (context, continuation) pair into tokens
    (`_encode_pair`: the boundary where a continuation's leading space merges with the context), so the numbers are
    HFLM's `loglikelihood` (tests/test_router.py checks it)."""
    return shared_prefix_logprobs(model, [lm._encode_pair(context, c) for c in continuations])


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
