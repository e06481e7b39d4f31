"""`OrtGenAILM`: the lm-eval `LM` of runtime=ortgenai, the shared `PrefixLM` over one `onnxruntime_genai.Generator`.

Kept apart from ortgenai.py so that looking the runtime class up at config time does not import lm-eval; the
runtime imports this module when it loads the model. How the generator's logits and cache are used: see ortgenai.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from slmexp.errors import SlmexpError
from slmexp.runtimes._prefix_lm import PrefixLM


class OrtGenAILM(PrefixLM):
    """The shared prefix-reusing LM (`_prefix_lm.PrefixLM`) over one `onnxruntime_genai.Generator`, reused
    across requests (see the module docstring).

    State: `_tokens` are the positions whose keys/values are in the generator's cache; `_rows` holds the logits
    rows of a leading part of them (generation does not keep the prompt's rows: copying a vocabulary-wide row per
    prompt token is time a timed request should not pay).
    """

    label = "ortgenai"

    def __init__(self, model: Any, hf_tokenizer: Any, max_length: int = 2048, max_gen_toks: int = 256) -> None:
        import numpy as np
        import onnxruntime_genai as og

        super().__init__(hf_tokenizer, max_length=max_length, max_gen_toks=max_gen_toks)
        self._og = og
        self.model = model
        self._og_tokenizer = og.Tokenizer(model)
        self._generator: Any = None
        self._tokens: list[int] = []
        self._rows = np.zeros((0, 0), dtype=np.float32)
        eos = set(self._og_tokenizer.eos_token_ids) if hasattr(self._og_tokenizer, "eos_token_ids") else set()
        self._eos = {int(t) for t in eos} | {int(hf_tokenizer.eos_token_id)}

    # --- tokenization (the HF tokenizer's, as HFLM uses it) ---

    @property
    def eot_token_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def prefix_token_id(self) -> int:
        """BOS if the tokenizer has one, else EOS: the token HFLM scores an empty context after."""
        bos = self.tokenizer.bos_token_id
        return int(bos if bos is not None else self.tokenizer.eos_token_id)

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        """HFLM's encoding: the tokenizer's own special tokens unless told, and no second BOS after a rendered one."""
        if add_special_tokens is None:
            bos = self.tokenizer.decode(self.prefix_token_id)
            kw = {"add_special_tokens": False} if bos and string.startswith(bos) else {}
        else:
            kw = {"add_special_tokens": add_special_tokens}
        return list(self.tokenizer.encode(string, **kw))

    def tok_decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=True)

    # --- the engine's primitives ---

    def _new_generator(self) -> Any:
        params = self._og.GeneratorParams(self.model)
        params.set_search_options(max_length=self.max_length, do_sample=False)
        return self._og.Generator(self.model, params)

    def clear_cache(self) -> None:
        """Forget the evaluated positions, so the next request is run from its first token."""
        self._tokens = []
        self._rows = self._rows[:0]

    def close(self) -> None:
        self._generator = None

    def _run(self, tokens: Sequence[int], keep: int) -> None:
        """Run `tokens[keep:]` after the first `keep` cached positions (their logits: `get_output("logits")`)."""
        import numpy as np

        if len(tokens) > self.max_length:
            raise SlmexpError(f"runtime=ortgenai: {len(tokens)} tokens exceed runtime.max_length={self.max_length}")
        if self._generator is None or keep == 0:
            self._generator = self._new_generator()  # as cheap as rewinding to 0
            keep = 0
        else:
            self._generator.rewind_to(keep)
        self._generator.append_tokens(np.asarray(tokens[keep:], dtype=np.int32))
        self._tokens = list(tokens)

    def _cached_prefix(self, tokens: Sequence[int]) -> int:
        n = 0
        for a, b in zip(self._tokens, tokens, strict=False):
            if a != b:
                break
            n += 1
        return n

    def _logits_for(self, tokens: Sequence[int]) -> Any:
        """Logits for every position of `tokens` (row i predicts token i+1), reusing the cached common prefix."""
        import numpy as np

        keep = min(self._cached_prefix(tokens), len(self._rows), len(tokens) - 1)
        self._run(tokens, keep)
        new = np.asarray(self._generator.get_output("logits"))[0]  # a copy: one row per position just run
        self._rows = np.concatenate([self._rows[:keep], new]) if keep else new.copy()
        return self._rows

    def _greedy(self, tokens: list[int], max_new_tokens: int, constraint: Any = None) -> Iterator[int]:
        """The generator's greedy search after `tokens`, stopping at an end-of-sequence token or the budget.
        Unconstrained only: config validation refuses decoding=constrained on this runtime (see ortgenai.py)."""
        if constraint is not None:
            from slmexp.errors import SlmexpError

            raise SlmexpError("runtime=ortgenai cannot constrain decoding (decoding.name=constrained)")
        keep = min(self._cached_prefix(tokens), len(tokens) - 1)  # run at least one token: fresh logits
        self._run(tokens, keep)
        self._rows = self._rows[: min(len(self._rows), keep)]  # the prompt's new rows are not kept (see class doc)
        generator = self._generator
        for _ in range(max_new_tokens):
            if generator.is_done():
                return
            generator.generate_next_token()
            tok = int(generator.get_next_tokens()[0])
            if tok in self._eos:
                return
            yield tok
        # The generated tokens stay in the generator past `_tokens`; the next request rewinds over them.
