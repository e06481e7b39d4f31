"""The `toy` runtime: transformers pinned to the CPU in float32, serving the full checkpoint or a `toyq` one.

File 1 of a runtime (file 2 is conf/runtime/toy.yaml). Everything the Runtime Protocol asks (slmexp.runtimes) comes
from the class it extends; what this file adds is the contract's facts (`serves`, `options`) and its own keywords.
"""

from __future__ import annotations

from typing import ClassVar

from slmexp.runtimes.transformers import TransformersRuntime
from slmexp.schema.runtimes import RuntimeBase
from slmexp.schema.types import PosInt


class ToyOptions(RuntimeBase):
    """The YAML's keys, validated by slmexp's schema like its own runtimes' (bad values: one line per key)."""

    batch_size: PosInt
    threads: PosInt | None = None


class ToyRuntime(TransformersRuntime):
    serves: ClassVar[tuple[str, ...]] = ("none", "toyq")
    options = ToyOptions

    def __init__(self, model_path: str, *, name: str = "toy", batch_size: int = 4, threads: int | None = None,
                 adapter_path: str | None = None, quantization_config: dict | None = None,
                 trust_remote_code: bool = False, seed: int = 0) -> None:
        super().__init__(model_path, name=name, device="cpu", dtype="float32", batch_size=batch_size,
                         shared_prefix=False, threads=threads, adapter_path=adapter_path,
                         quantization_config=quantization_config, trust_remote_code=trust_remote_code, seed=seed)
