"""The ONNX Runtime GenAI runtime: a model-builder export (quantization=onnx-*) served in this process.

Accuracy goes through `OrtGenAILM` (_ortgenai_lm.py: the shared `_prefix_lm.PrefixLM`) over one
`onnxruntime_genai.Generator`:
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

import importlib.util
import json
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from omegaconf import DictConfig

from slmexp.errors import SlmexpError

INSTALL_HINT = "pip install -c constraints.txt onnxruntime-genai onnx-ir   (the `ortgenai` extra)"


def check_available() -> None:
    """Config-time check (find_spec only): raise a ConfigError on `runtime.name` when onnxruntime-genai is missing.

    onnx-ir is asked for too: the runtime serves the ONNX export, which needs it (the `ortgenai` extra has both).
    """
    missing = [m for m in ("onnxruntime_genai", "onnx_ir") if importlib.util.find_spec(m) is None]
    if missing:
        from slmexp.origin import fail

        raise fail("runtime.name", f"runtime=ortgenai needs {', '.join(missing)}, not installed in this interpreter "
                                   f"({sys.executable}); {INSTALL_HINT}")


# Why decoding=constrained is refused here (config time, naming decoding.name): see docs/structured-outputs.md.
ORT_GUIDANCE_NOTE = (
    "ONNX Runtime GenAI's guidance (GeneratorParams.set_guidance, llguidance inside) is set per generator, while this "
    "runtime keeps one generator and rewinds it to reuse the shared prompt prefix across requests; serve the "
    "model with transformers or llama.cpp for constrained runs")


class OrtGenAIRuntime:
    """One `onnxruntime_genai.Model` over the exported folder `artifact_path` (CPU execution provider)."""

    serves: ClassVar[tuple[str, ...]] = ("none", "onnx")  # none: an fp32 export
    needs: ClassVar[str] = "onnx"
    remote: ClassVar[bool] = False
    concurrent_requests: ClassVar[bool] = False  # one generator: requests run one at a time
    speed_note: ClassVar[str] = "in-process: peak_rss_mb includes the model"
    scores_choices: ClassVar[bool] = True  # task.formulation=choice: the shared PrefixLM's loglikelihood
    chat_tools: ClassVar[bool] = False  # no chat(): slmexp.runtimes.facts refuses agent loops in one line
    constrained_decoding: ClassVar[str | None] = None  # refused at config time, naming decoding.name
    constrained_decoding_note: ClassVar[str] = ORT_GUIDANCE_NOTE
    memory_footprint: int | None = None
    last_usage: dict[str, Any] | None = None

    @classmethod
    def check(cls, cfg: DictConfig) -> None:
        """onnxruntime-genai (and onnx-ir) installed: find_spec only."""
        check_available()

    def __init__(
        self,
        model_path: str | None = None,
        *,
        artifact_path: str,
        name: str = "ortgenai",
        threads: int | None = None,
        max_length: int = 2048,
        batch_size: int = 1,
        max_gen_toks: int = 256,
        adapter_path: str | None = None,
        trust_remote_code: bool = False,
        seed: int = 0,
    ) -> None:
        from transformers import AutoTokenizer

        from slmexp.system import available_cores

        check_available()
        import onnxruntime_genai as og

        if adapter_path:
            raise SlmexpError("runtime=ortgenai serves one exported model and cannot apply a separate adapter: "
                              f"export the merged model instead (train.merge=true; adapter given: {adapter_path})")
        self.name = name
        self.onnx_path = str(artifact_path)
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
        from slmexp.runtimes._ortgenai_lm import OrtGenAILM  # lm-eval: imported with the model, not at config time

        self._lm = OrtGenAILM(self.model, self.tokenizer, max_length=self.max_length, max_gen_toks=max_gen_toks)

    def uses_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def lm_eval_model(self) -> Any:
        return self._lm

    def stream(self, prompt: str, max_new_tokens: int, stop: Sequence[str] | None = None
               ) -> Iterator[tuple[str, float]]:
        """Greedy text chunks, cut before the first `stop` string, through the accuracy pass's own code
        (`PrefixLM.generate`) on the prompt rendered and tokenized as the accuracy pass does it (lm-eval's HFLM
        rules). Cold: the cache is cleared first. `last_usage` is set however the stream ends."""
        usage: dict[str, Any] = {}
        self.last_usage = usage  # filled when the stream ends, however it ends (PrefixLM.timed_stream)
        yield from self._lm.timed_stream(prompt, max_new_tokens, stop, self.uses_chat_template(), usage)

    def score_labels(self, context: str, continuations: Sequence[str]) -> list[float]:
        """log p(continuation | context) of each: lm-eval loglikelihood requests on the shared PrefixLM (the
        context stays in the generator's KV cache across the continuations)."""
        from slmexp.runtimes._label_scores import lm_loglikelihoods

        return lm_loglikelihoods(self._lm, context, continuations)

    def close(self) -> None:
        if getattr(self, "_lm", None) is not None:
            self._lm.close()
        self._lm = None
        self.model = None

    def __enter__(self) -> OrtGenAIRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
