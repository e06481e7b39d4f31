"""The shared-prompt-prefix step, in one place: run a batch's common prefix once and repeat its KV cache.

Used by training (slmexp.train_speed: right-padded rows, gradients flow through the repeated cache) and by the
transformers runtime's batched generation (slmexp.runtimes._hf_prefix: left-padded rows re-laid out). Both find
their own prefix length, since padding sits on opposite sides; both share the threshold and the cache step.
"""

from __future__ import annotations

from typing import Any

#: The shortest common prefix worth a separate forward (below it the extra call costs more than it saves).
MIN_SHARED_PREFIX = 16


def repeated_prefix_cache(model: Any, prefix_ids: Any, prefix_mask: Any, batch: int) -> Any:
    """The KV cache of one row's prefix (`prefix_ids`, shape 1 x n), repeated `batch` times along the batch axis.

    Logits are computed for the last position only (they feed nothing). Autograd follows the repeat, so under
    training the gradient of every row reaches the prefix once, summed.
    """
    out = model(input_ids=prefix_ids, attention_mask=prefix_mask, use_cache=True, logits_to_keep=1)
    cache = out.past_key_values
    cache.batch_repeat_interleave(batch)
    return cache
