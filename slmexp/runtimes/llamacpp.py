"""The llama.cpp runtime: a GGUF file served in this process through llama-cpp-python.

Accuracy goes through `LlamaCppLM`, an lm-eval `LM` written here over `llama_cpp.Llama(logits_all=True)`, not
lm-eval's own `gguf` / `local-completions` backends: those talk to llama-cpp-python's HTTP server, whose
completion logprobs come back as zeros (known upstream issues), so every log-likelihood would be silently wrong.
In process, the per-position logits are read directly: log-likelihoods match the HF model's (see
tests/test_gguf.py) and no server has to be started, polled and stopped.

Tokenization is llama.cpp's own (from the GGUF), as a llama.cpp deployment would do it. The HF tokenizer of the
checkpoint is loaded only to render the chat template, so that prompts are byte-identical to the transformers
runtime's.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from lm_eval.api.model import TemplateLM  # this module is imported only when runtime=llamacpp is chosen

from slmexp.errors import SlmexpError


class LlamaCppRuntime:
    """One `llama_cpp.Llama` over `gguf_path`; the HF checkpoint at `model_path` supplies the chat template."""

    def __init__(
        self,
        model_path: str,
        *,
        gguf_path: str,
        name: str = "llamacpp",
        n_threads: int | None = None,
        n_ctx: int = 2048,
        n_batch: int = 512,
        batch_size: int = 1,
        use_extra_bufts: bool = False,
        adapter_path: str | None = None,
        trust_remote_code: bool = False,
        seed: int = 0,
        **_ignored: Any,
    ) -> None:
        from transformers import AutoTokenizer

        from slmexp.quantize import available_cores, check_gguf, import_llama_cpp

        llama_cpp = import_llama_cpp()
        if adapter_path:
            raise SlmexpError("runtime=llamacpp serves one GGUF file and cannot apply a separate adapter: export "
                              f"the merged model to GGUF instead (adapter given: {adapter_path})")
        self.name = name
        self.gguf_path = str(gguf_path)
        self.batch_size = batch_size  # llama.cpp scores one sequence at a time; kept for the record
        self.n_threads = int(n_threads or available_cores())  # llama-cpp-python's default is half the cores
        t0 = time.perf_counter()
        check_gguf(self.gguf_path)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        try:
            with _model_params(use_extra_bufts=use_extra_bufts):
                self.llm = llama_cpp.Llama(
                    model_path=self.gguf_path, n_ctx=n_ctx, n_batch=n_batch, n_threads=self.n_threads,
                    n_threads_batch=self.n_threads, seed=seed, logits_all=True, swa_full=True, verbose=False,
                )
        except ValueError as e:  # llama-cpp-python's message for any load failure
            raise SlmexpError(f"llama.cpp could not load {self.gguf_path}: {e}") from None
        self.load_s = time.perf_counter() - t0
        self._lm: LlamaCppLM | None = None

    def uses_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def lm_eval_model(self) -> LlamaCppLM:
        if self._lm is None:
            self._lm = LlamaCppLM(self.llm, self.tokenizer)
        return self._lm

    def stream(self, prompt: str, max_new_tokens: int) -> Iterator[tuple[str, float]]:
        """Greedy tokens as text chunks; the prompt goes through the chat template as in the transformers runtime."""
        lm = self.lm_eval_model()
        lm.clear_cache()  # a timed request pays for its whole prompt, as in the transformers runtime
        if self.uses_chat_template():
            prompt = lm.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
        # BOS as lm-eval adds it: if the vocabulary wants one and the rendered prompt does not start with it
        # (Gemma without a chat template degenerates without BOS).
        tokens = lm.tok_encode(prompt)
        for text in lm.greedy_text(tokens, max_new_tokens):
            yield text, time.perf_counter()
        self.last_usage = {"input_tokens": len(tokens), "output_tokens": lm.last_generated, "source": "model tokenizer"}

    def close(self) -> None:
        # Close explicitly: Llama.__del__ at interpreter exit fails once ctypes globals are already gone.
        if getattr(self, "llm", None) is not None:
            self.llm.close()
        self.llm = None
        self._lm = None

    def __enter__(self) -> LlamaCppRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _model_params(**fields: Any) -> Iterator[None]:
    """Set `llama_model_params` fields that `llama_cpp.Llama` does not expose, for the loads inside the block.

    Used for `use_extra_bufts`: llama.cpp moves quantized weights into "extra" CPU buffers (AMX tiles, repacked
    Q4_0/Q4_K layouts). Its AMX matmul segfaults on AMX-capable Xeons such as the reference machine's (upstream
    llama.cpp issue #20824, open), so slmexp turns them off unless `runtime.use_extra_bufts=true`. `Llama`
    reads its defaults from `llama_cpp.llama_cpp.llama_model_default_params` at construction time.
    """
    import llama_cpp.llama_cpp as capi

    default = capi.llama_model_default_params

    def patched() -> Any:
        params = default()
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    capi.llama_model_default_params = patched
    try:
        yield
    finally:
        capi.llama_model_default_params = default


class LlamaCppLM(TemplateLM):
    """lm-eval `LM` over an in-process `llama_cpp.Llama` built with `logits_all=True`.

    Requests run one at a time in token order, so consecutive requests share a prefix (the chat template, the
    few-shot block, the same context with another choice) and only the differing suffix is evaluated: the KV
    cache and the stored logits of the shared prefix are reused. Scoring reads every position's logits;
    generation asks llama.cpp for the last position's only.
    """

    def __init__(self, llm: Any, hf_tokenizer: Any, max_gen_toks: int = 256) -> None:
        import llama_cpp

        super().__init__()
        self.llm = llm
        # lm-eval's TemplateLM.chat_template reads `self.tokenizer.chat_template`; tokenization is llama.cpp's.
        self.tokenizer = hf_tokenizer
        self.max_gen_toks = max_gen_toks
        self.max_length = int(llm.n_ctx())
        self._llama_cpp = llama_cpp
        self._rows = 0  # leading positions whose logits rows in llm.scores belong to llm.input_ids
        self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
        bos = llm.token_bos()
        self._bos_text = self._piece(bos, special=True).decode("utf-8", "replace") if bos >= 0 else None

    # --- what lm-eval needs besides the three request types ---

    @property
    def eot_token_id(self) -> int:
        return int(self.llm.token_eos())

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", "llamacpp")).replace("/", "__")

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """Render with the HF chat template exactly as lm-eval's HFLM does (same arguments, same fallback)."""
        import jinja2

        kwargs = dict(tokenize=False, add_generation_prompt=add_generation_prompt,
                      continue_final_message=not add_generation_prompt)
        try:
            return self.tokenizer.apply_chat_template(chat_history, **kwargs)
        except jinja2.exceptions.TemplateError:
            chat_history = [m for m in chat_history if m["role"] != "system"]
            return self.tokenizer.apply_chat_template(chat_history, **kwargs)

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

        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._llama_cpp.llama_token_to_piece(self._vocab, token, buf, size, 0, special)
            if n >= 0:
                return buf.raw[:n]
            size = -n

    def tok_decode(self, tokens: Sequence[int]) -> str:
        return b"".join(self._piece(t) for t in tokens).decode("utf-8", errors="replace")

    # --- scoring ---

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

    def _loglikelihood_tokens(self, requests: list[tuple[tuple[str, str], list[int], list[int]]],
                              disable_tqdm: bool = False, **kwargs: Any) -> list[tuple[float, bool]]:
        from tqdm import tqdm

        results: list[tuple[float, bool] | None] = [None] * len(requests)
        order = sorted(range(len(requests)), key=lambda i: requests[i][1] + requests[i][2])
        for i in tqdm(order, desc="llama.cpp loglikelihood", disable=disable_tqdm):
            (context, continuation), ctx_enc, cont_enc = requests[i]
            results[i] = self._score(ctx_enc, cont_enc)
            self.cache_hook.add_partial("loglikelihood", (context, continuation), results[i])
        return results  # type: ignore[return-value]

    def _score(self, ctx_enc: list[int], cont_enc: list[int]) -> tuple[float, bool]:
        """Sum of log p(continuation | context), and whether every continuation token is the argmax."""
        import numpy as np

        whole = (ctx_enc + cont_enc)[-(self.max_length + 1):]  # left-truncate like HFLM
        logits = np.asarray(self._logits_for(whole[:-1])[-len(cont_enc):], dtype=np.float64)
        logprobs = logits - logits.max(axis=-1, keepdims=True)
        logprobs -= np.log(np.exp(logprobs).sum(axis=-1, keepdims=True))
        target = np.asarray(cont_enc)
        total = float(logprobs[np.arange(len(target)), target].sum())
        return total, bool((logits.argmax(axis=-1) == target).all())

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Perplexity-style scoring over windows of n_ctx tokens (lm-eval's own windowing)."""
        from lm_eval import utils
        from tqdm import tqdm

        out = []
        for (string,) in tqdm([r.args for r in requests], desc="llama.cpp rolling", disable=disable_tqdm):
            windows = map(utils.make_disjoint_window, utils.get_rolling_token_windows(
                token_list=self.tok_encode(string, add_special_tokens=False), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1))
            total = sum(self._score(list(ctx), list(cont))[0] for ctx, cont in windows)
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), total)
            out.append(total)
        return out

    # --- generation ---

    def greedy_tokens(self, tokens: list[int], max_new_tokens: int) -> Iterator[int]:
        """Argmax decoding from the logits (no sampler chain), stopping at an end-of-generation token."""
        import numpy as np

        tokens = tokens[-max(self.max_length - max_new_tokens, 1):] or [self.prefix_token_id]
        max_new_tokens = min(max_new_tokens, self.max_length - len(tokens))
        logits = self._last_logits(tokens)
        for step in range(max_new_tokens):
            tok = int(np.argmax(logits))
            if self._llama_cpp.llama_vocab_is_eog(self._vocab, tok):
                return
            yield tok
            if step + 1 < max_new_tokens:
                tokens = [*tokens, tok]
                logits = self._last_logits(tokens)

    def greedy_text(self, tokens: list[int], max_new_tokens: int) -> Iterator[str]:
        """Text chunks of the greedy continuation; a multi-byte character split over tokens comes out whole.
        `last_generated` counts the tokens (a chunk can hold several)."""
        import codecs

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.last_generated = 0
        for tok in self.greedy_tokens(tokens, max_new_tokens):
            self.last_generated += 1
            if text := decoder.decode(self._piece(tok)):
                yield text
        if tail := decoder.decode(b"", final=True):
            yield tail

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Greedy generation that stops at any `until` string, EOS, or `max_gen_toks`, like HFLM."""
        from tqdm import tqdm

        out = []
        for context, gen_kwargs in tqdm([r.args for r in requests], desc="llama.cpp generate", disable=disable_tqdm):
            until = gen_kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(gen_kwargs.get("max_gen_toks") or self.max_gen_toks)
            text = ""
            for chunk in self.greedy_text(self.tok_encode(context), max_new):
                text += chunk
                if any(stop in text for stop in until):
                    break
            for stop in until:
                text = text.split(stop)[0]
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
            out.append(text)
        return out
