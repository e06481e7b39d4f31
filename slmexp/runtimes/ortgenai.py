"""The ONNX Runtime GenAI runtime: a model-builder export (quantization=onnx-*) served in this process.

lm-eval has no ONNX Runtime backend, so `OrtGenAILM` is written here over one `onnxruntime_genai.Generator`:
- log-likelihoods come from the generator's own logits: `append_tokens` runs the prompt and the graph's `logits`
  output (`get_output("logits")`) holds one row per appended position, so a context + continuation is scored in
  one prefill, not token by token;
- consecutive requests share prefixes (chat template, few-shot block, the same context with another choice):
  `rewind_to(k)` keeps the first k positions of the KV cache and only the differing suffix is run, as in the
  llama.cpp runtime;
- generation is the generator's own greedy search (`generate_next_token`, do_sample false), as a deployment
  would call it.
Token ids come from the HF tokenizer of the exported folder (the same tokenizer.json ONNX Runtime GenAI loads),
encoded and decoded exactly as lm-eval's HFLM does, so that scores and generated text are comparable request for
request with runtime=transformers; tests/test_ortgenai.py checks that ONNX Runtime's own tokenizer gives the same
ids. (Its `TokenizerStream` is not used for text: on a lone byte of a multi-byte character it also drops the next
token's first character.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

from lm_eval.api.model import TemplateLM  # this module is imported only when runtime=ortgenai is chosen

from slmexp.errors import SlmexpError


class OrtGenAIRuntime:
    """One `onnxruntime_genai.Model` over the exported folder `onnx_path` (CPU execution provider)."""

    def __init__(
        self,
        model_path: str | None = None,
        *,
        onnx_path: str,
        name: str = "ortgenai",
        threads: int | None = None,
        max_length: int = 2048,
        batch_size: int = 1,
        max_gen_toks: int = 256,
        adapter_path: str | None = None,
        trust_remote_code: bool = False,
        seed: int = 0,
        **_ignored: Any,
    ) -> None:
        from transformers import AutoTokenizer

        from slmexp.quantize import available_cores
        from slmexp.quantize_onnx import check_available

        check_available()
        import onnxruntime_genai as og

        if adapter_path:
            raise SlmexpError("runtime=ortgenai serves one exported model and cannot apply a separate adapter: "
                              f"export the merged model instead (train.merge=true; adapter given: {adapter_path})")
        self.name = name
        self.onnx_path = str(onnx_path)
        self.batch_size = batch_size  # one sequence at a time; kept for the record
        self.threads = int(threads or available_cores())
        t0 = time.perf_counter()
        config = og.Config(self.onnx_path)
        # ONNX Runtime's own default is every core; set it so runs are comparable with runtime.n_threads elsewhere.
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {
            "intra_op_num_threads": self.threads, "inter_op_num_threads": 1}}}}))
        try:
            self.model = og.Model(config)
        except Exception as e:  # onnxruntime-genai raises RuntimeError with its own message
            raise SlmexpError(f"onnxruntime-genai could not load {self.onnx_path}: {e}") from None
        # The exported folder's tokenizer files are the checkpoint's (the builder copies them).
        self.tokenizer = AutoTokenizer.from_pretrained(self.onnx_path, trust_remote_code=trust_remote_code)
        self.load_s = time.perf_counter() - t0
        with open(f"{self.onnx_path}/genai_config.json") as f:  # the model's own window caps runtime.max_length
            context = int(json.load(f)["model"].get("context_length") or max_length)
        self.max_length = min(int(max_length), context)
        self._lm = OrtGenAILM(self.model, self.tokenizer, max_length=self.max_length, max_gen_toks=max_gen_toks)

    def uses_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def lm_eval_model(self) -> OrtGenAILM:
        return self._lm

    def stream(self, prompt: str, max_new_tokens: int) -> Iterator[tuple[str, float]]:
        """Greedy tokens as text chunks; the prompt is rendered and tokenized as in the transformers runtime."""
        lm = self._lm
        lm.clear_cache()  # a timed request pays for its whole prompt, as in the other runtimes
        chat = self.uses_chat_template()
        if chat:
            prompt = lm.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
        tokens = lm.tok_encode(prompt, add_special_tokens=not chat)
        for text in lm.greedy_text(tokens, max_new_tokens):
            yield text, time.perf_counter()
        self.last_usage = {"input_tokens": len(tokens), "output_tokens": lm.last_generated, "source": "model tokenizer"}

    def close(self) -> None:
        if getattr(self, "_lm", None) is not None:
            self._lm.close()
        self._lm = None
        self.model = None

    def __enter__(self) -> OrtGenAIRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OrtGenAILM(TemplateLM):
    """lm-eval `LM` over one `onnxruntime_genai.Generator`, reused across requests (see the module docstring).

    State: `_tokens` are the positions whose keys/values are in the generator's cache; `_rows` holds the logits
    rows of a leading part of them (generation does not keep the prompt's rows: copying a vocabulary-wide row per
    prompt token is time a timed request should not pay).
    """

    def __init__(self, model: Any, hf_tokenizer: Any, max_length: int = 2048, max_gen_toks: int = 256) -> None:
        import numpy as np
        import onnxruntime_genai as og

        super().__init__()
        self._og = og
        self.model = model
        self.tokenizer = hf_tokenizer  # lm-eval's TemplateLM.chat_template reads `self.tokenizer.chat_template`
        self._og_tokenizer = og.Tokenizer(model)
        self.max_length = int(max_length)
        self.max_gen_toks = int(max_gen_toks)
        self._generator: Any = None
        self._tokens: list[int] = []
        self._rows = np.zeros((0, 0), dtype=np.float32)
        eos = set(self._og_tokenizer.eos_token_ids) if hasattr(self._og_tokenizer, "eos_token_ids") else set()
        self._eos = {int(t) for t in eos} | {int(hf_tokenizer.eos_token_id)}
        self.last_generated = 0

    # --- what lm-eval needs besides the three request types ---

    @property
    def eot_token_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def prefix_token_id(self) -> int:
        """BOS if the tokenizer has one, else EOS: the token HFLM scores an empty context after."""
        bos = self.tokenizer.bos_token_id
        return int(bos if bos is not None else self.tokenizer.eos_token_id)

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", "ortgenai")).replace("/", "__")

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
        """HFLM's encoding: the tokenizer's own special tokens unless told, and no second BOS after a rendered one."""
        if add_special_tokens is None:
            bos = self.tokenizer.decode(self.prefix_token_id)
            kw = {"add_special_tokens": False} if bos and string.startswith(bos) else {}
        else:
            kw = {"add_special_tokens": add_special_tokens}
        return list(self.tokenizer.encode(string, **kw))

    def tok_decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=True)

    # --- the generator and its cache ---

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

    def _loglikelihood_tokens(self, requests: list[tuple[tuple[str, str], list[int], list[int]]],
                              disable_tqdm: bool = False, **kwargs: Any) -> list[tuple[float, bool]]:
        from tqdm import tqdm

        results: list[tuple[float, bool] | None] = [None] * len(requests)
        order = sorted(range(len(requests)), key=lambda i: requests[i][1] + requests[i][2])
        for i in tqdm(order, desc="ortgenai loglikelihood", disable=disable_tqdm):
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
        for (string,) in tqdm([r.args for r in requests], desc="ortgenai rolling", disable=disable_tqdm):
            windows = map(utils.make_disjoint_window, utils.get_rolling_token_windows(
                token_list=self.tok_encode(string, add_special_tokens=False), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1))
            total = sum(self._score(list(ctx), list(cont))[0] for ctx, cont in windows)
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), total)
            out.append(total)
        return out

    # --- generation ---

    def greedy_tokens(self, tokens: list[int], max_new_tokens: int) -> Iterator[int]:
        """The generator's greedy search after `tokens`, stopping at an end-of-sequence token or the budget."""
        tokens = tokens[-max(self.max_length - max_new_tokens, 1):] or [self.prefix_token_id]
        max_new_tokens = min(max_new_tokens, self.max_length - len(tokens))
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

    def greedy_text(self, tokens: list[int], max_new_tokens: int) -> Iterator[str]:
        """Text chunks of the greedy continuation, each the growth of the decoded text so far: a character whose
        bytes span tokens comes out whole, and the chunks join to exactly `tok_decode` of every generated token
        (as HF decodes them, U+FFFD included for bytes that never form a character). `last_generated` counts
        the tokens."""
        ids: list[int] = []
        emitted = ""
        self.last_generated = 0
        for tok in self.greedy_tokens(tokens, max_new_tokens):
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

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Greedy generation that stops at any `until` string, EOS, or `max_gen_toks`, like HFLM."""
        from tqdm import tqdm

        out = []
        for context, gen_kwargs in tqdm([r.args for r in requests], desc="ortgenai generate", disable=disable_tqdm):
            until = gen_kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(gen_kwargs.get("max_gen_toks") or self.max_gen_toks)
            generated: list[int] = []
            text = ""
            for tok in self.greedy_tokens(self.tok_encode(context), max_new):
                generated.append(tok)
                text = self.tok_decode(generated)
                if any(stop in text for stop in until):
                    break
            for stop in until:
                text = text.split(stop)[0]
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
            out.append(text)
        return out
