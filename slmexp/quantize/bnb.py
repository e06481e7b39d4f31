"""bitsandbytes (quantization kind `bnb`): weights quantized by transformers while it loads the checkpoint.

Why there is no export here: bitsandbytes has no file format of its own that slmexp serves, so `prepare` hands the
runtime the checkpoint unchanged plus the `quantization_config` (the plain dict of `quantization.config`, a
`transformers.BitsAndBytesConfig` by `_target_`); the transformers runtime builds and checks it
(`slmexp.runtimes.transformers.bnb_config`, also what train.py uses for QLoRA's 4-bit base), since runtimes never
import quantizers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from slmexp.quantize.base import Artifact, Calibration, Source

KIND = "bnb"
PRODUCES = "checkpoint"


def check(qcfg: DictConfig) -> None:
    """Config-time check (names only): `quantization.config` must say what to build."""
    from slmexp.origin import fail

    config = qcfg.get("config")
    if not config or not config.get("_target_"):
        raise fail("quantization.config", "a bnb quantization needs `config` with a `_target_` "
                                          "(transformers.BitsAndBytesConfig) and its arguments")


def prepare(qcfg: DictConfig, source: Source, *, run_dir: Path, cache_dir: Path, calib: Calibration | None = None,
            threads: int | None = None) -> Artifact:
    """The checkpoint as is, with the config transformers quantizes it by; the record's block gets
    `memory_footprint_bytes` from the pipeline once the runtime has loaded the model."""
    from omegaconf import OmegaConf

    from slmexp.models import dir_bytes
    from slmexp.origin import fail
    from slmexp.quantize.base import Artifact

    if source.checkpoint is None:
        raise fail("model.source", "bitsandbytes quantizes local weights (model.source.path, hub or wheel)")
    config = OmegaConf.to_container(qcfg.config, resolve=True)
    block = {"kind": KIND, "name": str(qcfg.name), "full_precision_bytes": dir_bytes(Path(source.checkpoint))}
    return Artifact(Path(source.checkpoint), "checkpoint", block, {"quantization_config": config})
