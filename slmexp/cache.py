"""Cache mechanics, in one place: content keys, atomic writes, publish-by-rename under a lock, JSONL answer caches.

Every cache in slmexp (converted checkpoints, trained adapters, GGUF and ONNX exports, teacher and router answers)
is keyed by the sha256 of what determines its content, written next to its final place and renamed into it, so a
killed job never leaves an entry that looks complete. Two jobs building the same entry at once (a parallel
sweep) serialise on a file lock: the second finds the first's result.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Files of a HF checkpoint folder that determine its content (written metadata such as our markers excluded).
CHECKPOINT_SUFFIXES = (".safetensors", ".json", ".jinja", ".model", ".txt")
_NOT_CONTENT = ("slmexp_source.json", "slmexp_export.json", "model_config.json")


def content_key(parts: Any) -> str:
    """sha256 of `parts` as canonical JSON (sorted keys; non-JSON values by str())."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def checkpoint_hash(hf_dir: str | Path) -> Any:
    """A sha256 object fed with a checkpoint folder's content files (name and content), to extend with what else
    keys a cache entry derived from it."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(hf_dir).iterdir() if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES):
        if path.name in _NOT_CONTENT:
            continue
        h.update(f"{path.name}:{sha256_file(path)}\n".encode())
    return h


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to a temp file in the same dir, fsync, then rename: readers see old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def locked(entry: Path) -> Iterator[None]:
    """Hold `<entry>.lock` (filelock) while building or publishing `entry`."""
    from filelock import FileLock

    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry) + ".lock"):
        yield


def publish_dir(entry: Path, build: Callable[[Path], None], done: Callable[[Path], bool]) -> bool:
    """Make the cache folder `entry` unless `done(entry)` already holds: `build(tmp)` fills `<entry>.partial`, which
    is then renamed into place. Returns True when it was taken from the cache. The check and the build run under
    the entry's lock, so concurrent jobs build it once."""
    with locked(entry):
        if done(entry):
            return True
        tmp = entry.with_name(entry.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            build(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(tmp, entry)
        return False


def read_jsonl_cache(path: Path, field: str = "raw") -> dict[int, dict[str, Any]]:
    """Cached answers (`field` holds the output) by row index `i`; a line cut off by a crash is ignored (that input
    is asked again)."""
    out: dict[int, dict[str, Any]] = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("i"), int) and field in row:
            out[row["i"]] = row
    return out


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line and flush it: each answer survives a crash of the job that asked for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
