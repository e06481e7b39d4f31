"""Constrained decoding for the transformers runtime: an llguidance token mask as a HF `LogitsProcessor`.

Why llguidance (docs/structured-outputs.md has the comparison): it installs with the pinned stack as one wheel
with no dependencies (xgrammar pulls in triton and a TVM runtime on a CPU machine), it is the engine behind ORT
GenAI's guidance and one of vLLM's structured-output backends, and it computes a mask in tens of microseconds.
Its own `llguidance.torch` helpers `torch.compile` their kernel, which costs a C++ build on a CPU-only machine;
the mask is applied here with plain tensor indexing instead.

The processor keeps one matcher per row of the batch: it consumes the token each row generated since the last
step, then sets every token the grammar forbids to -inf, so greedy decoding picks the likeliest allowed token.
Rows whose matcher has stopped (end of sequence consumed) are left alone: generate() pads them.
"""

from __future__ import annotations

from typing import Any

from transformers import LogitsProcessor

from slmexp.decoding.grammar import TokenMask, llguidance_grammar
from slmexp.decoding.spec import Constraint, ConstraintSpec


class GrammarProcessor(LogitsProcessor):
    """Masks each row's logits to the tokens its grammar allows next (see the module docstring)."""

    def __init__(self, lltokenizer: Any, grammar: str, batch: int, eos_ids: set[int]) -> None:
        self.masks = [TokenMask(lltokenizer, grammar, eos_ids) for _ in range(batch)]
        self.started = False

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.started:  # the previous step's tokens are the last column
            for row, mask in enumerate(self.masks):
                if not mask.done:
                    mask.consume(int(input_ids[row, -1]))
        self.started = True
        for row, mask in enumerate(self.masks):
            if mask.done:
                continue
            allowed = torch.from_numpy(mask.allowed()).to(scores.device)
            n = min(allowed.shape[0], scores.shape[1])
            scores[row, :n] = scores[row, :n].masked_fill(~allowed[:n], float("-inf"))
            scores[row, n:] = float("-inf")  # logits beyond the tokenizer's vocabulary (padding rows)
        return scores


class HFConstrainer:
    """The constraint state of one transformers runtime: the spec, llguidance's view of the tokenizer (built once:
    ~1 s for a 49k vocabulary), compiled grammars by constraint, and the constraint of the requests now running.
    `spec` is None for a constrainer that serves only `chat` turns, each with its own constraint."""

    def __init__(self, spec: ConstraintSpec | None, tokenizer: Any, eos_ids: set[int]) -> None:
        import llguidance.hf

        self.spec = spec
        self.eos_ids = set(eos_ids)
        self.lltokenizer = llguidance.hf.from_tokenizer(tokenizer, eos_token=sorted(eos_ids))
        self._grammars: dict[str, str] = {}
        self.active: Constraint | None = None

    def processor(self, constraint: Constraint, batch: int) -> GrammarProcessor:
        grammar = self._grammars.get(constraint.key)
        if grammar is None:
            grammar = self._grammars[constraint.key] = llguidance_grammar(constraint)
        return GrammarProcessor(self.lltokenizer, grammar, batch, self.eos_ids)

    def generation_kwargs(self, batch: int, constraint: Constraint | None = None) -> dict[str, Any]:
        """`logits_processor` for a generate() call of `batch` rows under `constraint` (default: `active`)."""
        from transformers import LogitsProcessorList

        constraint = constraint or self.active
        if constraint is None:
            return {}
        return {"logits_processor": LogitsProcessorList([self.processor(constraint, batch)])}

    def generate_until(self, requests: list[Any], run: Any) -> list[str]:
        """lm-eval's generate_until under the constraint of each request's doc: requests that share a constraint
        go to `run` (HFLM's own generate_until: its batching and stop handling) together, one group at a time."""
        groups: dict[str, tuple[Constraint, list[int]]] = {}
        for i, req in enumerate(requests):
            c = self.spec.for_doc(getattr(req, "doc", None))
            groups.setdefault(c.key, (c, []))[1].append(i)
        out: list[str] = [""] * len(requests)
        for constraint, idx in groups.values():
            self.active = constraint
            try:
                texts = run([requests[i] for i in idx])
            finally:
                self.active = None
            for i, text in zip(idx, texts, strict=True):
                out[i] = text
        return out
