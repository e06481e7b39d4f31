"""The options of each runtime, declared once and looked up by the runtime's `_target_`.

Why by `_target_` and not by `runtime.name`: the server recipes (ollama, lmstudio, vllm-server, ...) are the
OpenAI runtime under other names. A runtime class from outside slmexp may declare its own pydantic model as the
class attribute `options`; one that declares none has only `name` checked (its keys go to its constructor, whose
signature Hydra's instantiate enforces).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from slmexp.schema.types import DEVICE, DTYPES, ENV_NAME, URL, Bool, Node, PosInt, PosNum

Dtype = Literal[DTYPES]  # type: ignore[valid-type]


class RuntimeBase(Node):
    target_: str = Field(alias="_target_")
    name: str = Field(min_length=1)


class Transformers(RuntimeBase):
    device: str = Field(pattern=DEVICE)
    dtype: Dtype
    batch_size: PosInt
    threads: PosInt | None = None
    shared_prefix: Bool | None = None


class LlamaCpp(RuntimeBase):
    n_threads: PosInt | None = None
    n_ctx: PosInt
    n_batch: PosInt
    batch_size: PosInt
    use_extra_bufts: Bool | None = None


class OrtGenAI(RuntimeBase):
    threads: PosInt | None = None
    max_length: PosInt
    batch_size: PosInt
    max_gen_toks: PosInt


class VLLM(RuntimeBase):
    dtype: Dtype
    max_model_len: PosInt | None = None
    gpu_memory_utilization: PosNum = Field(le=1)
    tensor_parallel_size: PosInt
    enforce_eager: Bool
    kv_cache_space_gb: PosNum | None = None
    max_num_seqs: PosInt | None = None
    batch_size: PosInt | Literal["auto"]
    quantization: str | None = None
    engine_kwargs: dict[str, Any] | None = None


class OpenAI(RuntimeBase):
    base_url: str = Field(pattern=URL)
    model: str = Field(min_length=1)
    api_key_env: str | None = Field(default=None, pattern=ENV_NAME)
    api_key: str | None = None  # `+runtime.api_key=...`: accepted and redacted everywhere; prefer api_key_env
    auth_header: str
    headers: dict[str, str] | None = None
    provider_id: str | None = None
    price_model: str | None = None
    timeout_s: PosNum | None = None
    connect_timeout_s: PosNum | None = None
    max_retries: PosInt | None = None
    concurrency: PosInt | None = None
    batch_size: PosInt
    max_gen_toks: PosInt
    stream_usage: Bool | None = None
    verify_certificate: Bool | None = None


class Unknown(RuntimeBase):
    """A runtime from outside slmexp that declares no `options`: its keys are its constructor's."""

    model_config = ConfigDict(extra="allow")


RUNTIMES: dict[str, type[Node]] = {
    "slmexp.runtimes.transformers.TransformersRuntime": Transformers,
    "slmexp.runtimes.llamacpp.LlamaCppRuntime": LlamaCpp,
    "slmexp.runtimes.ortgenai.OrtGenAIRuntime": OrtGenAI,
    "slmexp.runtimes.vllm.VLLMRuntime": VLLM,
    "slmexp.runtimes.openai.OpenAIRuntime": OpenAI,
}



def options_for(target: str) -> type[Node]:
    """The options model of the runtime class at `target` (slmexp's own, the class's `options`, else Unknown)."""
    if target in RUNTIMES:
        return RUNTIMES[target]
    try:
        from slmexp.runtimes import runtime_class

        cls = runtime_class({"_target_": target})
    except Exception:  # an import failure is reported by the runtime/quantization check, naming runtime._target_
        return Unknown
    from slmexp.registry import import_path

    if import_path(cls) in RUNTIMES:  # `_target_: llamacpp` names slmexp's own class
        return RUNTIMES[import_path(cls)]
    from slmexp.runtimes import capabilities

    declared = capabilities(cls).options
    return declared if isinstance(declared, type) and issubclass(declared, Node) else Unknown
