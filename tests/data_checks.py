"""Checks shared by the tests of the shipped, generated datasets (``tests/test_*_data.py``).

Each dataset is a module under ``datagen`` with ``generate``, ``write``, ``DEFAULT_OUT_DIR``,
``DEFAULT_SEED`` and ``SPLIT_SIZES``, plus JSONL files and a ``DATA_CARD.md`` in ``DEFAULT_OUT_DIR``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType


def read_jsonl(path: Path) -> list[dict]:
    """One dict per line of a UTF-8 JSONL file."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def read_splits(data_dir: Path, splits: Iterable[str]) -> dict[str, list[dict]]:
    """Split name -> rows of ``<data_dir>/<split>.jsonl``."""
    return {split: read_jsonl(data_dir / f"{split}.jsonl") for split in splits}


def assert_regenerates_byte_identical(gen: ModuleType, tmp_path: Path) -> None:
    """``gen.write`` with the default seed writes exactly the shipped split files, byte for byte."""
    splits = tuple(gen.SPLIT_SIZES)
    written = gen.write(tmp_path, gen.DEFAULT_SEED)
    assert sorted(written) == sorted(splits)
    for split in splits:
        fresh = (tmp_path / f"{split}.jsonl").read_bytes()
        committed = (gen.DEFAULT_OUT_DIR / f"{split}.jsonl").read_bytes()
        assert fresh == committed, f"{split}.jsonl is stale or hand-edited; rerun `python -m {gen.__name__}`"


def assert_generate_matches_and_depends_on_seed(gen: ModuleType, shipped: dict[str, list[dict]]) -> None:
    """``gen.generate()`` is the shipped rows, and another seed gives another test split."""
    assert gen.generate() == shipped
    assert gen.generate(seed=gen.DEFAULT_SEED + 1)["test"] != shipped["test"]


def assert_file_format(data_dir: Path, shipped: dict[str, list[dict]], keys: list[str], id_prefix: str) -> None:
    """Every file ends in ``\\n`` with no ``\\r``; every row has exactly ``keys`` in that order and the id
    ``<id_prefix>-<split>-<NNNN>`` numbered from 1 in file order."""
    for split, rows in shipped.items():
        raw = (data_dir / f"{split}.jsonl").read_bytes()
        assert raw.endswith(b"\n") and b"\r" not in raw
        for i, row in enumerate(rows, start=1):
            assert list(row) == keys
            assert row["id"] == f"{id_prefix}-{split}-{i:04d}"


def assert_sizes_and_balance(
    shipped: dict[str, list[dict]], sizes: dict[str, int], names: Iterable[str], category_of: Callable[[dict], str]
) -> dict[str, Counter]:
    """Each split has its size, every category in ``names`` (and no other), and each category within one example
    of an exact equal share. Returns the per-split category counts for further checks."""
    names = tuple(names)
    counts: dict[str, Counter] = {}
    for split, size in sizes.items():
        rows = shipped[split]
        assert len(rows) == size
        counts[split] = Counter(category_of(row) for row in rows)
        assert set(counts[split]) == set(names), f"{split}: categories differ from {sorted(names)}"
        share = size / len(names)
        assert all(abs(n - share) < 1 for n in counts[split].values()), f"{split}: {counts[split]}"
    return counts


def assert_no_duplicates(shipped: dict[str, list[dict]], key: Callable[[dict], str]) -> None:
    """No two rows, in one split or across splits, have the same ``key``."""
    where: dict[str, str] = {}
    for rows in shipped.values():
        for row in rows:
            k = key(row)
            assert k not in where, f"{row['id']} duplicates {where.get(k)}"
            where[k] = row["id"]


def assert_card_hashes_match(card: str, data_dir: Path, splits: Iterable[str]) -> None:
    """The card has a line ``<split> <sha256 of the split file>`` for every split."""
    for split in splits:
        digest = hashlib.sha256((data_dir / f"{split}.jsonl").read_bytes()).hexdigest()
        assert re.search(rf"^{split}\s+{digest}$", card, re.MULTILINE), f"DATA_CARD.md: stale sha256 for {split}"


def assert_data_card_matches(
    data_dir: Path,
    shipped: dict[str, list[dict]],
    names: Iterable[str],
    category_of: Callable[[dict], str],
    what: str,
) -> None:
    """The card pastes hashes and counts by hand; keep it from drifting when the data is regenerated.

    Checks the sha256 line and the ``| <split> | <rows> |`` row of every split, and for every category the row
    ``| `<name>` | <count per split>... | <total> |``.
    """
    card = (data_dir / "DATA_CARD.md").read_text(encoding="utf-8")
    splits = tuple(shipped)
    assert_card_hashes_match(card, data_dir, splits)
    for split in splits:
        assert f"| {split} | {len(shipped[split])} |" in card, f"DATA_CARD.md: row count for {split}"
    for name in names:
        counts = [sum(category_of(row) == name for row in shipped[split]) for split in splits]
        line = f"| `{name}` | " + " | ".join(str(n) for n in [*counts, sum(counts)]) + " |"
        assert line in card, f"DATA_CARD.md: per-{what} row for {name} should read {line}"
