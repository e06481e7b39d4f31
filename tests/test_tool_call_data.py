"""Checks on the shipped ``tool-call`` dataset.

The JSONL files are generated, not hand-edited, so the first test pins them to the generator: if either side
changes without the other, scores recorded against the old files would silently stop being comparable. The rest
check what the task config and the data card promise: every gold call is executable against the schemas offered
with it (a gold that fails its own schema would punish a correct model), offers fit the training window, every
tool is a target in every split, and no request appears twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from slmexp.tasks.generators import tool_call as gen

DATA_DIR = gen.DEFAULT_OUT_DIR
SPLITS = tuple(gen.SPLIT_SIZES)
REGENERATE = "python -m slmexp.tasks.generators.tool_call"
# Fewest examples per tool per split: enough that a per-tool score is not one example's luck.
MIN_PER_TOOL = {"train": 20, "validation": 2, "test": 6}

_TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def _read(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


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
    return {split: _read(DATA_DIR / f"{split}.jsonl") for split in SPLITS}


def test_regenerating_with_default_seed_is_byte_identical(tmp_path: Path) -> None:
    written = gen.write(tmp_path, gen.DEFAULT_SEED)
    assert sorted(written) == sorted(SPLITS)
    for split in SPLITS:
        fresh = (tmp_path / f"{split}.jsonl").read_bytes()
        committed = (DATA_DIR / f"{split}.jsonl").read_bytes()
        assert fresh == committed, f"{split}.jsonl is stale or hand-edited; rerun `{REGENERATE}`"


def test_generate_matches_files_and_depends_on_seed(shipped: dict[str, list[dict]]) -> None:
    assert gen.generate() == shipped
    assert gen.generate(seed=gen.DEFAULT_SEED + 1)["test"] != shipped["test"]


def test_file_format(shipped: dict[str, list[dict]]) -> None:
    for split in SPLITS:
        raw = (DATA_DIR / f"{split}.jsonl").read_bytes()
        assert raw.endswith(b"\n") and b"\r" not in raw
        for i, row in enumerate(shipped[split], start=1):
            assert list(row) == ["id", "text", "tools", "target"]
            assert row["id"] == f"tc-{split}-{i:04d}"
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
    for split, size in gen.SPLIT_SIZES.items():
        rows = shipped[split]
        assert len(rows) == size
        counts = Counter(row["target"]["name"] for row in rows)
        assert set(counts) == set(gen.TOOL_NAMES), f"{split}: some tool is never the target"
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
    where: dict[str, str] = {}
    for split in SPLITS:
        for row in shipped[split]:
            key = gen.normalise(row["text"])
            assert key == " ".join(re.sub(r"[^\w\s]", " ", row["text"].lower()).split())
            assert key not in where, f"{row['id']} duplicates a request in {where.get(key)}"
            where[key] = split


def test_data_card_numbers_match_the_files(shipped: dict[str, list[dict]]) -> None:
    """The card pastes counts and hashes by hand; keep it from drifting when the data is regenerated."""
    card = (DATA_DIR / "DATA_CARD.md").read_text(encoding="utf-8")
    for split in SPLITS:
        digest = hashlib.sha256((DATA_DIR / f"{split}.jsonl").read_bytes()).hexdigest()
        assert re.search(rf"^{split}\s+{digest}$", card, re.MULTILINE), f"DATA_CARD.md: stale sha256 for {split}"
        assert f"| {split} | {len(shipped[split])} |" in card, f"DATA_CARD.md: row count for {split}"
    for name in gen.TOOL_NAMES:
        counts = [sum(row["target"]["name"] == name for row in shipped[split]) for split in SPLITS]
        line = f"| `{name}` | " + " | ".join(str(n) for n in [*counts, sum(counts)]) + " |"
        assert line in card, f"DATA_CARD.md: per-tool row for {name} should read {line}"
