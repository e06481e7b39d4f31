"""Quantizers: make the artifact a runtime loads (a checkpoint + load-time config, a GGUF file, an ONNX folder).

The pipeline asks the runtime class what it `needs` ("checkpoint" | "gguf" | "onnx" | "endpoint") and calls
`prepare` here; config validation calls `check`. Neither names a backend: `QUANTIZERS` maps each
`quantization.kind` to its module, imported only when that kind is used (lm-eval's MODEL_MAPPING style), and every
module is cheap to import (torch, llama_cpp, onnx, olive are imported inside functions).

Adding a quantizer (kind `foo`):
1. Write `slmexp/quantize/foo.py` with
   - `KIND = "foo"` and `PRODUCES`: the artifact it makes, one of the runtimes' `needs` ("checkpoint" | "gguf" |
     "onnx"); a runtime whose `serves` lists "foo" and whose `needs` equals PRODUCES can serve it;
   - `check(qcfg: DictConfig) -> None`: config-time checks of `cfg.quantization` (names and
     `importlib.util.find_spec` only, nothing heavy imported), raising `slmexp.origin.fail(key, message)`;
   - `prepare(qcfg, source: Source, *, run_dir: Path, cache_dir: Path, calib: Calibration | None = None,
     threads: int | None = None) -> Artifact`: build (or take from the cache) what runtimes load. Key outputs by
     content (`cache.checkpoint_hash` of the source + every setting + the tool's version) and publish them with
     `cache.publish_dir`, so reruns and parallel sweep jobs reuse one copy. `Artifact.block` is the run record's
     `quantization` section (at least `kind` and `name`); `runtime_kwargs` are extra constructor keywords.
     When `qcfg.kind` is not yours (quantization=none), return your default export (gguf: f16, onnx: fp32).
2. Add it to `QUANTIZERS` below (or, from another package, declare it as an entry point in the group
   `slmexp.quantizers`: `foo = "yourpkg.foo"`), and `conf/quantization/foo-*.yaml` (`kind: foo`, `name:`, its
   settings; a `--config-dir` or a Hydra search-path plugin for another package). Its options schema: a pydantic
   model `OPTIONS` (subclass `slmexp.schema.types.Node`) in the module, else only `kind` and `name` are checked.
3. Add the kind to the `serves` of the runtimes that load it, and a test (tests/test_quantize_contract.py checks the
   module attributes of every entry).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from slmexp.errors import SlmexpError
from slmexp.origin import fail
from slmexp.quantize.base import Artifact, Calibration, Source
from slmexp.registry import Registry

__all__ = ["NEEDS", "QUANTIZERS", "Artifact", "Calibration", "Source", "check", "prepare", "quantizer"]

if TYPE_CHECKING:
    from omegaconf import DictConfig

# quantization.kind -> module (imported when that kind is used), plus the `slmexp.quantizers` entry points of other
# packages (slmexp.registry). `none` has no module: nothing is quantized.
QUANTIZERS = Registry("slmexp.quantizers", {
    "bnb": "slmexp.quantize.bnb",
    "gguf": "slmexp.quantize.gguf",
    "onnx": "slmexp.quantize.onnx",
}, load=False)
NEEDS = ("checkpoint", "gguf", "onnx", "endpoint")


def quantizer(kind: str) -> ModuleType:
    """The module of quantization kind `kind` (imported now)."""
    return QUANTIZERS.load(kind)


def options(kind: str) -> type | None:
    """The pydantic model of a quantizer's YAML keys (`OPTIONS` in its module), or None where it declares none
    (slmexp's own kinds are declared in slmexp/schema/groups.py)."""
    declared = getattr(quantizer(kind), "OPTIONS", None)
    return declared if isinstance(declared, type) else None


def check(cfg: DictConfig) -> None:
    """Config-time checks of `cfg.quantization` by its kind's module (cheap: names and find_spec only)."""
    kind = str(cfg.quantization.kind)
    if kind == "none" or kind not in QUANTIZERS:  # an unknown kind is the schema's error (slmexp.schema)
        return
    module = quantizer(kind)
    module.check(cfg.quantization)
    if hasattr(module, "check_model"):  # the exporter reads the checkpoint's config.json (architecture)
        module.check_model(cfg.model)


def needs_weights(cfg: DictConfig, needs: str, trained: bool) -> bool:
    """Whether `prepare` may read the model's full-precision checkpoint, or only a shipped GGUF as is.

    Untrained, quantization=none, on a runtime that loads a GGUF: `prepare` serves the shipped GGUF itself (when
    the model came as one), so the resolver need not dequantize it (slmexp.models.resolve(weights=False)).
    """
    return not (needs in ("gguf", "endpoint") and str(cfg.quantization.kind) == "none" and not trained)


def prepare(qcfg: DictConfig, needs: str, source: Source, run_dir: Path, calib: Calibration | None, *,
            cache_dir: Path, threads: int | None, runtime_name: str) -> Artifact:
    """The artifact a runtime that `needs` checkpoint | gguf | onnx | endpoint loads, prepared for this run from
    the `quantization` node `qcfg`.

    endpoint: nothing (the server has its model). checkpoint: `source.checkpoint`, through the kind's module when it
    quantizes at load time (bnb). gguf / onnx: the module whose PRODUCES is `needs`; for quantization=none its
    default export (gguf: the shipped GGUF when untrained, else f16; onnx: fp32). Exports go to `cache_dir`
    (`paths.cache_dir`); `threads` (`runtime.threads`, when the runtime has it) bounds the exporter's threads;
    `runtime_name` only names the runtime in an error.
    """
    if needs not in NEEDS:
        raise SlmexpError(f"a runtime needs {needs!r}; quantizers prepare one of {', '.join(NEEDS)}")
    if needs == "endpoint":
        return Artifact(None, "endpoint", None)
    kind = str(qcfg.kind)
    if kind == "none":
        if needs == "checkpoint":
            return Artifact(source.checkpoint, "checkpoint", None)
        module = next(m for m in map(quantizer, QUANTIZERS) if needs == m.PRODUCES)
    else:
        module = quantizer(kind)
        if needs != module.PRODUCES:
            name = qcfg.get("name", kind)
            raise fail("quantization.kind", f"quantization={name} makes a {module.PRODUCES} artifact, but "
                   f"runtime={runtime_name} loads a {needs}")
    return module.prepare(qcfg, source, run_dir=Path(run_dir), cache_dir=Path(cache_dir).expanduser(), calib=calib,
                          threads=threads)
