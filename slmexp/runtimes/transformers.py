"""The transformers runtime: a HF checkpoint in this process; lm-eval's own `HFLM` wraps the model object.

bitsandbytes quantization (quantization=bnb-*) happens here, while transformers loads the weights: the quantizer
hands over `quantization_config` (the plain `quantization.config` dict) and `bnb_config` builds and checks it, as
runtimes never import quantizers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

from omegaconf import DictConfig

from slmexp.errors import ConfigError


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
    memory_footprint: int | None = None
    last_usage: dict[str, Any] | None = None

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
        self.load_s = time.perf_counter() - t0

    def uses_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def lm_eval_model(self) -> Any:
        from lm_eval.models.huggingface import HFLM

        return HFLM(pretrained=self.model, tokenizer=self.tokenizer, batch_size=self.batch_size,
                    device=self.device)

    def stream(self, prompt: str, max_new_tokens: int) -> Iterator[tuple[str, float]]:
        """Greedy generation on a worker thread; yields each new token's text with the time it arrived."""
        import queue

        from transformers.generation.streamers import BaseStreamer

        if self.uses_chat_template():
            prompt = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        # A chat template adds its own special tokens; a plain prompt gets BOS as lm-eval (and llama.cpp) give it.
        inputs = self.tokenizer(prompt, return_tensors="pt",
                                add_special_tokens=not self.uses_chat_template()).to(self.device)
        tokens: queue.Queue = queue.Queue()
        done = object()

        class _PerToken(BaseStreamer):
            # generate() calls put() once with the prompt, then once per decoding step.
            def __init__(self) -> None:
                self.prompt_seen = False

            def put(self, value: Any) -> None:
                if not self.prompt_seen:
                    self.prompt_seen = True
                    return
                tokens.put((value.reshape(-1).tolist(), time.perf_counter()))

            def end(self) -> None:
                tokens.put(done)

        failure: list[BaseException] = []

        def _generate() -> None:
            try:
                self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                    streamer=_PerToken(), pad_token_id=self.tokenizer.pad_token_id
                                    or self.tokenizer.eos_token_id)
            except BaseException as e:  # surfaced to the caller below
                failure.append(e)
                tokens.put(done)

        worker = threading.Thread(target=_generate, daemon=True)
        worker.start()
        eos = self.model.generation_config.eos_token_id
        stop = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        n_out = 0
        while (item := tokens.get()) is not done:
            ids, stamp = item
            if len(ids) == 1 and ids[0] in stop:
                continue  # the stop token is not output text
            n_out += len(ids)
            yield self.tokenizer.decode(ids, skip_special_tokens=True), stamp
        worker.join()
        self.last_usage = {"input_tokens": int(inputs["input_ids"].shape[1]), "output_tokens": n_out,
                           "source": "model tokenizer"}
        if failure:
            raise failure[0]

    def close(self) -> None:
        import gc

        self.model = None
        gc.collect()

    def __enter__(self) -> TransformersRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
