"""Batched generation that computes a batch's common prompt prefix once (the transformers runtime's accuracy pass).

A task's prompts are mostly one shared text (support-intent: the instruction and the twelve intents, 242 of ~286
tokens), and on a CPU the prefill of that text is most of an example's time. lm-eval's HFLM hands `generate` a
left-padded batch; here the rows are re-laid out as `prefix | padding | own tokens`, the prefix runs once with a
cache, the cache is repeated over the batch, and `generate` continues from it. Positions come from the attention
mask (transformers derives `position_ids` from its cumulative sum), so the padding in the middle changes no
token's position and no token attends to it: the tokens generated are the same as without the cache (the test
compares them, greedy, fp32). The returned tensor keeps HFLM's layout: the context's width, then the new tokens.
"""

from __future__ import annotations

from typing import Any

from slmexp.shared_prefix import MIN_SHARED_PREFIX, repeated_prefix_cache


def common_prefix(context: Any, attention_mask: Any) -> tuple[list[Any], int]:
    """The rows without their left padding, and the length of the prefix they all share (leaving each row at
    least one token of its own: generate needs one uncached token per row to start from)."""
    rows = [ids[mask.bool()] for ids, mask in zip(context, attention_mask, strict=True)]
    n = min(len(r) for r in rows) - 1
    first = rows[0]
    for r in rows[1:]:
        same = (r[:n] == first[:n]).long()
        n = int(same.cumprod(0).sum()) if n > 0 else 0
    return rows, max(n, 0)


def generate(model: Any, input_ids: Any, attention_mask: Any = None, generate_fn: Any = None, **kwargs: Any) -> Any:
    """`model.generate(input_ids=..., attention_mask=..., **kwargs)` (or `generate_fn`, the model's
    own generate), sharing the prefix when the batch has more than one row and they share at least
    MIN_SHARED_PREFIX tokens."""
    import torch

    context = input_ids
    generate_fn = generate_fn or model.generate
    if context.shape[0] < 2 or attention_mask is None:
        return generate_fn(input_ids=context, attention_mask=attention_mask, **kwargs)
    rows, n = common_prefix(context, attention_mask)
    if n < MIN_SHARED_PREFIX:
        return generate_fn(input_ids=context, attention_mask=attention_mask, **kwargs)
    width = context.shape[1]
    pad = kwargs.get("pad_token_id")
    pad = 0 if pad is None else int(pad)
    ids = torch.full_like(context, pad)
    mask = torch.zeros_like(attention_mask)
    for i, r in enumerate(rows):
        ids[i, :n], mask[i, :n] = r[:n], 1
        own = r[n:]
        ids[i, width - len(own):], mask[i, width - len(own):] = own, 1
    with torch.no_grad():
        cache = repeated_prefix_cache(model, ids[:1, :n], mask[:1, :n], context.shape[0])
    stats = getattr(model, "_slmexp_prefix_stats", None)
    if stats is not None:
        stats["batches"] += 1
        stats["prefix_tokens_saved"] += n * (context.shape[0] - 1)
    return generate_fn(input_ids=ids, attention_mask=mask, past_key_values=cache, **kwargs)
