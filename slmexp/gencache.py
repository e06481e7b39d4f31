"""The generation cache (`eval.cache=true`): a re-run skips the requests its model already answered.

Keyed by (model artifact sha256, rendered prompt, generation settings): the artifact's sha256 (the GGUF file, the
ONNX folder or the checkpoint's weight files, plus an unmerged adapter's and the load-time quantization config) and
the serving runtime's settings name one sqlite file under `<paths.cache_dir>/generations/`; inside it lm-eval's own
`CachingLM` keys each request by sha256 of the request type and its arguments, i.e. the prompt exactly as rendered
(chat template, few-shot block) and the generation settings (stop strings, token budget, sampling). Sampled
requests (do_sample) are never cached (lm-eval's rule).

Why opt-in: a cached answer was not generated now, so the accuracy pass's wall time and per-request latencies no
longer measure this model on this machine (the speed stage still does: it never reads the cache). The record says
how many answers came from the cache (`metrics.generation_cache`).

Remote endpoints (runtime=openai) have no artifact to hash: their cache is keyed by the endpoint's identity instead
(base URL and served model name, with the same runtime settings), and the record says so (`keyed_by: endpoint`).
That trusts the endpoint to serve the same weights under that name. What it buys: answers are written as they
arrive (lm-eval's cache hook, sqlite autocommit), so a relaunch after an endpoint died mid-evaluation asks it only
the requests it had not answered.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from slmexp.cache import checkpoint_hash, sha256_file

# Runtime settings that do not change what a model generates (where it runs, how fast, how it is measured).
_NEUTRAL_RUNTIME_KEYS = ("threads", "n_threads", "concurrency", "timeout_s", "connect_timeout_s", "max_retries")


def artifact_sha256(path: Path | None, adapter: str | None = None) -> str | None:
    """sha256 of what the runtime loads: a file's bytes, or a checkpoint folder's weight and config files (with the
    adapter folder's when one is stacked on it); None when there is nothing local (an endpoint)."""
    if path is None or not Path(path).exists():
        return None
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    h = checkpoint_hash(path)
    if adapter:
        h.update(checkpoint_hash(adapter).hexdigest().encode())
    return h.hexdigest()


def cache_file(cache_dir: Path, artifact_sha: str, runtime_cfg: dict[str, Any],
               quantization_cfg: dict[str, Any] | None) -> Path:
    """The sqlite file (without lm-eval's `_rank0.db` suffix) for this artifact served this way."""
    runtime = {k: v for k, v in sorted(runtime_cfg.items()) if k not in _NEUTRAL_RUNTIME_KEYS}
    key = hashlib.sha256(json.dumps({"artifact": artifact_sha, "runtime": runtime, "quantization": quantization_cfg},
                                    sort_keys=True, default=str).encode()).hexdigest()
    out = Path(cache_dir) / "generations" / key[:2] / key
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def entries(cache: Path) -> int:
    """Answers stored in the cache file (0 when it does not exist yet)."""
    db = Path(str(cache) + "_rank0.db")
    if not db.is_file():
        return 0
    from sqlitedict import SqliteDict

    with SqliteDict(str(db), flag="r") as d:
        return len(d)


def endpoint_identity(runtime_cfg: dict[str, Any]) -> str:
    """What stands for the weights behind a remote endpoint: its base URL and the model name it serves."""
    ident = {"base_url": str(runtime_cfg.get("base_url") or "").rstrip("/"), "model": runtime_cfg.get("model")}
    return "endpoint:" + hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def open_for(cfg: Any, artifact_path: Path | str | None, adapter: str | None, remote: bool) -> dict[str, Any] | None:
    """The run's cache when `eval.cache` is on: {"file", "artifact_sha256", "keyed_by", "entries_before"}; None when
    it is off or there is nothing to key it by."""
    if not cfg.eval.get("cache"):
        return None
    from omegaconf import OmegaConf

    from slmexp.secrets import secret_name

    runtime = OmegaConf.to_container(cfg.runtime, resolve=True)
    if remote:  # keys and headers never reach the key (nor the file name): they do not change the answers
        runtime = {k: v for k, v in runtime.items() if not secret_name(k) and k != "headers"}
        sha, keyed_by = endpoint_identity(runtime), "endpoint"
    elif artifact_path is None:
        return None
    else:
        sha, keyed_by = artifact_sha256(Path(artifact_path), adapter), "artifact"
    if sha is None:
        return None
    path = cache_file(Path(str(cfg.paths.cache_dir)), sha, runtime, OmegaConf.to_container(cfg.quantization,
                                                                                            resolve=True))
    return {"file": path, "artifact_sha256": sha, "keyed_by": keyed_by, "entries_before": entries(path)}


def block(cache: dict[str, Any], n_requests: int) -> dict[str, Any]:
    """`metrics.generation_cache`: where, keyed by what, and how many answers were generated now vs read back."""
    now = entries(cache["file"]) - cache["entries_before"]
    what = "artifact" if cache.get("keyed_by", "artifact") == "artifact" else "endpoint (base URL and model name)"
    return {"file": str(cache["file"]) + "_rank0.db", "artifact_sha256": cache["artifact_sha256"],
            "keyed_by": cache.get("keyed_by", "artifact"), "answered_now": now, "from_cache": max(0, n_requests - now),
            "note": f"answers read back were generated by an earlier run of the same {what}, prompt and settings: "
                    "the accuracy pass's wall time and latencies do not time them"}
