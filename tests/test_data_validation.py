"""A task's JSONL files and labels are checked before any model loads, each mistake answered by a line naming the
file and line (or the config key), every bad line of a file at once (slmexp.tasks.jsonl).

Most cases call `load_task` directly on the shipped `task=jsonl` template (no Hydra composition, milliseconds);
one runs the real CLI to prove a non-UTF-8 file ends in one line and exit status 2, not a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf

from slmexp.config import CONF_DIR
from slmexp.errors import ConfigError, DataError
from slmexp.tasks import load_task
from slmexp.tasks.jsonl import MAX_LISTED

REPO = Path(__file__).resolve().parents[1]
QA = {"text": "When does the store open?", "target": "9 am"}
INTENT = {"text": "where is my parcel", "label": "order_status"}
LABELS = ["order_status", "refund"]


def _task(path: Path, kind: str = "qa", labels: Any = None, **fields: str) -> DictConfig:
    """`conf/task/jsonl.yaml` with the test split at `path` (a classification task maps `label` and has labels)."""
    cfg = OmegaConf.load(CONF_DIR / "task" / "jsonl.yaml")
    extra: dict[str, Any] = {"kind": kind, "data": {"test": str(path)}, "fields": fields}
    if kind == "classification":
        extra["fields"] = {"label": "label", **fields}
        extra["labels"] = LABELS if labels is None else labels
    return OmegaConf.merge(cfg, extra)


def _lines(*rows: Any) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows).encode()


# --- files that load ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "raw"), [
    ("utf8-bom", b"\xef\xbb\xbf" + _lines(QA, QA)),
    ("crlf", _lines(QA, QA).replace(b"\n", b"\r\n")),
    ("blank-lines", b"\n" + _lines(QA) + b"   \n" + _lines(QA)),
    # U+2028 and U+0085 may stand raw in a JSON string; they do not end a line (str.splitlines would split there)
    ("unicode-line-separators", _lines({**QA, "text": "open?\u2028when\u0085exactly"}, QA)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_good_files_load(tmp_path, name, raw) -> None:
    path = tmp_path / "test.jsonl"
    path.write_bytes(raw)
    rows = load_task(_task(path), ["test"]).splits["test"]
    assert len(rows) == 2
    assert next(iter(rows[0])) == "text"  # a BOM is not part of the first key ('\ufefftext')
    assert all(r["target"] == "9 am" for r in rows)


def test_the_first_line_after_a_bom_is_line_1(tmp_path) -> None:
    path = tmp_path / "test.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _lines({"text": None, "target": "x"}))
    with pytest.raises(DataError, match=rf"^{path}:1: field 'text'"):
        load_task(_task(path), ["test"])


# --- one line per mistake -------------------------------------------------------------------------------------------

BAD: list[tuple[str, str, bytes, dict[str, Any], type[Exception], str]] = [
    # (id, kind, file bytes, task overrides, error, the message after the file path, or the whole message)
    ("latin-1", "qa", _lines(QA) + '{"text": "caf\u00e9?", "target": "x"}\n'.encode("latin-1"), {}, DataError,
     ":2: not UTF-8: byte 0xe9 at byte 14 of the line (file offset 69); save it as UTF-8"),
    ("utf-16-with-bom", "qa", _lines(QA).decode().encode("utf-16"), {}, DataError,
     ": not UTF-8: the file starts with a UTF-16 (or UTF-32) byte-order mark"),
    ("utf-16-without-bom", "qa", _lines(QA).decode().encode("utf-16-le"), {}, DataError,
     ":1: a NUL byte, so UTF-16 or binary, not UTF-8: byte 0x00 at byte 2 of the line"),
    ("malformed-json", "qa", _lines(QA, '{"text": "x", "target": '), {}, DataError,
     ":2: malformed JSON (Expecting value at column 25) [task.data.test]"),
    ("bom-mid-file", "qa", _lines(QA) + b"\xef\xbb\xbf" + _lines(QA), {}, DataError,
     ":2: malformed JSON (Unexpected UTF-8 BOM"),
    ("not-an-object", "qa", _lines(QA, ["text", "target"]), {}, DataError,
     ":2: expected a JSON object, got list [task.data.test]"),
    ("null-text", "qa", _lines(QA, {"text": None, "target": "x"}), {}, DataError,
     ":2: field 'text' (task.fields.text) must be a non-empty string, got None"),
    ("number-text", "classification", _lines(INTENT, {"text": 42, "label": "refund"}), {}, DataError,
     ":2: field 'text' (task.fields.text) must be a non-empty string, got 42"),
    ("missing-field", "qa", _lines(QA, {"target": "x"}), {}, DataError,
     ":2: missing field 'text' (task.fields.text)"),
    ("gold-not-a-label", "classification", _lines(INTENT, {"text": "hi", "label": "greet"}), {}, DataError,
     ":2: field 'label' (task.fields.label) label 'greet' is not in task.labels (order_status, refund)"),
    ("empty-gold", "classification", _lines(INTENT, {"text": "hi", "label": " "}), {}, DataError,
     ":2: field 'label' (task.fields.label) must be a non-empty string, got ' '"),
    ("two-problems-one-line", "classification", _lines(INTENT, {"text": None, "label": "greet"}), {}, DataError,
     ":2: field 'text' (task.fields.text) must be a non-empty string, got None; field 'label' (task.fields.label) "
     "label 'greet' is not in task.labels"),
    ("empty-label-list", "classification", _lines(INTENT), {"labels": []}, ConfigError,
     "task.labels: is empty: a classification task needs a non-empty label list or mapping"),
    ("empty-label-mapping", "classification", _lines(INTENT), {"labels": {}}, ConfigError,
     "task.labels: is empty"),
    ("empty-string-label", "classification", _lines(INTENT), {"labels": ["order_status", ""]}, ConfigError,
     "task.labels: label '' has no letters or digits"),
    ("null-label", "classification", _lines(INTENT), {"labels": ["order_status", None]}, ConfigError,
     "task.labels: item 1 is None: each label is a string"),
    ("labels-equal-once-normalised", "classification", _lines(INTENT),
     {"labels": {"Order status": "where it is", "order-status!": "same"}}, ConfigError,
     "task.labels: labels 'Order status' and 'order-status!' are the same label once normalised ('order_status'"),
    ("role-not-mapped", "qa", _lines(QA), {"fields.target": None}, ConfigError,
     "task.fields.target: a qa task maps its 'target' role to a JSONL field; set it"),
]


@pytest.mark.parametrize(("cid", "kind", "raw", "over", "error", "message"), BAD, ids=[c[0] for c in BAD])
def test_each_mistake_is_one_line_naming_file_and_line(tmp_path, cid, kind, raw, over, error, message) -> None:
    path = tmp_path / "test.jsonl"
    path.write_bytes(raw)
    cfg = _task(path, kind)
    for key, value in over.items():  # set, not merged: a mapping merged onto the label list would not replace it
        OmegaConf.update(cfg, key, value, merge=False)
    with pytest.raises(error) as err:
        load_task(cfg, ["test"])
    text = str(err.value)
    assert "\n" not in text, text
    expected = message if error is ConfigError else f"{path}{message}"
    assert text.startswith(expected), text


def test_a_files_bad_lines_are_listed_together(tmp_path) -> None:
    """Every bad line of a file in one error: a header naming file and key, the first MAX_LISTED, then a count."""
    path = tmp_path / "test.jsonl"
    bad = [{"text": None, "target": "x"}] * 12
    path.write_bytes(_lines(QA, "{oops", *bad, QA, {"text": "q", "target": []}))
    with pytest.raises(DataError) as err:
        load_task(_task(path), ["test"])
    lines = str(err.value).splitlines()
    assert lines[0] == f"{path}: 14 bad lines [task.data.test]"
    assert lines[1] == f"  {path}:2: malformed JSON (Expecting property name enclosed in double quotes at column 2) " \
                       "[task.data.test]"
    assert lines[2] == f"  {path}:3: field 'text' (task.fields.text) must be a non-empty string, got None"
    assert len(lines) == 1 + MAX_LISTED + 1 and lines[-1] == "  ... and 4 more"


def test_a_field_missing_from_every_row_is_one_line(tmp_path) -> None:
    """A field name that no row has is a mapping mistake: one line at the first row, not one per row."""
    path = tmp_path / "test.jsonl"
    path.write_bytes(_lines(*[QA] * 30))
    with pytest.raises(DataError) as err:
        load_task(_task(path, text="question"), ["test"])
    assert str(err.value) == f"{path}:1: missing field 'question' (task.fields.text)"


def test_the_first_bad_split_stops_the_load(tmp_path) -> None:
    """A split is checked whole before the next is read; the error names the split's key."""
    test, train = tmp_path / "test.jsonl", tmp_path / "train.jsonl"
    test.write_bytes(_lines(QA))
    train.write_bytes(b"")
    cfg = OmegaConf.merge(_task(test), {"data": {"train": str(train)}})
    with pytest.raises(DataError, match=rf"^{train}: no rows \[task\.data\.train\]$"):
        load_task(cfg, ["test", "train"])


def test_a_non_utf8_file_through_the_cli_is_one_line_before_any_model(tmp_path) -> None:
    """The real command: exit status 2, one `slmexp: error:` line naming the file and line, no traceback, and the
    run record failed in its validate stage with no model resolved."""
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(_lines(QA) + '{"text": "Öffnungszeiten?", "target": "9"}\n'.encode("latin-1"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    env.pop("HYDRA_FULL_ERROR", None)
    out = subprocess.run([sys.executable, "-m", "slmexp", "task=jsonl", f"task.data.test={path}", "eval.limit=2",
                          f"paths.output_dir={tmp_path / 'out'}", f"hydra.run.dir={tmp_path / 'run'}"],
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert "Traceback" not in out.stderr + out.stdout, out.stderr[-3000:]
    assert out.returncode == 2, out.stderr[-3000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert lines == [f"slmexp: error: {path}:2: not UTF-8: byte 0xd6 at byte 11 of the line (file offset 66); "
                     "save it as UTF-8 (a byte-order mark is accepted) [task.data.test]"], out.stderr
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["run"]["status"] == "failed" and rec["model"] is None
    assert rec["run"]["error"]["stage"] == "validate"
