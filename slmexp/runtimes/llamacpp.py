"""The llama.cpp runtime: a GGUF file served in this process through llama-cpp-python.

Accuracy goes through `LlamaCppLM` (_llamacpp_lm.py: the shared `_prefix_lm.PrefixLM` over
`llama_cpp.Llama(logits_all=True)`), not
lm-eval's own `gguf` / `local-completions` backends: those talk to llama-cpp-python's HTTP server, whose
completion logprobs come back as zeros (known upstream issues), so every log-likelihood would be silently wrong.
In process, the per-position logits are read directly: log-likelihoods match the HF model's (see
tests/test_gguf.py) and no server has to be started, polled and stopped.

Tokenization is llama.cpp's own (from the GGUF), as a llama.cpp deployment would do it. The HF tokenizer of the
checkpoint is loaded only to render the chat template, so that prompts are byte-identical to the transformers
runtime's. This module stays cheap to import (config validation looks the class up): llama_cpp, transformers and
lm-eval are imported when the runtime is built or evaluated.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from omegaconf import DictConfig

from slmexp.errors import SlmexpError
from slmexp.runtimes._chat import ChatTurn


class LlamaCppRuntime:
    """One `llama_cpp.Llama` over the GGUF file `artifact_path`; the HF checkpoint at `model_path` supplies the
    chat template."""

    serves: ClassVar[tuple[str, ...]] = ("none", "gguf")  # none: the shipped GGUF, or an F16 export
    needs: ClassVar[str] = "gguf"
    remote: ClassVar[bool] = False
    concurrent_requests: ClassVar[bool] = False  # one llama context: requests run one at a time
    speed_note: ClassVar[str] = "in-process: peak_rss_mb includes the model"
    constrained_decoding: ClassVar[str] = "llama.cpp GBNF"  # decoding=constrained: _llamacpp_grammar
    scores_choices: ClassVar[bool] = True  # task.formulation=choice: PrefixLM's loglikelihood (score_labels)
    chat_tools: ClassVar[bool] = True  # chat(): the checkpoint's chat template with tools, the GBNF grammar path
    memory_footprint: int | None = None
    last_usage: dict[str, Any] | None = None

    @classmethod
    def check(cls, cfg: DictConfig) -> None:
        """Nothing to check at config time: a missing llama-cpp-python is reported, with its install hint, when
        the runtime is built (the quantizer needs it too and says so first)."""

    def __init__(
        self,
        model_path: str,
        *,
        artifact_path: str,
        name: str = "llamacpp",
        n_threads: int | None = None,
        n_ctx: int = 2048,
        n_batch: int = 512,
        batch_size: int = 1,
        use_extra_bufts: bool = False,
        adapter_path: str | None = None,
        trust_remote_code: bool = False,
        seed: int = 0,
    ) -> None:
        from transformers import AutoTokenizer

        from slmexp.gguf_file import check_gguf, import_llama_cpp
        from slmexp.system import available_cores

        llama_cpp = import_llama_cpp()
        if adapter_path:
            raise SlmexpError("runtime=llamacpp serves one GGUF file and cannot apply a separate adapter: export "
                              f"the merged model to GGUF instead (adapter given: {adapter_path})")
        self.name = name
        self.gguf_path = str(artifact_path)
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
        self._lm: Any = None
        self._constraints: Any = None

    def uses_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def lm_eval_model(self) -> Any:
        """`LlamaCppLM` (slmexp/runtimes/_llamacpp_lm.py), created on first use."""
        if self._lm is None:
            from slmexp.runtimes._llamacpp_lm import LlamaCppLM  # lm-eval: imported when first evaluated

            self._lm = LlamaCppLM(self.llm, self.tokenizer)
            self._lm.constraints = self._constraints
        return self._lm

    def constrain(self, spec: Any) -> None:
        """Constrain every later generation (accuracy pass and `stream`) to `spec` (slmexp.decoding): llama.cpp's
        grammar sampler in the greedy loop (slmexp/runtimes/_llamacpp_grammar.py)."""
        self._constraints = spec
        if self._lm is not None:
            self._lm.constraints = spec

    def stream(self, prompt: str, max_new_tokens: int, stop: Sequence[str] | None = None
               ) -> Iterator[tuple[str, float]]:
        """Greedy text chunks, cut before the first `stop` string, through the accuracy pass's own code
        (`PrefixLM.generate`) on the prompt rendered as the accuracy pass renders it. Cold: the KV cache is
        cleared first, so a timed request pays for its whole prompt. `last_usage` is set however the stream
        ends (run out, stopped, or abandoned by the consumer)."""
        usage: dict[str, Any] = {}
        self.last_usage = usage  # filled when the stream ends, however it ends (PrefixLM.timed_stream)
        yield from self.lm_eval_model().timed_stream(prompt, max_new_tokens, stop, self.uses_chat_template(), usage)

    def score_labels(self, context: str, continuations: Sequence[str]) -> list[float]:
        """log p(continuation | context) of each: lm-eval loglikelihood requests on `LlamaCppLM`, which evaluates the
        shared context once and keeps it in the KV cache across the continuations."""
        from slmexp.runtimes._label_scores import lm_loglikelihoods

        return lm_loglikelihoods(self.lm_eval_model(), context, continuations)

    def chat(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
             constraint: Any = None, max_new_tokens: int = 256, stop: Sequence[str] | None = None) -> ChatTurn:
        """One greedy assistant turn (the Runtime Protocol's `chat`), rendered by the checkpoint's chat template
        (for a model that came as a GGUF: the template in the GGUF's metadata, which its tokenizer was saved with),
        tokenized by llama.cpp, generated by the accuracy pass's loop; `constraint` through llama.cpp's grammar
        sampler. The KV cache of the conversation's earlier turns is reused (slmexp/runtimes/_chat.py)."""
        from slmexp.runtimes._chat import prefix_lm_chat

        return prefix_lm_chat(self.lm_eval_model(), self.tokenizer, messages, tools=tools, constraint=constraint,
                              max_new_tokens=max_new_tokens, stop=stop)

    def close(self) -> None:
        # Close explicitly: Llama.__del__ at interpreter exit fails once ctypes globals are already gone.
        if getattr(self, "_lm", None) is not None:
            self._lm.close()
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
