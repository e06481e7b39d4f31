"""`LlamaCppLM`: the lm-eval `LM` of runtime=llamacpp, the shared `PrefixLM` over an in-process `llama_cpp.Llama`.

Kept apart from llamacpp.py so that looking the runtime class up at config time does not import lm-eval; the
runtime imports this module when it is first evaluated. Why an LM of our own rather than lm-eval's `gguf` backend:
see llamacpp.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from slmexp.errors import SlmexpError
from slmexp.runtimes._prefix_lm import PrefixLM


class LlamaCppLM(PrefixLM):
    """The shared prefix-reusing LM (`_prefix_lm.PrefixLM`) over an in-process `llama_cpp.Llama` built with
    `logits_all=True`.

    The KV cache and the stored logits of a prefix shared with the previous request are reused, so only the
    differing suffix is evaluated. Scoring reads every position's logits; generation asks llama.cpp for the last
    position's only. Tokenization is llama.cpp's own.
    """

    label = "llama.cpp"

    def __init__(self, llm: Any, hf_tokenizer: Any, max_gen_toks: int = 256) -> None:
        import llama_cpp

        super().__init__(hf_tokenizer, max_length=int(llm.n_ctx()), max_gen_toks=max_gen_toks)
        self.llm = llm
        self._llama_cpp = llama_cpp
        self._rows = 0  # leading positions whose logits rows in llm.scores belong to llm.input_ids
        self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self._pieces: dict[tuple[int, bool], bytes] = {}  # token -> bytes: decoding is per token, repeatedly
        self._grammars: Any = None  # _llamacpp_grammar.GrammarCache, on the first constrained request
        bos = llm.token_bos()
        self._bos_text = self._piece(bos, special=True).decode("utf-8", "replace") if bos >= 0 else None

    # --- tokenization (llama.cpp's, from the GGUF) ---

    @property
    def eot_token_id(self) -> int:
        return int(self.llm.token_eos())

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        """llama.cpp tokenization; special tokens in the text (chat markup) are parsed, as HF does.

        `add_special_tokens=None` follows HFLM: BOS is added if the vocabulary says so, unless the text already
        starts with it (a chat template that writes `<bos>` itself).
        """
        if add_special_tokens is None:
            add_special_tokens = not (self._bos_text and string.startswith(self._bos_text))
        return list(self.llm.tokenize(string.encode("utf-8"), add_bos=add_special_tokens, special=True))

    def _piece(self, token: int, special: bool = False) -> bytes:
        """The bytes of one token; control tokens are empty unless `special` (as HF's skip_special_tokens).

        Not `Llama.detokenize`: its 32-byte buffer silently drops longer tokens (Qwen2.5 has 256-byte ones).
        """
        import ctypes

        key = (int(token), special)
        if key in self._pieces:
            return self._pieces[key]
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._llama_cpp.llama_token_to_piece(self._vocab, token, buf, size, 0, special)
            if n >= 0:
                self._pieces[key] = buf.raw[:n]
                return self._pieces[key]
            size = -n

    def tok_decode(self, tokens: Sequence[int]) -> str:
        return b"".join(self._piece(t) for t in tokens).decode("utf-8", errors="replace")

    # --- the engine's primitives ---

    def clear_cache(self) -> None:
        """Forget the evaluated tokens, so the next request is evaluated from its first token."""
        self.llm.n_tokens = 0
        self._rows = 0

    def _cached_prefix(self, tokens: Sequence[int]) -> int:
        """How many leading tokens of `tokens` are already in llama.cpp's KV cache."""
        import numpy as np

        if len(tokens) > self.max_length:
            raise SlmexpError(f"runtime=llamacpp: {len(tokens)} tokens exceed runtime.n_ctx={self.max_length}")
        cached = self.llm.input_ids[: self.llm.n_tokens]
        n = min(len(cached), len(tokens))
        same = cached[:n] == np.asarray(tokens[:n], dtype=cached.dtype)
        return n if same.all() else int(np.argmin(same))

    def _decode(self, tokens: Sequence[int], keep: int, all_logits: bool) -> None:
        """Decode `tokens[keep:]` after the first `keep` cached ones (eval() drops the KV cache beyond n_tokens).

        `all_logits=False` asks llama.cpp for the last position's logits only: a prompt's output projection over
        the whole vocabulary at every position costs ~25% of a prefill, which a timed request must not pay.
        `Llama` reads its private `_logits_all` at each eval(), so it is switched for this call only.
        """
        llm = self.llm
        llm.n_tokens = keep
        llm._logits_all = all_logits
        try:
            llm.eval(list(tokens[keep:]))
        finally:
            llm._logits_all = True

    def _logits_for(self, tokens: Sequence[int]) -> Any:
        """Logits for every position of `tokens` (row i predicts token i+1), reusing the cached common prefix."""
        keep = min(self._cached_prefix(tokens), self._rows)  # only positions whose logits rows were stored
        if keep < len(tokens):
            self._decode(tokens, keep, all_logits=True)
        else:
            self.llm.n_tokens = keep
        self._rows = len(tokens)
        return self.llm.scores[: len(tokens)]

    def _last_logits(self, tokens: Sequence[int]) -> Any:
        """Logits of the last position of `tokens` only, reusing the cached common prefix."""
        import numpy as np

        keep = self._cached_prefix(tokens)
        if keep == len(tokens) and self._rows >= keep:
            self.llm.n_tokens = keep
            return self.llm.scores[keep - 1]
        keep = min(keep, len(tokens) - 1)  # decode at least one token to have logits to read
        self._decode(tokens, keep, all_logits=False)
        self._rows = min(self._rows, keep)
        logits = self._llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(logits, shape=(self.llm.n_vocab(),)).copy()

    def _greedy(self, tokens: list[int], max_new_tokens: int, constraint: Any = None) -> Iterator[int]:
        """Argmax decoding from the logits (no sampler chain), stopping at an end-of-generation token; under a
        `constraint`, the argmax among the tokens llama.cpp's grammar sampler allows (_llamacpp_grammar)."""
        import numpy as np

        grammar = None
        if constraint is not None:
            if self._grammars is None:
                from slmexp.runtimes._llamacpp_grammar import GrammarCache

                self._grammars = GrammarCache(self._llama_cpp, self._vocab)
            grammar = self._grammars.get(constraint)
        logits = self._last_logits(tokens)
        for step in range(max_new_tokens):
            tok = int(np.argmax(logits)) if grammar is None else grammar.pick(logits)
            if tok is None or self._llama_cpp.llama_vocab_is_eog(self._vocab, tok):
                return
            yield tok
            if grammar is not None:
                grammar.accept(tok)
            if step + 1 < max_new_tokens:
                tokens = [*tokens, tok]
                logits = self._last_logits(tokens)

    def close(self) -> None:
        """Free the compiled grammars (C memory) before the model goes."""
        if self._grammars is not None:
            self._grammars.close()
            self._grammars = None
