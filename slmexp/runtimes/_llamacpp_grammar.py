"""Constrained decoding for llama.cpp: its own GBNF grammar sampler, applied to the greedy loop's logits.

Why llama.cpp's grammar sampler (`llama_sampler_init_grammar`) and not a second library: it is what a llama.cpp
deployment uses (llama-server's `json_schema` / `grammar`, llama-cpp-python's `LlamaGrammar`), it reads the GGUF's
own vocabulary, and llama-cpp-python converts a JSON Schema to GBNF itself (slmexp.decoding.grammar.gbnf).

Greedy decoding needs only the likeliest allowed token, so each step first asks the grammar about the
unconstrained argmax alone (one candidate) and masks the whole vocabulary only when the grammar rejects it: the
same token as masking first, at a fraction of the cost (llama.cpp's own sampler does the same).
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from slmexp.decoding.grammar import gbnf
from slmexp.decoding.spec import Constraint
from slmexp.errors import SlmexpError

_TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


class GrammarSampler:
    """One compiled grammar on one vocabulary; `reset()` before each request, `pick(logits)` then `accept(tok)`
    at each step, `free()` at the end (the sampler is C memory)."""

    def __init__(self, llama_cpp: Any, vocab: Any, grammar: str) -> None:
        self._lib = llama_cpp
        self._smpl = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
        if not self._smpl:
            raise SlmexpError(f"decoding=constrained: llama.cpp could not parse the grammar:\n{grammar[:500]}")

    def _apply(self, ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
        data = np.recarray((len(ids),), dtype=_TOKEN_DATA)
        data.id[:] = ids
        data.logit[:] = logits
        data.p[:] = 0
        arr = self._lib.llama_token_data_array(data=data.ctypes.data_as(self._lib.llama_token_data_p),
                                               size=len(ids), selected=-1, sorted=False)
        self._lib.llama_sampler_apply(self._smpl, ctypes.byref(arr))
        return np.array(data.logit, copy=True)

    def pick(self, logits: Any) -> int | None:
        """The likeliest token the grammar allows next (None if it allows none)."""
        logits = np.asarray(logits, dtype=np.single)
        tok = int(np.argmax(logits))
        if np.isfinite(self._apply(np.array([tok], dtype=np.intc), logits[tok:tok + 1])[0]):
            return tok
        masked = self._apply(np.arange(len(logits), dtype=np.intc), logits)
        tok = int(np.argmax(masked))
        return tok if np.isfinite(masked[tok]) else None

    def accept(self, token: int) -> None:
        self._lib.llama_sampler_accept(self._smpl, int(token))

    def reset(self) -> None:
        self._lib.llama_sampler_reset(self._smpl)

    def free(self) -> None:
        if self._smpl:
            self._lib.llama_sampler_free(self._smpl)
            self._smpl = None


class GrammarCache:
    """Compiled samplers by constraint (tool calls: one per distinct tool set), freed together on `close()`."""

    def __init__(self, llama_cpp: Any, vocab: Any) -> None:
        self._lib, self._vocab = llama_cpp, vocab
        self._samplers: dict[str, GrammarSampler] = {}

    def get(self, constraint: Constraint) -> GrammarSampler:
        sampler = self._samplers.get(constraint.key)
        if sampler is None:
            sampler = self._samplers[constraint.key] = GrammarSampler(self._lib, self._vocab, gbnf(constraint))
        sampler.reset()
        return sampler

    def close(self) -> None:
        for sampler in self._samplers.values():
            sampler.free()
        self._samplers.clear()
