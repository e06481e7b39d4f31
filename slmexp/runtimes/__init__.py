"""Runtimes: one small protocol (below), one module per backend, built from `conf/runtime/*.yaml`.

Protocols, not inheritance: a runtime is anything with these methods. Backends are imported only when
instantiated, so the default path never imports vLLM or llama.cpp.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from omegaconf import DictConfig


@runtime_checkable
class Runtime(Protocol):
    """What every runtime offers the pipeline."""

    name: str

    def uses_chat_template(self) -> bool:
        """Whether prompts go through the model's chat template (recorded with the metrics)."""

    def lm_eval_model(self) -> Any:
        """An lm-eval `LM` over the loaded model, for accuracy."""

    def stream(self, prompt: str, max_new_tokens: int) -> Iterator[tuple[str, float]]:
        """Yield (text chunk, perf_counter time) as tokens are produced: TTFT and tokens/s come from this."""

    def close(self) -> None:
        """Free memory and stop any server the runtime started."""

    def __enter__(self) -> Runtime: ...

    def __exit__(self, *exc: object) -> None: ...


def build_runtime(cfg: DictConfig, model_path: str | None, adapter_path: str | None = None,
                  gguf_path: str | None = None, onnx_path: str | None = None) -> Runtime:
    """Instantiate `cfg.runtime` (its `_target_`) on a resolved model.

    Only the kwargs a run needs are passed: a GGUF file for llama.cpp, an exported ONNX folder for ONNX Runtime
    GenAI, a bitsandbytes config for transformers.
    """
    from omegaconf import OmegaConf

    extra: dict[str, Any] = {}
    if gguf_path is not None:
        extra["gguf_path"] = str(gguf_path)
    if onnx_path is not None:
        extra["onnx_path"] = str(onnx_path)
    if cfg.quantization.kind == "bnb":
        extra["quantization_config"] = OmegaConf.to_container(cfg.quantization.config, resolve=True)
    from hydra.errors import InstantiationException

    from slmexp.errors import SlmexpError

    try:
        return _instantiate(cfg, model_path, adapter_path, extra)
    except InstantiationException as e:  # Hydra wraps the runtime's own error: surface ours unchanged
        if isinstance(e.__cause__, SlmexpError):
            raise e.__cause__ from None
        raise


def _instantiate(cfg: DictConfig, model_path: str | None, adapter_path: str | None, extra: dict[str, Any]) -> Any:
    from hydra.utils import instantiate

    return instantiate(
        cfg.runtime,
        model_path=None if model_path is None else str(model_path),
        adapter_path=adapter_path,
        trust_remote_code=bool(cfg.model.get("trust_remote_code", False)),
        seed=int(cfg.seed),
        _convert_="all",
        _recursive_=False,  # quantization_config keeps its _target_: the runtime builds it after its own checks
        **extra,
    )
