"""The transformers runtime: a HF checkpoint in this process; lm-eval's own `HFLM` wraps the model object.

bitsandbytes quantization (quantization=bnb-*) happens here, while transformers loads the weights: the quantizer
hands over `quantization_config` (the plain `quantization.config` dict) and `bnb_config` builds and checks it, as
runtimes never import quantizers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from omegaconf import DictConfig

from slmexp.errors import ConfigError
from slmexp.runtimes._chat import ChatTurn


def _pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        from slmexp.origin import fail

        raise fail("runtime.device", f"{device!r} asked for, but torch sees no CUDA device")
    return device


def bnb_config(config: dict[str, Any], device: str) -> Any:
    """A `transformers.BitsAndBytesConfig` from `quantization.config` (or QLoRA's `adapter.base_quantization`);
    refuse clearly where bnb cannot run. The one builder: this runtime and train.py use it."""
    from hydra.utils import instantiate

    try:
        import bitsandbytes  # noqa: F401
    except Exception as e:
        raise ConfigError("quantization.kind", f"bitsandbytes failed to import ({e}); use quantization=none or a "
                                               "GGUF type with runtime=llamacpp") from e
    if device == "cpu":
        from importlib.metadata import version

        from packaging.version import Version

        if Version(version("bitsandbytes")) < Version("0.45"):
            raise ConfigError("quantization.kind", "bitsandbytes on CPU needs >= 0.45 (multi-backend); use a GGUF "
                                                   "type with runtime=llamacpp instead")
    return instantiate(config, _convert_="all")


class TransformersRuntime:
    """Loads safetensors only (`use_safetensors=True`), never remote code unless the model config opts in."""

    serves: ClassVar[tuple[str, ...]] = ("none", "bnb")  # bnb quantizes each weight as transformers loads it
    needs: ClassVar[str] = "checkpoint"
    remote: ClassVar[bool] = False
    concurrent_requests: ClassVar[bool] = False  # one generate() at a time; the speed stage runs sequentially
    speed_note: ClassVar[str] = "in-process: peak_rss_mb includes the model"
    constrained_decoding: ClassVar[str] = "llguidance"  # decoding=constrained: a logits processor (_hf_constrain)
    scores_choices: ClassVar[bool] = True  # task.formulation=choice: HFLM's loglikelihood; score_labels: KV kernel
    chat_tools: ClassVar[bool] = True  # chat(): the chat template with tools, llguidance for a turn's constraint
    memory_footprint: int | None = None
    last_usage: dict[str, Any] | None = None
    constrainer: Any = None  # set by constrain(): slmexp.runtimes._hf_constrain.HFConstrainer
    _chat_constrainer: Any = None  # chat turns' constraints when constrain() was not called

    @classmethod
    def check(cls, cfg: DictConfig) -> None:
        """Nothing to check at config time: torch and transformers are core dependencies; the device is checked
        when the runtime is built (torch's CUDA query is not cheap)."""

    def __init__(
        self,
        model_path: str,
        *,
        name: str = "transformers",
        device: str = "auto",
        dtype: str = "float32",
        batch_size: int = 8,
        shared_prefix: bool = True,
        threads: int | None = None,
        adapter_path: str | None = None,
        quantization_config: dict | None = None,
        trust_remote_code: bool = False,
        seed: int = 0,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(int(threads))
        torch.manual_seed(seed)
        self.name = name
        self.device = _pick_device(device)
        self.batch_size = batch_size
        self.dtype_name = dtype  # the weights' dtype as asked (the record's speed.eval_dtype)
        self.shared_prefix = bool(shared_prefix)
        t0 = time.perf_counter()
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        quant = None
        if quantization_config:  # bitsandbytes quantizes each weight as it loads (full precision passes through RAM)
            quant = bnb_config(quantization_config, self.device)
        self.model = AutoModelForCausalLM.from_pretrained(
            model_path, dtype=torch_dtype, trust_remote_code=trust_remote_code, use_safetensors=True,
            quantization_config=quant, device_map={"": self.device} if quant is not None else None,
        )
        if quant is None:
            self.model.to(self.device)
        # Bytes of parameters and buffers as loaded (after bnb packing): the in-memory model size.
        self.memory_footprint = int(self.model.get_memory_footprint())
        if adapter_path:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, adapter_path)
        self.model.eval()
        self.prefix_stats = {"batches": 0, "prefix_tokens_saved": 0}  # the accuracy pass's shared-prefix use
        self.model._slmexp_prefix_stats = self.prefix_stats
        self._lm: Any = None
        self.load_s = time.perf_counter() - t0

    def uses_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def constrain(self, spec: Any) -> None:
        """Constrain every later generation (accuracy pass and `stream`) to `spec` (slmexp.decoding)."""
        from slmexp.runtimes._hf_constrain import HFConstrainer

        self.constrainer = HFConstrainer(spec, self.tokenizer, self._eos_ids())

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        return {int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None} | {
            int(self.tokenizer.eos_token_id)}

    def lm_eval_model(self) -> Any:
        """lm-eval's `HFLM` over the loaded model (one, kept: `stream` renders and tokenizes through it too).

        At `batch_size` 1 each generate_until request is one `generate()` call, timed into `request_latencies_s`
        (slmexp.evaluate reads it: the accuracy pass's per-request latency); a batch's time is no request's, so
        larger batches record nothing.
        """
        if self._lm is None:
            self._lm = _timed_hflm(self)
        return self._lm

    def stream(self, prompt: str, max_new_tokens: int, stop: Sequence[str] | None = None
               ) -> Iterator[tuple[str, float]]:
        """Greedy generation on a worker thread; yields each new token's text with the time it arrived.

        The prompt is rendered and tokenized by the accuracy pass's HFLM (chat template, BOS rule, left
        truncation). Text is decoded over all tokens so far (a character split across tokens comes out whole, as
        in the accuracy pass's one decode) and cut before the first `stop` string (`_stop.StopCut`); the worker
        then stops decoding. However the stream ends (run out, stopped, or closed by a consumer that stopped
        iterating) the worker is told to stop and joined before `last_usage` is set: no generation keeps running
        to slow the next request.
        """
        lm = self.lm_eval_model()
        if self.uses_chat_template():
            prompt = lm.apply_chat_template([{"role": "user", "content": prompt}])
        constrained = {} if self.constrainer is None else self.constrainer.generation_kwargs(
            1, self.constrainer.spec.for_text(prompt))
        usage: dict[str, Any] = {}
        try:
            yield from self._decode(prompt, max_new_tokens, stop, constrained, usage)
        finally:
            self.last_usage = usage

    def _decode(self, prompt: str, max_new_tokens: int, stop: Sequence[str] | None, constrained: dict[str, Any],
                usage: dict[str, Any]) -> Iterator[tuple[str, float]]:
        """`stream`'s decoding loop on a rendered prompt (also a `chat` turn's): tokenized by the accuracy pass's
        HFLM, generated on the worker thread, cut at `stop`; `usage` filled however it ends."""
        from slmexp.runtimes._hf_stream import GenerationWorker
        from slmexp.runtimes._stop import StopCut

        lm = self.lm_eval_model()
        ids, mask = lm.tok_batch_encode([prompt], left_truncate_len=max(lm.max_length - max_new_tokens, 1))
        eos_ids = self._eos_ids()
        cut, out_ids, emitted, stamp = StopCut(stop), [], "", 0.0
        worker = GenerationWorker(self.model, input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                  max_new_tokens=max_new_tokens, **constrained,
                                  pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        try:
            tokens = iter(worker)
            while not cut.hit and (item := next(tokens, None)) is not None:
                new, stamp = item
                if len(new) == 1 and new[0] in eos_ids:
                    continue  # the stop token is not output text
                out_ids += new
                text = self.tokenizer.decode(out_ids, skip_special_tokens=True)
                chunk = ""
                if not text.endswith("\ufffd") and text.startswith(emitted):  # else: wait for the rest
                    chunk, emitted = text[len(emitted):], text
                yield cut.feed(chunk), stamp
            if not cut.hit and out_ids:
                text = self.tokenizer.decode(out_ids, skip_special_tokens=True)
                rest = cut.feed(text[len(emitted):] if text.startswith(emitted) else "") + cut.flush()
                if rest:
                    yield rest, stamp  # held-back text: its time is the last token's
        finally:
            worker.stop()
            usage.update(input_tokens=int(ids.shape[1]), output_tokens=len(out_ids), source="model tokenizer")
        if worker.failure is not None:
            raise worker.failure

    def score_labels(self, context: str, continuations: Sequence[str]) -> list[float]:
        """log p(continuation | context) of each continuation: the context encoded once, every continuation scored
        in one batched pass on its KV cache (HFLM's token split and numbers: slmexp/runtimes/_label_scores.py)."""
        from slmexp.runtimes._label_scores import hf_label_scores

        return hf_label_scores(self.model, self.lm_eval_model(), context, continuations)

    def chat(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
             constraint: Any = None, max_new_tokens: int = 256, stop: Sequence[str] | None = None) -> ChatTurn:
        """One greedy assistant turn (the Runtime Protocol's `chat`): the conversation through the model's chat
        template (slmexp/runtimes/_chat.py), `stream`'s decoding loop, `constraint` (a slmexp.decoding
        Constraint) through the llguidance logits processor; calls parsed from the text."""
        from slmexp.runtimes._chat import collect, render_chat

        t0 = time.perf_counter()
        prompt = render_chat(self.tokenizer, messages, tools)
        constrained = {} if constraint is None else self._constrainer().generation_kwargs(1, constraint)
        usage: dict[str, Any] = {}
        return collect(self._decode(prompt, max_new_tokens, stop, constrained, usage), t0, usage)

    def _constrainer(self) -> Any:
        """The constrainer of `constrain()`, else one for `chat` turns only (llguidance's tokenizer view: once)."""
        if self.constrainer is not None:
            return self.constrainer
        if self._chat_constrainer is None:
            from slmexp.runtimes._hf_constrain import HFConstrainer

            self._chat_constrainer = HFConstrainer(None, self.tokenizer, self._eos_ids())
        return self._chat_constrainer

    def close(self) -> None:
        import gc

        self.model = None
        self._lm = None
        gc.collect()

    def __enter__(self) -> TransformersRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _timed_hflm(rt: TransformersRuntime) -> Any:
    """lm-eval's HFLM over `rt.model`, timing each one-request `generate()` call (see `lm_eval_model`); batches
    of more than one row share their common prompt prefix (`runtime.shared_prefix`, slmexp.runtimes._hf_prefix)."""
    import functools

    from lm_eval.models.huggingface import HFLM

    import slmexp.runtimes._hf_prefix as _hf_prefix

    class TimedHFLM(HFLM):
        def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
            if rt.constrainer is None:
                return super().generate_until(requests, disable_tqdm)
            return rt.constrainer.generate_until(requests, lambda reqs: super(TimedHFLM, self).generate_until(
                reqs, disable_tqdm))

        def _model_generate(self, context: Any, max_length: int, stop: list[str], **kwargs: Any) -> Any:
            if rt.constrainer is not None:
                kwargs.update(rt.constrainer.generation_kwargs(int(context.shape[0])))
            t0 = time.perf_counter()
            shared = rt.shared_prefix and rt.constrainer is None and context.shape[0] > 1
            if shared:  # HFLM's own generate call (sampling flags, stop criteria, autocast), through _hf_prefix
                own = self.model.generate
                self.model.generate = functools.partial(_hf_prefix.generate, self.model, generate_fn=own)
            try:
                out = super()._model_generate(context, max_length, stop, **kwargs)
            finally:
                if shared:
                    del self.model.generate
            if context.shape[0] == 1 and rt.batch_size == 1:
                self.request_latencies_s.append(time.perf_counter() - t0)
            return out

    lm = TimedHFLM(pretrained=rt.model, tokenizer=rt.tokenizer, batch_size=rt.batch_size, device=rt.device)
    lm.request_latencies_s = []
    return lm
