"""Files generated from the code (docs/config-reference.md, run.schema.json, docs/run-record.md's fields): the one
`--check` / `--write` step their generators share, so a doc that can drift is compared the same way everywhere."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path


def sync(targets: dict[Path, str], *, write: bool, source: str, command: str) -> int:
    """Rewrite the stale targets (`write`), or print each one's diff against `source` and say which `command`
    regenerates them; 1 when a target was stale and not rewritten, else 0."""
    stale = []
    for path, text in targets.items():
        old = path.read_text() if path.exists() else ""
        if old == text:
            continue
        if write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            continue
        stale.append(path)
        sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True), str(path), source))
    if stale:
        print(f"\n{', '.join(map(str, stale))} out of date: run `{command}`", file=sys.stderr)
        return 1
    return 0
