"""Checks on the shipped ``support-intent`` dataset.

The JSONL files are generated, not hand-edited, so the first test pins them to the generator: if either
side changes without the other, scores recorded against the old files would silently stop being comparable.
The rest check the properties the task config and the data card promise (sizes, stratification, no leakage).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from slmexp.tasks.generators import support_intent as gen

DATA_DIR = gen.DEFAULT_OUT_DIR
SPLITS = tuple(gen.SPLIT_SIZES)
REGENERATE = "python -m slmexp.tasks.generators.support_intent"


def _read(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


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
        rows = shipped[split]
        for i, row in enumerate(rows, start=1):
            assert list(row) == ["id", "text", "label"]
            assert row["id"] == f"si-{split}-{i:04d}"
            assert isinstance(row["text"], str) and row["text"].strip() == row["text"] and row["text"]
            assert len(row["text"].split()) <= gen.MAX_WORDS


def test_split_sizes_and_stratification(shipped: dict[str, list[dict]]) -> None:
    for split, size in gen.SPLIT_SIZES.items():
        rows = shipped[split]
        assert len(rows) == size
        counts = Counter(row["label"] for row in rows)
        assert set(counts) == set(gen.LABELS), f"{split}: labels differ from the 12 intents"
        # Near-equal: every label within one example of an exact 1/12 share.
        share = size / len(gen.LABELS)
        assert all(abs(n - share) < 1 for n in counts.values()), f"{split}: {counts}"
    totals = Counter(row["label"] for rows in shipped.values() for row in rows)
    assert max(totals.values()) - min(totals.values()) <= 1


def test_no_duplicate_text_within_or_across_splits(shipped: dict[str, list[dict]]) -> None:
    where: dict[str, str] = {}
    for split in SPLITS:
        for row in shipped[split]:
            key = gen.normalise(row["text"])
            assert key not in where, f"{row['id']} duplicates a text in {where.get(key)}"
            where[key] = split
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
    """The card pastes counts and hashes by hand; keep it from drifting when the data is regenerated."""
    card = (DATA_DIR / "DATA_CARD.md").read_text(encoding="utf-8")
    for split in SPLITS:
        digest = hashlib.sha256((DATA_DIR / f"{split}.jsonl").read_bytes()).hexdigest()
        pattern = rf"^{split}\s+{digest}$"
        assert re.search(pattern, card, re.MULTILINE), f"DATA_CARD.md: stale sha256 for {split}"
    for label in gen.LABELS:
        counts = [sum(row["label"] == label for row in shipped[split]) for split in SPLITS]
        row = f"| `{label}` | " + " | ".join(str(n) for n in [*counts, sum(counts)]) + " |"
        assert row in card, f"DATA_CARD.md: per-label row for {label} should read {row}"
