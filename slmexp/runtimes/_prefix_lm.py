"""The lm-eval `LM` that the llama.cpp and ONNX Runtime GenAI runtimes share: scoring and generation over an
in-process engine that keeps one sequence's KV cache.

Why one class: both engines run one request at a time and reuse the KV cache of the prefix a request shares with
the previous one (chat template, few-shot block, the same context with another choice), so everything above the
engine is the same: lm-eval's three request types, HFLM's chat-template rendering, left truncation, greedy
generation with stop strings. Modelled on lm-eval's own `_ONNXLMBase` (engines give `_load`, `_forward_logits`,
`_generate`); here an engine subclass gives three primitives plus lm-eval's tokenization:

- `clear_cache()`: forget the evaluated positions (a timed request then pays for its whole prompt);
- `_logits_for(tokens)`: logits for every position of `tokens` (row i predicts token i+1), reusing the cached
  common prefix; float rows, one per token;
- `_greedy(tokens, max_new_tokens, constraint)`: greedy token ids after `tokens`, stopping at end of generation or
  the budget (the budget already fits the context window); under a `constraint` (slmexp.decoding, or None) only
  tokens its grammar allows, ending when the answer is complete;
- `tok_encode`, `tok_decode`, `eot_token_id` (and `prefix_token_id` where it is not the EOT token).

Requests are scored in token order (lm-eval's sort key), so consecutive requests share the longest prefixes.
This module imports lm-eval at top level: runtimes import it only when they build their LM.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from lm_eval.api.model import TemplateLM


class PrefixLM(TemplateLM):
    """lm-eval `LM` over an engine with a reusable prefix KV cache (see the module docstring for the primitives).

    `tokenizer` is the checkpoint's HF tokenizer: lm-eval's `TemplateLM.chat_template` reads its `chat_template`,
    and prompts are rendered with it exactly as the transformers runtime renders them.
    """

    label = "prefix"  # the engine's name in progress bars and lm-eval's tokenizer_name fallback

    def __init__(self, hf_tokenizer: Any, max_length: int, max_gen_toks: int = 256) -> None:
        super().__init__()
        self.tokenizer = hf_tokenizer
        self.max_length = int(max_length)
        self.max_gen_toks = int(max_gen_toks)
        self.last_generated = 0  # tokens of the last greedy_text() call (a chunk can hold several)
        self.request_latencies_s: list[float] = []  # per generate_until request (see generate_until)
        self.constraints: Any = None  # a slmexp.decoding.ConstraintSpec (decoding=constrained), set by the runtime

    # --- the engine's primitives ---

    def clear_cache(self) -> None:
        """Forget the evaluated positions, so the next request is evaluated from its first token."""
        raise NotImplementedError

    def _logits_for(self, tokens: Sequence[int]) -> Any:
        """Logits for every position of `tokens` (row i predicts token i+1), reusing the cached common prefix."""
        raise NotImplementedError

    def _greedy(self, tokens: list[int], max_new_tokens: int, constraint: Any = None) -> Iterator[int]:
        """Greedy ids after `tokens` (which fit the window with the budget), until end of generation or budget;
        only ids `constraint`'s grammar allows, when given."""
        raise NotImplementedError

    # --- what lm-eval needs besides the three request types ---

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", self.label)).replace("/", "__")

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

    # --- scoring ---

    def _loglikelihood_tokens(self, requests: list[tuple[tuple[str, str], list[int], list[int]]],
                              disable_tqdm: bool = False, **kwargs: Any) -> list[tuple[float, bool]]:
        from tqdm import tqdm

        results: list[tuple[float, bool] | None] = [None] * len(requests)
        order = sorted(range(len(requests)), key=lambda i: requests[i][1] + requests[i][2])
        for i in tqdm(order, desc=f"{self.label} loglikelihood", disable=disable_tqdm):
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
        """Perplexity-style scoring over windows of max_length tokens (lm-eval's own windowing)."""
        from lm_eval import utils
        from tqdm import tqdm

        out = []
        for (string,) in tqdm([r.args for r in requests], desc=f"{self.label} rolling", disable=disable_tqdm):
            windows = map(utils.make_disjoint_window, utils.get_rolling_token_windows(
                token_list=self.tok_encode(string, add_special_tokens=False), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1))
            total = sum(self._score(list(ctx), list(cont))[0] for ctx, cont in windows)
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), total)
            out.append(total)
        return out

    # --- generation ---

    def greedy_tokens(self, tokens: list[int], max_new_tokens: int, constraint: Any = None) -> Iterator[int]:
        """Greedy ids after `tokens`, left-truncated so that prompt + budget fit the window (as HFLM does)."""
        tokens = tokens[-max(self.max_length - max_new_tokens, 1):] or [self.prefix_token_id]
        max_new_tokens = min(max_new_tokens, self.max_length - len(tokens))
        return self._greedy(tokens, max_new_tokens, constraint)

    def greedy_text(self, tokens: list[int], max_new_tokens: int, constraint: Any = None) -> Iterator[str]:
        """Text chunks of the greedy continuation, each the growth of the decoded text so far: a character whose
        bytes span tokens comes out whole, and the chunks join to exactly `tok_decode` of every generated token
        (U+FFFD included for bytes that never form a character). `last_generated` counts the tokens."""
        ids: list[int] = []
        emitted = ""
        self.last_generated = 0
        for tok in self.greedy_tokens(tokens, max_new_tokens, constraint):
            ids.append(tok)
            self.last_generated += 1
            text = self.tok_decode(ids)
            if text.endswith("\ufffd"):
                continue  # maybe the first bytes of a character: wait for the rest
            if len(text) > len(emitted) and text.startswith(emitted):
                yield text[len(emitted):]
                emitted = text
        final = self.tok_decode(ids)
        if len(final) > len(emitted) and final.startswith(emitted):
            yield final[len(emitted):]

    def generate(self, tokens: list[int], max_new_tokens: int, until: Sequence[str] | None,
                 constraint: Any = None) -> Iterator[str]:
        """Greedy text chunks after `tokens`, cut before the first `until` string (`_stop.StopCut`): decoding ends
        there. The one path of `generate_until` (the accuracy pass) and of the runtimes' timed `stream`, so a
        timed request ends at the same text and token as the scored one. A chunk may be "" (text held back as a
        possible stop-string start, or the token that completed a stop string): one chunk per decoding step that
        produced text, as before."""
        from slmexp.runtimes._stop import StopCut

        cut = StopCut(until)
        chunks = self.greedy_text(tokens, max_new_tokens, constraint)
        try:
            for chunk in chunks:
                yield cut.feed(chunk)
                if cut.hit:
                    return
            if rest := cut.flush():
                yield rest
        finally:
            chunks.close()  # an abandoned or stopped request decodes nothing more

    def timed_stream(self, prompt: str, max_new_tokens: int, stop: Sequence[str] | None, chat: bool,
                     usage: dict[str, Any]) -> Iterator[tuple[str, float]]:
        """The runtimes' timed `stream`: (text chunk, perf_counter time) through `generate` on the prompt rendered
        as the accuracy pass renders it (through the chat template when `chat`). Cold: the cache is cleared first,
        so a timed request pays for its whole prompt. `usage` is filled however the stream ends (run out, stopped,
        or abandoned by the consumer): the caller's `last_usage` is this request's."""
        self.clear_cache()
        constraint = None if self.constraints is None else self.constraints.for_text(prompt)
        if chat:
            prompt = self.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
        yield from self.timed_tokens(self.tok_encode(prompt), max_new_tokens, stop, constraint, usage)

    def timed_tokens(self, tokens: list[int], max_new_tokens: int, stop: Sequence[str] | None, constraint: Any,
                     usage: dict[str, Any]) -> Iterator[tuple[str, float]]:
        """(text chunk, perf_counter time) of `generate` after `tokens` (the KV cache as it is: `timed_stream`
        clears it first, a chat turn reuses its conversation's prefix); `usage` filled however the stream ends."""
        import time

        self.last_generated = 0
        chunks = self.generate(tokens, max_new_tokens, stop, constraint)
        try:
            for text in chunks:
                yield text, time.perf_counter()
        finally:
            chunks.close()
            usage.update(input_tokens=len(tokens), output_tokens=self.last_generated, source="model tokenizer")

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Greedy generation that stops at any `until` string, EOS, or `max_gen_toks`, like HFLM.

        Each request's wall time (tokenization to last token; the prefix cache on, as the accuracy pass runs) is
        appended to `request_latencies_s`, which slmexp.evaluate clears before and reads after lm-eval runs.
        """
        import time

        from tqdm import tqdm

        out = []
        for req in tqdm(requests, desc=f"{self.label} generate", disable=disable_tqdm):
            context, gen_kwargs = req.args
            t0 = time.perf_counter()
            until = gen_kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(gen_kwargs.get("max_gen_toks") or self.max_gen_toks)
            constraint = None if self.constraints is None else self.constraints.for_doc(getattr(req, "doc", None))
            text = "".join(self.generate(self.tok_encode(context), max_new, until, constraint))
            self.request_latencies_s.append(time.perf_counter() - t0)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
            out.append(text)
        return out
