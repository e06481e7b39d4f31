"""Checks on the shipped ``faq-qa`` dataset.

The JSONL files are generated, not hand-edited, so the first test pins them to the generator: if either side
changes without the other, scores recorded against the old files would silently stop being comparable. The rest
check what the task config and the data card promise: the row schema the QA loader and metric rely on, a gold
answer that can actually be read off the context, lengths that fit small-model training, no leakage between
splits, and test questions that are not just copies of training questions.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from datagen import faq_qa as gen
from tests import data_checks as checks

DATA_DIR = gen.DEFAULT_OUT_DIR
SPLITS = tuple(gen.SPLIT_SIZES)
KEYS = ["id", "context", "history", "question", "answers", "topic"]


@pytest.fixture(scope="module")
def shipped() -> dict[str, list[dict]]:
    return checks.read_splits(DATA_DIR, SPLITS)


def _all(shipped: dict[str, list[dict]]) -> list[dict]:
    return [row for split in SPLITS for row in shipped[split]]


def test_regenerating_with_default_seed_is_byte_identical(tmp_path: Path) -> None:
    checks.assert_regenerates_byte_identical(gen, tmp_path)


def test_generate_matches_files_and_depends_on_seed(shipped: dict[str, list[dict]]) -> None:
    checks.assert_generate_matches_and_depends_on_seed(gen, shipped)


def test_file_format(shipped: dict[str, list[dict]]) -> None:
    checks.assert_file_format(DATA_DIR, shipped, KEYS, "qa")
    for row in _all(shipped):
        for key in ("context", "question", "topic"):
            assert isinstance(row[key], str) and row[key] and row[key].strip() == row[key], row["id"]
        assert row["topic"] in gen.TOPIC_NAMES
        assert row["context"].count("\n- ") in range(gen.MIN_FACTS, gen.MAX_FACTS + 1), row["id"]


def test_history_alternates_and_ends_with_the_agent(shipped: dict[str, list[dict]]) -> None:
    for row in _all(shipped):
        history = row["history"]
        assert isinstance(history, list) and len(history) in (0, 2, 4), row["id"]
        for i, turn in enumerate(history):
            assert list(turn) == ["role", "content"], row["id"]
            assert turn["role"] == ("user" if i % 2 == 0 else "agent"), row["id"]
            assert isinstance(turn["content"], str) and turn["content"].strip(), row["id"]
        assert not history or history[-1]["role"] == "agent"
    # The referent really is carried by the history in part of the data ("How long do I have to send them back?").
    assert sum(len(row["history"]) > 0 for row in shipped["test"]) >= len(shipped["test"]) // 2


def test_answers_are_short_distinct_and_the_first_is_in_the_context(shipped: dict[str, list[dict]]) -> None:
    for row in _all(shipped):
        answers = row["answers"]
        assert isinstance(answers, list) and answers, row["id"]
        assert all(isinstance(a, str) and a.strip() == a and a for a in answers), row["id"]
        assert len(set(answers)) == len(answers), f"{row['id']}: duplicate answers {answers}"
        normalised = [gen.normalise_answer(a) for a in answers]
        assert len(set(normalised)) == len(normalised), f"{row['id']}: aliases equal under the metric {answers}"
        assert all(1 <= len(a.split()) <= gen.MAX_ANSWER_WORDS for a in answers), row["id"]
        assert answers[0] in row["context"], f"{row['id']}: gold {answers[0]!r} is not verbatim in the context"
        assert answers[0] not in row["question"], f"{row['id']}: the question gives the answer away"


def test_length_bounds(shipped: dict[str, list[dict]]) -> None:
    for row in _all(shipped):
        assert len(row["context"]) <= gen.MAX_CONTEXT_CHARS, row["id"]
        turns = "\n".join(f"{t['role']}: {t['content']}" for t in row["history"])
        whole = len(row["context"]) + len(turns) + len(row["question"])
        assert whole <= gen.MAX_PROMPT_CHARS and gen.prompt_chars(row) <= gen.MAX_PROMPT_CHARS, row["id"]


def test_split_sizes_and_topic_balance(shipped: dict[str, list[dict]]) -> None:
    assert len(gen.TOPICS) >= 15
    checks.assert_sizes_and_balance(shipped, gen.SPLIT_SIZES, gen.TOPIC_NAMES, lambda row: row["topic"])
    totals = Counter(row["topic"] for row in _all(shipped))
    assert max(totals.values()) - min(totals.values()) <= 1


def test_no_duplicate_examples_within_or_across_splits(shipped: dict[str, list[dict]]) -> None:
    checks.assert_no_duplicates(shipped, gen.row_key)


def test_test_questions_are_mostly_unseen_in_train(shipped: dict[str, list[dict]]) -> None:
    """Held-out phrasings keep a fine-tuned model from scoring on memorised question strings."""
    train = {gen.normalise_question(row["question"]) for row in shipped["train"]}
    unseen = sum(gen.normalise_question(row["question"]) not in train for row in shipped["test"])
    assert unseen >= 0.5 * len(shipped["test"]), f"only {unseen} of {len(shipped['test'])} test questions are new"


def test_companies_and_phrasings_are_varied() -> None:
    companies = [name for names in gen.COMPANIES.values() for name in names]
    assert len(companies) >= 30 and len(set(companies)) == len(companies)
    for topic in gen.TOPICS:
        assert len(set(topic.questions) | set(topic.held_out)) >= 5, topic.name
        assert not set(topic.questions) & set(topic.held_out), topic.name


def test_data_card_numbers_match_the_files(shipped: dict[str, list[dict]]) -> None:
    checks.assert_data_card_matches(DATA_DIR, shipped, gen.TOPIC_NAMES, lambda row: row["topic"], "topic")
