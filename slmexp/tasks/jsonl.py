"""A task's JSONL files, read and checked before any model loads: encoding, JSON per line, every row's fields.

Why here and why all at once: a bad row found after minutes of model loading (or one that crashes deep inside
lm-eval with a traceback) costs a run; found here it costs seconds. And, as with config errors, a file's problems are
reported together (the first `MAX_LISTED` bad lines, one line each, then how many more) so the user fixes them in one
pass instead of one rerun per line.

The rules, per file:
- bytes: UTF-8, a leading byte-order mark accepted (Windows editors write one); anything else (Latin-1, UTF-16) is
  one line naming the file, the line and the byte that is not UTF-8;
- lines end in `\\n`, `\\r\\n` or `\\r` (the only breaks JSON forbids inside a string: U+2028 and U+0085 may sit in a
  text and do not end a line); blank lines are skipped;
- each line is one JSON object; each row has every field its kind's roles map (`task.fields.<role>`), valid as the
  kind's record says (`slmexp.tasks.kinds`: non-empty text, a gold label among `task.labels`, ...).
A field missing from every row is a mapping mistake, not a data one: it is reported once, at the first row.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from slmexp.cache import LINE_BREAK
from slmexp.errors import DataError
from slmexp.tasks.kinds import TaskKind

MAX_LISTED = 10  # bad lines listed in one error; the rest are counted
_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")

Problem = tuple[int, str]  # (line number, what is wrong with it)


def decode(raw: bytes, path: Path, key: str) -> str:
    """The file's text: UTF-8, a leading BOM dropped. Anything else raises DataError, one line naming the file, the
    line and the byte where decoding failed (not a UnicodeDecodeError traceback)."""
    hint = f"; save it as UTF-8 (a byte-order mark is accepted) [{key}]"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(f"{path}: not UTF-8: the file starts with a UTF-16 (or UTF-32) byte-order mark{hint}")
    start = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        text = raw[start:].decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(_at_byte(raw, start + e.start, path, "not UTF-8") + hint) from None
    if "\x00" in text:  # valid UTF-8, but no JSON text holds a NUL: UTF-16 without a BOM, or a binary file
        raise DataError(_at_byte(raw, raw.index(b"\x00"), path, "a NUL byte, so UTF-16 or binary, not UTF-8") + hint)
    return text


def _at_byte(raw: bytes, offset: int, path: Path, what: str) -> str:
    """`file:line: <what>: byte 0x.. at byte C of the line (file offset O)`, lines counted as `parse` counts them."""
    breaks = list(_LINE_BREAK_BYTES.finditer(raw, 0, offset))
    column = offset - (breaks[-1].end() if breaks else 0) + 1
    return (f"{path}:{len(breaks) + 1}: {what}: byte 0x{raw[offset]:02x} at byte {column} of the line "
            f"(file offset {offset})")


def parse(text: str, key: str) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The JSON object on each non-blank line (its number kept in `_line`), and the lines that are not one."""
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for lineno, line in enumerate(LINE_BREAK.split(text), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append((lineno, f"malformed JSON ({e.msg} at column {e.colno}) [{key}]"))
            continue
        if not isinstance(row, dict):
            problems.append((lineno, f"expected a JSON object, got {type(row).__name__} [{key}]"))
            continue
        row["_line"] = lineno
        rows.append(row)
    return rows, problems


def read(path: Path, key: str) -> tuple[list[dict[str, Any]], str, list[Problem]]:
    """Rows, the file's sha256 and the lines that did not parse. An encoding error raises at once: past the first
    undecodable byte no line number can be trusted. The caller checks the file exists (a config error)."""
    raw = Path(path).read_bytes()
    rows, problems = parse(decode(raw, path, key), key)
    return rows, hashlib.sha256(raw).hexdigest(), problems


def row_problems(kind: TaskKind, fields: Mapping[str, Any], labels: set[str],
                 rows: Sequence[dict[str, Any]]) -> list[Problem]:
    """Every row's bad fields, one problem per row (its fields' reasons joined by `; `), checked by the kind's
    record. The row-wide check (`check_row`) runs only on a row whose fields all passed: it reads them."""
    mapped = {role: fields.get(role) for role in kind.roles if fields.get(role)}
    absent_everywhere = {role for role, name in mapped.items() if rows and all(name not in row for row in rows)}
    problems: list[Problem] = []
    for i, row in enumerate(rows):
        why: list[str] = []
        for role, name in mapped.items():
            if name not in row:
                if i == 0 or role not in absent_everywhere:
                    why.append(f"missing field {name!r} (task.fields.{role})")
            elif reason := kind.roles[role](row[name], labels):
                why.append(f"field {name!r} (task.fields.{role}) {reason}")
        if not why and kind.check_row is not None and (reason := kind.check_row(row, fields)):
            why.append(reason)
        if why:
            problems.append((row["_line"], "; ".join(why)))
    return problems


def data_error(path: Path, key: str, problems: Sequence[Problem]) -> DataError:
    """One DataError for a file's problems: a single one as `file:line: why` (one line); several as a header naming
    the file and its key, then the first `MAX_LISTED` as `file:line: why`, one per line, then `... and N more`."""
    ordered = sorted(problems)
    lines = [f"{path}:{lineno}: {why}" for lineno, why in ordered[:MAX_LISTED]]
    if len(ordered) == 1:
        return DataError(lines[0])
    more = [f"  ... and {len(ordered) - MAX_LISTED} more"] if len(ordered) > MAX_LISTED else []
    head = f"{path}: {len(ordered)} bad lines [{key}]"
    return DataError("\n".join([head, *(f"  {line}" for line in lines), *more]))
