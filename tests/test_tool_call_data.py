"""Checks on the shipped ``tool-call`` dataset.

The JSONL files are generated, not hand-edited, so the first test pins them to the generator: if either side
changes without the other, scores recorded against the old files would silently stop being comparable. The rest
check what the task config and the data card promise: every gold call is executable against the schemas offered
with it (a gold that fails its own schema would punish a correct model), offers fit the training window, every
tool is a target in every split, and no request appears twice.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from datagen import tool_call as gen
from tests import data_checks as checks

DATA_DIR = gen.DEFAULT_OUT_DIR
SPLITS = tuple(gen.SPLIT_SIZES)
# Fewest examples per tool per split: enough that a per-tool score is not one example's luck.
MIN_PER_TOOL = {"train": 20, "validation": 2, "test": 6}

_TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def _target_name(row: dict) -> str:
    return row["target"]["name"]


def schema_problems(args: Any, parameters: dict[str, Any]) -> list[str]:
    """A small, independent validator for the JSON-Schema subset the tools use (kept separate from
    ``slmexp.tasks.metrics`` so a bug there cannot hide a bad gold here)."""
    if not isinstance(args, dict):
        return ["arguments is not an object"]
    props = parameters["properties"]
    problems = [f"missing {k!r}" for k in parameters["required"] if k not in args]
    for key, value in args.items():
        spec = props.get(key)
        if spec is None:
            problems.append(f"unknown {key!r}")
        elif not _TYPE_CHECKS[spec["type"]](value):
            problems.append(f"{key!r} should be {spec['type']}, got {type(value).__name__}")
        elif "enum" in spec and value not in spec["enum"]:
            problems.append(f"{key!r}={value!r} not in enum")
        elif "YYYY-MM-DD" in spec.get("description", ""):
            try:
                ok = dt.date.fromisoformat(value).isoformat() == value
            except ValueError:
                ok = False
            if not ok:
                problems.append(f"{key!r}={value!r} is not an ISO date")
        elif "HH:MM" in spec.get("description", "") and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            problems.append(f"{key!r}={value!r} is not a 24-hour HH:MM time")
    return problems


def test_validator_catches_bad_arguments() -> None:
    params = gen.TOOLS_BY_NAME["set_lights"].schema()["parameters"]
    assert schema_problems({"room": "kitchen", "on": True, "brightness": 40}, params) == []
    assert schema_problems({"room": "kitchen"}, params)  # missing required
    assert schema_problems({"room": "kitchen", "on": 1}, params)  # int is not boolean
    assert schema_problems({"room": "kitchen", "on": True, "brightness": 40.0}, params)  # float is not integer
    assert schema_problems({"room": "kitchen", "on": True, "colour": "red"}, params)  # unknown key
    params = gen.TOOLS_BY_NAME["get_forecast"].schema()["parameters"]
    assert schema_problems({"city": "Oslo", "date": "2025-02-30"}, params)
    assert schema_problems({"city": "Oslo", "date": "2025-03-01", "unit": "kelvin"}, params)


@pytest.fixture(scope="module")
def shipped() -> dict[str, list[dict]]:
    return checks.read_splits(DATA_DIR, SPLITS)


def test_regenerating_with_default_seed_is_byte_identical(tmp_path: Path) -> None:
    checks.assert_regenerates_byte_identical(gen, tmp_path)


def test_generate_matches_files_and_depends_on_seed(shipped: dict[str, list[dict]]) -> None:
    checks.assert_generate_matches_and_depends_on_seed(gen, shipped)


def test_file_format(shipped: dict[str, list[dict]]) -> None:
    checks.assert_file_format(DATA_DIR, shipped, ["id", "text", "tools", "target"], "tc")
    for rows in shipped.values():
        for row in rows:
            assert isinstance(row["text"], str) and row["text"].strip() == row["text"] and row["text"]
            assert list(row["target"]) == ["name", "arguments"]


def test_library_is_large_and_confusable() -> None:
    assert len(gen.TOOLS) >= 24
    assert len(set(gen.TOOL_NAMES)) == len(gen.TOOLS)
    for tool in gen.TOOLS:
        assert len(tool.templates) >= 6, tool.name
        assert tool.confusable and all(name in gen.TOOLS_BY_NAME for name in tool.confusable), tool.name
        schema = tool.schema()
        assert list(schema) == ["name", "description", "parameters"]
        assert list(schema["parameters"]) == ["type", "properties", "required"]
        assert len(json.dumps(schema, separators=(",", ":"), ensure_ascii=False)) <= 400, tool.name
        assert all(spec["type"] in _TYPE_CHECKS for spec in schema["parameters"]["properties"].values())


def test_split_sizes_and_every_tool_is_a_target_everywhere(shipped: dict[str, list[dict]]) -> None:
    all_counts = checks.assert_sizes_and_balance(shipped, gen.SPLIT_SIZES, gen.TOOL_NAMES, _target_name)
    for split, counts in all_counts.items():
        assert min(counts.values()) >= MIN_PER_TOOL[split], f"{split}: {counts}"
        assert max(counts.values()) - min(counts.values()) <= 1, f"{split}: {counts}"


def test_offered_tools(shipped: dict[str, list[dict]]) -> None:
    with_confusable = 0
    total = 0
    for rows in shipped.values():
        for row in rows:
            names = [tool["name"] for tool in row["tools"]]
            assert gen.MIN_TOOLS <= len(names) <= gen.MAX_TOOLS, row["id"]
            assert len(set(names)) == len(names), row["id"]
            assert row["target"]["name"] in names, row["id"]
            assert all(tool == gen.TOOLS_BY_NAME[tool["name"]].schema() for tool in row["tools"]), row["id"]
            assert len(json.dumps(row["tools"], ensure_ascii=False)) <= gen.TOOLS_JSON_MAX, row["id"]
            confusable = gen.TOOLS_BY_NAME[row["target"]["name"]].confusable
            with_confusable += any(name in confusable for name in names)
            total += 1
    assert with_confusable / total >= 0.7, "distractors should usually include a confusable tool"


def test_gold_calls_validate_against_their_schema(shipped: dict[str, list[dict]]) -> None:
    for rows in shipped.values():
        for row in rows:
            tool = {t["name"]: t for t in row["tools"]}[row["target"]["name"]]
            args = row["target"]["arguments"]
            problems = schema_problems(args, tool["parameters"])
            assert not problems, f"{row['id']}: {problems}"
            order = [k for k in tool["parameters"]["properties"] if k in args]
            assert list(args) == order, f"{row['id']}: arguments not in schema property order"


def test_gold_strings_are_grounded_in_the_request(shipped: dict[str, list[dict]]) -> None:
    """Free-text arguments are copied from the request; only normalised ones (enum, date, time, currency code)
    may differ from the words used, so a model never has to guess a spelling."""
    for rows in shipped.values():
        for row in rows:
            tool = {t["name"]: t for t in row["tools"]}[row["target"]["name"]]
            for key, value in row["target"]["arguments"].items():
                spec = tool["parameters"]["properties"][key]
                normalised = "enum" in spec or any(
                    fmt in spec.get("description", "") for fmt in ("YYYY-MM-DD", "HH:MM", "ISO 4217"))
                if spec["type"] == "string" and not normalised:
                    assert value in row["text"], f"{row['id']}: {key}={value!r} not in {row['text']!r}"


def test_no_duplicate_requests_within_or_across_splits(shipped: dict[str, list[dict]]) -> None:
    for rows in shipped.values():
        for row in rows:
            assert gen.normalise(row["text"]) == " ".join(re.sub(r"[^\w\s]", " ", row["text"].lower()).split())
    checks.assert_no_duplicates(shipped, lambda row: gen.normalise(row["text"]))


def test_data_card_numbers_match_the_files(shipped: dict[str, list[dict]]) -> None:
    checks.assert_data_card_matches(DATA_DIR, shipped, gen.TOOL_NAMES, _target_name, "tool")
