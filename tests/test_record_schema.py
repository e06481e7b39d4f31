"""The run record's schema (slmexp.record_types -> run.schema.json): the committed files are the generated ones, a
fresh run.json of a real tiny job (finished, failed, and as written when it starts) conforms to it, the fields the
comparison and the speed stage read keep their names, and a record of schema 1 still loads and reports."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from slmexp import record_schema
from slmexp.record import SCHEMA, RunRecord, load
from tests.conftest import compose, tiny_overrides_for

ROOT = Path(__file__).resolve().parent.parent

# What the comparison (slmexp.report) and the speed stage read: names and meaning are a contract across versions.
READ_FIELDS = ("metrics.values", "metrics.primary", "speed.ttft_ms.p50", "speed.ttft_ms.p95", "speed.latency_ms.p50",
               "speed.latency_ms.p95", "speed.stop", "speed.max_new_tokens", "quantization.kind",
               "quantization.path", "train.epochs", "provenance.seed")


@pytest.fixture(scope="module")
def fresh(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished and one failed (missing data file) tiny job, run once for this module: `<tmp>/finished`,
    `<tmp>/failed`."""
    from slmexp.errors import ConfigError
    from slmexp.pipeline import run_job

    tmp = tmp_path_factory.mktemp("record-schema")
    base = tiny_overrides_for(tiny_model_dir, tmp)
    run_job(compose(base), run_dir=tmp / "finished")
    with pytest.raises(ConfigError):
        run_job(compose([*base, "task.data.test=/missing.jsonl"]), run_dir=tmp / "failed")
    return tmp


def test_committed_schema_files_are_generated_ones() -> None:
    for path, text in record_schema.targets().items():
        assert path.exists() and path.read_text() == text, (
            f"{path.relative_to(ROOT)} differs from slmexp/record_types: run `python -m slmexp.record_schema "
            "--write` (`--check` shows the diff)")


def test_check_and_write_exit_status(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / record_schema.DOC_PATH, tmp_path / record_schema.DOC_PATH)
    assert record_schema.main(["--write", "--root", str(tmp_path)]) == 0
    assert record_schema.main(["--check", "--root", str(tmp_path)]) == 0
    schema = tmp_path / "slmexp" / "run.schema.json"
    schema.write_text(schema.read_text().replace('"integer"', '"string"', 1))
    assert record_schema.main(["--check", "--root", str(tmp_path)]) == 1


def test_the_schema_is_draft_2020_12_of_this_version() -> None:
    from jsonschema import Draft202012Validator

    schema = record_schema.shipped_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f":{SCHEMA}") and schema["properties"]["schema"]["const"] == SCHEMA == 2
    assert schema["$defs"]["SpeedBlock"]["properties"]["stop"]["description"]  # field comments reach the schema


def test_the_schema_file_ships_in_the_wheel() -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        from pip._vendor import tomli as tomllib
    from fnmatch import fnmatch

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["slmexp"]
    assert any(fnmatch("run.schema.json", p) for p in patterns), patterns


def _property(schema: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The schema of a dotted record path (through $ref and `X | null`), or None when it is not declared."""
    node: dict[str, Any] = schema
    for key in path.split("."):
        while "properties" not in node:
            refs = [n for n in node.get("anyOf", []) if "$ref" in n] or ([node] if "$ref" in node else [])
            if not refs:
                return None
            node = schema["$defs"][refs[0]["$ref"].rsplit("/", 1)[-1]]
        if key not in node["properties"]:
            return None
        node = node["properties"][key]
    return node


@pytest.mark.parametrize("path", READ_FIELDS)
def test_fields_the_comparison_reads_are_declared(path: str) -> None:
    assert _property(record_schema.shipped_schema(), path) is not None, path


def test_finished_record_conforms(fresh: Path) -> None:
    rec = load(fresh / "finished")
    assert rec["schema"] == SCHEMA and rec["run"]["status"] == "finished"
    assert rec["speed"]["ttft_ms"]["p50"] is not None and rec["cost"] is not None  # the blocks were really there
    assert record_schema.errors(rec) == []


def test_failed_record_conforms(fresh: Path) -> None:
    rec = load(fresh / "failed")
    assert rec["run"]["status"] == "failed" and rec["run"]["error"]["stage"] == "validate"
    assert record_schema.errors(rec) == []


def test_record_as_written_at_start_conforms(tmp_path: Path) -> None:
    rec = RunRecord.start(tmp_path, name="x", sweep=None, job=None, config={"seed": 1})
    assert load(tmp_path)["run"]["status"] == "running"
    assert record_schema.errors(load(rec.path)) == []


def test_a_mistyped_or_missing_field_is_caught(fresh: Path) -> None:
    rec = load(fresh / "finished")
    bad = copy.deepcopy(rec)
    bad["speed"]["ttft_ms"]["p50"] = "fast"
    bad["run"]["status"] = "done"
    del bad["provenance"]
    found = record_schema.errors(bad)
    assert any(e.startswith("speed.ttft_ms.p50:") for e in found), found
    assert any(e.startswith("run.status:") for e in found), found
    assert any("'provenance' is a required property" in e for e in found), found
    assert record_schema.errors({**rec, "schema": 1}) != []  # the file describes this version only


def _table(root: Path) -> Any:
    from slmexp.report.collect import collect
    from slmexp.report.table import build_table

    records = collect(root)
    assert len(records) == 1
    return build_table(records).drop(columns="run_dirs")


def test_a_schema_1_record_still_loads_and_reports(fresh: Path, tmp_path: Path) -> None:
    import pandas as pd

    for version in (1, SCHEMA):
        run_dir = tmp_path / f"v{version}" / "0"
        shutil.copytree(fresh / "finished", run_dir)
        rec = load(run_dir)
        rec["schema"] = version
        (run_dir / "run.json").write_text(json.dumps(rec))
    old, new = _table(tmp_path / "v1"), _table(tmp_path / f"v{SCHEMA}")
    pd.testing.assert_frame_equal(old, new)  # the version alone changes nothing a reader shows
    row = old.iloc[0]
    assert row["status"] == "finished" and row["model"] == "tiny-llama"
    assert pd.notna(row["accuracy"]) and pd.notna(row["latency_p50_ms"])
