"""Checks on the shipped ``support-intent`` dataset.

The JSONL files are generated, not hand-edited, so the first test pins them to the generator: if either
side changes without the other, scores recorded against the old files would silently stop being comparable.
The rest check the properties the task config and the data card promise (sizes, stratification, no leakage).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from datagen import support_intent as gen
from tests import data_checks as checks

DATA_DIR = gen.DEFAULT_OUT_DIR
SPLITS = tuple(gen.SPLIT_SIZES)


@pytest.fixture(scope="module")
def shipped() -> dict[str, list[dict]]:
    return checks.read_splits(DATA_DIR, SPLITS)


def test_regenerating_with_default_seed_is_byte_identical(tmp_path: Path) -> None:
    checks.assert_regenerates_byte_identical(gen, tmp_path)


def test_generate_matches_files_and_depends_on_seed(shipped: dict[str, list[dict]]) -> None:
    checks.assert_generate_matches_and_depends_on_seed(gen, shipped)


def test_file_format(shipped: dict[str, list[dict]]) -> None:
    checks.assert_file_format(DATA_DIR, shipped, ["id", "text", "label"], "si")
    for rows in shipped.values():
        for row in rows:
            assert isinstance(row["text"], str) and row["text"].strip() == row["text"] and row["text"]
            assert len(row["text"].split()) <= gen.MAX_WORDS


def test_split_sizes_and_stratification(shipped: dict[str, list[dict]]) -> None:
    # Every split has all 12 intents, each within one example of an exact 1/12 share.
    checks.assert_sizes_and_balance(shipped, gen.SPLIT_SIZES, gen.LABELS, lambda row: row["label"])
    totals = Counter(row["label"] for rows in shipped.values() for row in rows)
    assert max(totals.values()) - min(totals.values()) <= 1


def test_no_duplicate_text_within_or_across_splits(shipped: dict[str, list[dict]]) -> None:
    checks.assert_no_duplicates(shipped, lambda row: gen.normalise(row["text"]))
    # The generator deduplicates on a stricter key (punctuation ignored); hold it to that too.
    strict = [gen.dedupe_key(row["text"]) for rows in shipped.values() for row in rows]
    assert len(strict) == len(set(strict))


def test_each_label_has_50_distinct_train_texts(shipped: dict[str, list[dict]]) -> None:
    distinct: dict[str, set[str]] = {label: set() for label in gen.LABELS}
    for row in shipped["train"]:
        distinct[row["label"]].add(gen.normalise(row["text"]))
    thin = {label: len(texts) for label, texts in distinct.items() if len(texts) < 50}
    assert not thin, f"labels with fewer than 50 distinct train texts: {thin}"


def test_data_card_numbers_match_the_files(shipped: dict[str, list[dict]]) -> None:
    checks.assert_data_card_matches(DATA_DIR, shipped, gen.LABELS, lambda row: row["label"], "label")
