"""The `toyq` quantizer: round-to-nearest fake quantization of every linear layer's weights to `bits` bits
(symmetric, one scale per output row), written back as a full-precision checkpoint the `toy` runtime loads.

File 1 of a quantizer (file 2 is conf/quantization/toyq-4bit.yaml). It follows slmexp.quantize's module contract:
KIND, PRODUCES, OPTIONS, check, prepare.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from slmexp.schema.types import Node, PosInt

KIND = "toyq"
PRODUCES = "checkpoint"


class OPTIONS(Node):
    """`quantization.*` of a toyq option."""

    name: str
    kind: str
    bits: PosInt


def check(qcfg: Any) -> None:
    """Config time (cheap): the bit width must leave at least one level each side of zero."""
    from slmexp.origin import fail

    if int(qcfg.bits) < 2:
        raise fail("quantization.bits", f"toyq needs at least 2 bits, got {qcfg.bits}")


def _fake_quantize(weight: Any, bits: int) -> Any:
    levels = 2 ** (bits - 1) - 1
    scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / levels
    return (weight / scale).round().clamp(-levels, levels) * scale


def prepare(qcfg: Any, source: Any, *, run_dir: Path, cache_dir: Path, calib: Any = None,
            threads: int | None = None) -> Any:
    """The checkpoint with its linear weights rounded to `bits`; the record's `quantization` block says how much
    they moved (mean absolute error over the rounded tensors)."""
    from safetensors.torch import load_file, save_file

    from slmexp.models import dir_bytes
    from slmexp.quantize.base import Artifact

    bits, src = int(qcfg.bits), Path(source.checkpoint)
    out = Path(run_dir) / f"toyq-{bits}bit"
    shutil.copytree(src, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.safetensors"))
    errors, n = 0.0, 0
    for file in sorted(src.glob("*.safetensors")):
        tensors = load_file(str(file))
        for key, w in tensors.items():
            if w.ndim == 2 and key.endswith("proj.weight"):
                q = _fake_quantize(w.float(), bits).to(w.dtype)
                errors, n = errors + float((q - w).abs().mean()), n + 1
                tensors[key] = q
        save_file(tensors, str(out / file.name), metadata={"format": "pt"})
    block = {"kind": KIND, "name": str(qcfg.name), "bits": bits, "tensors_quantized": n,
             "mean_abs_error": round(errors / max(n, 1), 8), "full_precision_bytes": dir_bytes(src)}
    return Artifact(out, "checkpoint", block)
