"""The transformers runtime: a HF checkpoint in this process; lm-eval's own `HFLM` wraps the model object."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any


def _pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        from slmexp.config import fail

        raise fail("runtime.device", f"{device!r} asked for, but torch sees no CUDA device")
    return device


class TransformersRuntime:
    """Loads safetensors only (`use_safetensors=True`), never remote code unless the model config opts in."""

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
        self.model = AutoModelForCausalLM.from_pretrained(
            model_path, dtype=torch_dtype, trust_remote_code=trust_remote_code, use_safetensors=True
        ).to(self.device)
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
        from transformers import TextIteratorStreamer

        if self.uses_chat_template():
            prompt = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(**inputs, max_new_tokens=max_new_tokens, do_sample=False, streamer=streamer)
        worker = threading.Thread(target=self.model.generate, kwargs=kwargs, daemon=True)
        worker.start()
        for chunk in streamer:
            yield chunk, time.perf_counter()
        worker.join()

    def close(self) -> None:
        import gc

        self.model = None
        gc.collect()

    def __enter__(self) -> TransformersRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
