"""Faults of the machine said as the config key that fixes them: a full disk names `paths.output_dir` or
`paths.cache_dir` (whichever is full), not a traceback from deep inside a writer.

Why here and not in each writer: every stage writes (checkpoints, exports, lm-eval samples, run.json), through
libraries that report ENOSPC each in their own way (OSError errno 28, safetensors' "os error 28", torch's
"PytorchStreamWriter failed"), so the job maps them once, where it records the failure.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Any

from slmexp.errors import ConfigError

_FULL = (errno.ENOSPC, errno.EDQUOT)
_FULL_TEXT = ("no space left on device", "os error 28", "disk quota exceeded", "file write failed")
_LOW_BYTES = 1 << 20  # a dir with less than this free is the one that filled up


def _is_disk_full(exc: BaseException) -> bool:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:  # the error itself, or what it was raised from
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _FULL:
            return True
        if any(t in str(e).lower() for t in _FULL_TEXT):
            return True
        e = e.__cause__ or e.__context__
    return False


def _free(path: Path) -> int | None:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def _within(filename: Any, root: Path) -> bool:
    try:
        return bool(filename) and Path(str(filename)).resolve().is_relative_to(Path(root).resolve())
    except (OSError, ValueError):
        return False


def as_input_error(exc: BaseException, cfg: Any, stage: str) -> ConfigError | None:
    """A ConfigError naming the full dir's key (`paths.output_dir` / `paths.cache_dir`) when `exc` says the disk
    is full; None for any other error. Which dir: the file the error names, else the one with < 1 MiB free, else
    by stage (training, export and conversion write to the cache)."""
    if not _is_disk_full(exc):
        return None
    from slmexp.origin import fail

    dirs = {"paths.output_dir": Path(str(cfg.paths.output_dir)), "paths.cache_dir": Path(str(cfg.paths.cache_dir))}
    filename = getattr(exc, "filename", None)
    key = next((k for k, d in dirs.items() if _within(filename, d)), None)
    if key is None:
        low = [k for k, d in dirs.items() if (_free(d) or 0) < _LOW_BYTES]
        key = low[0] if len(low) == 1 else ("paths.cache_dir" if stage in ("resolve", "train", "quantize")
                                            else "paths.output_dir")
    free = _free(dirs[key])
    return fail(key, f"the disk holding {dirs[key]} is full ({free if free is not None else '?'} bytes free) "
                f"during the {stage} stage ({type(exc).__name__}: {str(exc)[:200]}); free space or point {key} "
                "at a larger disk")
