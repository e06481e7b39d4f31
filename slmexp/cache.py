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
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Files of a HF checkpoint folder that determine its content (written metadata such as our markers excluded).
CHECKPOINT_SUFFIXES = (".safetensors", ".json", ".jinja", ".model", ".txt")
_NOT_CONTENT = ("slmexp_source.json", "slmexp_export.json", "model_config.json", ".slmexp_manifest.json")


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


MANIFEST = ".slmexp_manifest.json"  # {relative path: {"sha256", "bytes"}} of every file of a published entry


def manifest(entry: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file under `entry` (the manifest itself excluded), by relative path."""
    out = {}
    for path in sorted(p for p in Path(entry).rglob("*") if p.is_file() and p.name != MANIFEST):
        out[str(path.relative_to(entry))] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return out


def safetensors_intact(path: Path) -> str | None:
    """Why a safetensors file is cut or corrupt (header length, JSON header, data size), or None when it is whole.
    Reads only the header: cheap enough to check entries published before manifests existed."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or 8 + n > size:
                return f"header length {n} does not fit in {size} bytes"
            header = json.loads(f.read(n))
    except (OSError, ValueError) as e:
        return f"unreadable header ({e})"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    expected = 8 + n + max(ends, default=0)
    return None if expected == size else f"{size} bytes on disk, header says {expected}"


def verify_entry(entry: Path) -> str | None:
    """Why the published cache folder `entry` must not be used (a file missing, cut or changed since it was
    published), or None when its content matches its manifest. An entry from before manifests is checked by its
    safetensors headers and, when whole, given a manifest (so later reads check every byte)."""
    path = Path(entry) / MANIFEST
    if not path.is_file():
        for st in sorted(Path(entry).rglob("*.safetensors")):
            why = safetensors_intact(st)
            if why:
                return f"{st.name}: {why}"
        write_json_atomic(path, manifest(entry))
        return None
    try:
        want = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return f"{MANIFEST} unreadable ({e})"
    for rel, meta in want.items():
        f = Path(entry) / rel
        if not f.is_file():
            return f"{rel} is missing"
        if f.stat().st_size != meta.get("bytes"):
            return f"{rel}: {f.stat().st_size} bytes, published with {meta.get('bytes')}"
        if sha256_file(f) != meta.get("sha256"):
            return f"{rel}: sha256 differs from the one published"
    return None


def publish_dir(entry: Path, build: Callable[[Path], None], done: Callable[[Path], bool]) -> bool:
    """Make the cache folder `entry` unless it is already there, `done(entry)` holds and its content verifies
    against the manifest written when it was published. `build(tmp)` fills a fresh temp folder next to it, which
    gets its manifest and is then renamed into place. Returns True when it was taken from the cache.

    The check and the build run under the entry's lock, so concurrent jobs (a parallel sweep) build it once and the
    second one finds the first's result; temp folders left by a killed job are removed by the next lock holder, and
    an entry that fails verification (a truncated safetensors file) is rebuilt, never loaded.
    """
    import logging

    with locked(entry):
        if entry.exists() and done(entry):
            why = verify_entry(entry)
            if why is None:
                return True
            logging.getLogger("slmexp").warning("cache entry %s failed verification (%s): rebuilding it", entry, why)
        for stale in entry.parent.glob(entry.name + ".partial*"):  # a killed builder's leftovers
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=entry.name + ".partial-"))
        try:
            build(tmp)
            write_json_atomic(tmp / MANIFEST, manifest(tmp))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if entry.exists():  # a stale or corrupt entry: move it aside first (rename is atomic, rmtree is not)
            old = Path(tempfile.mkdtemp(dir=entry.parent, prefix=entry.name + ".partial-old-"))
            os.replace(entry, old / "entry")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, entry)
        return False


# The only line breaks JSON text may contain outside strings. str.splitlines() also breaks at U+2028, U+0085 and a
# few more, which our files hold raw inside strings (written with ensure_ascii=False): one model answer containing
# U+2028 would cut its line in two.
LINE_BREAK = re.compile(r"\r\n|\r|\n")


def json_lines(text: str) -> list[str]:
    """The non-blank lines of a JSONL text, split where JSON allows a line to end."""
    return [line for line in LINE_BREAK.split(text) if line.strip()]


def read_jsonl(path: Path) -> list[Any]:
    """Every row of a JSONL file slmexp wrote (samples, generations): UTF-8, one JSON value per line."""
    return [json.loads(line) for line in json_lines(Path(path).read_text(encoding="utf-8"))]


def read_jsonl_cache(path: Path, field: str = "raw") -> dict[int, dict[str, Any]]:
    """Cached answers (`field` holds the output) by row index `i`; a line cut off by a crash is ignored (that input
    is asked again)."""
    out: dict[int, dict[str, Any]] = {}
    if not path.is_file():
        return out
    for line in json_lines(path.read_text(encoding="utf-8")):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("i"), int) and field in row:
            out[row["i"]] = row
    return out


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line, flushed and fsynced: each answer survives a crash of the job that asked for it.

    A last line cut off by a killed job (no newline at the end) is cut away first, so the new answer starts on its
    own line instead of being glued to the broken one (and lost with it). Appenders serialise on `<path>.lock`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path), open(path, "a+b") as f:
        _repair_tail(f)
        f.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def _repair_tail(f: Any) -> None:
    """Truncate an append-mode binary file after its last newline when its last line is unfinished."""
    end = f.seek(0, os.SEEK_END)
    if end == 0:
        return
    f.seek(end - 1)
    if f.read(1) == b"\n":
        return
    pos = end
    while pos > 0:  # scan back in 64 KiB blocks for the last complete line
        start = max(0, pos - (1 << 16))
        f.seek(start)
        block = f.read(pos - start)
        i = block.rfind(b"\n")
        if i >= 0:
            f.truncate(start + i + 1)
            return
        pos = start
    f.truncate(0)
