"""The resume fingerprint: what determines a job's result, so a relaunch reuses a finished run exactly when it
would compute the same thing.

In: the config as written (interpolations unresolved, so `${paths.data_dir}/...` survives the checkout moving),
minus the keys that only say where files go or how results are logged, priced or reported; plus the sha256 of the
data files and of the local model weights (an edited JSONL or a retrained checkpoint under the same path is a new
experiment). Out: `paths`, `name` (the run dir), `logger`, `baseline`, `optimized_metric` and `claims` (how the
sweep reads the table; a relaunch writes new claims into the finished record: slmexp.report.claims.refresh), `cost`
(recomputed from the stored speed figures by `refresh_cost`, without running the model again), and `train` for a
job that trains nothing (`adapter.name: none`): a change to the training defaults does not re-run zero-shot arms.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# Top-level keys that do not change what is computed: where files go, how runs are logged, reported and priced.
NOT_RESULT_KEYS = ("paths", "name", "logger", "baseline", "optimized_metric", "cost", "claims")


def _memo_sha(path: Path, memo_dir: Path | None) -> str:
    """sha256 of a file, remembered under `memo_dir` by (path, size, mtime, inode): a multi-GB checkpoint is read
    once, not at every job start; any write to the file changes its mtime and so its memo key."""
    from slmexp.cache import content_key, sha256_file

    if memo_dir is None:
        return sha256_file(path)
    st = path.stat()
    memo = Path(memo_dir) / content_key([str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino])
    try:
        return memo.read_text().strip()
    except OSError:
        pass
    digest = sha256_file(path)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(digest)
    except OSError:  # a read-only or full cache dir: the hash is still right, just not remembered
        pass
    return digest


def _file_sha(path: Path, memo_dir: Path | None = None) -> str:
    """A file's sha256, or a checkpoint folder's (cache.checkpoint_hash's formula: name and sha256 of each file)."""
    from slmexp.cache import _NOT_CONTENT, CHECKPOINT_SUFFIXES

    if not path.is_dir():
        return _memo_sha(path, memo_dir)
    h = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES):
        if f.name not in _NOT_CONTENT:
            h.update(f"{f.name}:{_memo_sha(f, memo_dir)}\n".encode())
    return h.hexdigest()


def inputs_sha256(resolved: dict[str, Any]) -> dict[str, str]:
    """sha256 of the data files (`task.data.*`) and the local model weights (`model.source.path`, a file or a
    checkpoint folder), by config key. Hub models are pinned by `model.source.revision` in the config itself."""
    out: dict[str, str] = {}
    cache_dir = ((resolved.get("paths") or {}).get("cache_dir")) if isinstance(resolved.get("paths"), dict) else None
    memo = Path(str(cache_dir)).expanduser() / "sha256-memo" if cache_dir else None
    data = ((resolved.get("task") or {}).get("data")) or {}
    for split, value in sorted(data.items()) if isinstance(data, dict) else []:
        if isinstance(value, str) and Path(value).expanduser().is_file():
            out[f"task.data.{split}"] = _file_sha(Path(value).expanduser(), memo)
    src = ((resolved.get("model") or {}).get("source")) or {}
    path = src.get("path") if isinstance(src, dict) else None
    if isinstance(path, str) and Path(path).expanduser().exists():
        out["model.source.path"] = _file_sha(Path(path).expanduser(), memo)
    return out


def trains(config: dict[str, Any]) -> bool:
    """Whether a job with this config (as written or resolved) has a training stage; `train.*` means nothing if not."""
    adapter = config.get("adapter")
    return not (adapter is None or (isinstance(adapter, dict) and adapter.get("name") in (None, "none")))


def fingerprint(container: dict[str, Any], resolved: dict[str, Any] | None = None) -> str:
    """sha256 of the config as written minus NOT_RESULT_KEYS (and `train` when adapter.name is none), plus
    `inputs_sha256(resolved)` when given."""
    core = {k: v for k, v in container.items() if k not in NOT_RESULT_KEYS}
    if not trains(resolved or container):
        core.pop("train", None)
    if resolved is not None:
        core["_inputs_sha256"] = inputs_sha256(resolved)
    return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()


def refresh_cost(previous: dict[str, Any], cfg: Any, resolved: dict[str, Any]) -> bool:
    """A finished run reused under another `cost` profile: recompute its cost block from its stored speed and
    accuracy (the model is not run again) and record the new profile. Returns True when the record changed."""
    from slmexp.secrets import redact

    new_cost = redact(resolved.get("cost"))
    if (previous.get("config") or {}).get("cost") == new_cost or not previous.get("speed"):
        return False
    block = None
    if cfg.get("cost") is not None:
        from slmexp.cost import compute

        values = (previous.get("metrics") or {}).get("values") or {}
        block = compute(cfg.cost, cfg.runtime, previous["speed"], values.get(str(cfg.task.primary_metric)))
    previous["cost"] = block
    previous.setdefault("config", {})["cost"] = new_cost
    previous["run"]["cost_recomputed"] = True
    return True
