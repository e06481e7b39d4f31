"""Checks on the shipped ``invoice-extraction`` dataset.

The JSONL files are generated, not hand-edited, so the first test pins them to the generator: if either side
changes without the other, scores recorded against the old files would silently stop being comparable. The rest
check what the task config and the data card promise: typed targets, amounts that add up, every target value
recoverable from the document text, sizes, layout balance, the length bound and no leakage between splits.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from datagen import invoice_extraction as gen
from tests import data_checks as checks

DATA_DIR = gen.DEFAULT_OUT_DIR
SPLITS = tuple(gen.SPLIT_SIZES)
DATE_FORMATS = ("long-us", "short-us", "long-uk", "short-uk", "iso", "weekday", "dotted", "de-long")


@pytest.fixture(scope="module")
def shipped() -> dict[str, list[dict]]:
    return checks.read_splits(DATA_DIR, SPLITS)


@pytest.fixture(scope="module")
def documents() -> dict[str, list[tuple[gen.Invoice, str]]]:
    return gen.generate_documents()


def test_regenerating_with_default_seed_is_byte_identical(tmp_path: Path) -> None:
    checks.assert_regenerates_byte_identical(gen, tmp_path)


def test_documents_match_files_and_depend_on_seed(
    documents: dict[str, list[tuple[gen.Invoice, str]]], shipped: dict[str, list[dict]]
) -> None:
    """The rows are the documents' texts, targets and layouts (``generate`` is a thin mapping over them), and
    another seed gives other documents. Reuses the module's one in-memory generation to keep the file fast."""
    for split in SPLITS:
        rows = [{"id": f"inv-{split}-{i:04d}", "text": text, "target": doc.target(), "layout": doc.layout}
                for i, (doc, text) in enumerate(documents[split], start=1)]
        assert rows == shipped[split]
    other = gen.generate_documents(seed=gen.DEFAULT_SEED + 1)["test"]
    assert [text for _, text in other] != [text for _, text in documents["test"]]


def test_file_format_and_target_types(shipped: dict[str, list[dict]]) -> None:
    checks.assert_file_format(DATA_DIR, shipped, ["id", "text", "target", "layout"], "inv")
    for rows in shipped.values():
        for row in rows:
            text = row["text"]
            assert isinstance(text, str) and text and text.strip() == text
            assert len(text) <= gen.MAX_CHARS, f"{row['id']}: {len(text)} characters"
            assert row["layout"] in gen.LAYOUTS
            t = row["target"]
            assert list(t) == list(gen.TARGET_KEYS), row["id"]
            assert isinstance(t["vendor"], str) and t["vendor"].strip() == t["vendor"] and t["vendor"]
            assert isinstance(t["invoice_number"], str) and t["invoice_number"] and " " not in t["invoice_number"]
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", t["date"]) and dt.date.fromisoformat(t["date"])
            assert t["currency"] in gen.CURRENCIES
            for key in ("total", "tax"):
                value = t[key]
                assert isinstance(value, int | float) and not isinstance(value, bool), (row["id"], key)
                assert round(value, 2) == value, (row["id"], key)
            assert t["total"] >= t["tax"] >= 0
            assert type(t["line_items"]) is int and 1 <= t["line_items"] <= gen.MAX_LINE_ITEMS


def test_amounts_add_up(documents: dict[str, list[tuple[gen.Invoice, str]]], shipped: dict[str, list[dict]]) -> None:
    """The published rule: line = qty x unit; subtotal = sum; net = subtotal - discount + shipping;
    tax = net x rate rounded half up to the cent; total = net + tax. Checked in Decimal, independently of the
    generator's integer arithmetic."""
    cent = Decimal("0.01")
    for split in SPLITS:
        for (doc, text), row in zip(documents[split], shipped[split], strict=True):
            assert row["text"] == text and row["target"] == doc.target()
            subtotal = Decimal(0)
            for line in doc.lines:
                amount = (Decimal(str(line.qty)) * Decimal(line.unit) / 100).quantize(cent)
                assert amount == Decimal(line.amount) / 100, (row["id"], line)
                subtotal += amount
            assert 0 <= doc.discount <= doc.subtotal and doc.shipping >= 0
            net = subtotal - Decimal(doc.discount) / 100 + Decimal(doc.shipping) / 100
            if doc.discount_pct:
                assert Decimal(doc.discount) / 100 == (subtotal * doc.discount_pct / 100).quantize(cent, ROUND_HALF_UP)
            tax = (net * Decimal(doc.rate_bp) / 10000).quantize(cent, rounding=ROUND_HALF_UP)
            assert Decimal(str(row["target"]["tax"])) == tax, row["id"]
            assert Decimal(str(row["target"]["total"])) == net + tax, row["id"]
            assert row["target"]["line_items"] == len(doc.lines)


def test_targets_are_recoverable_from_text(documents: dict[str, list[tuple[gen.Invoice, str]]]) -> None:
    for docs in documents.values():
        for doc, text in docs:
            t = doc.target()
            assert t["vendor"] in text
            assert t["invoice_number"] in text
            # A "#" is only ever part of the number, never a label in front of one.
            assert f"#{t['invoice_number']}" not in text
            assert gen.format_number(doc.total, doc.style) in text
            assert gen.format_number(doc.tax, doc.style) in text
            assert any(gen.format_date(doc.date, f) in text for f in DATE_FORMATS)
            # Dotted day.month.year dates only in German layouts; slashed dates never.
            if doc.layout != "german-invoice":
                assert not re.search(r"\b\d{2}\.\d{2}\.\d{4}\b", text)
            assert not re.search(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b", text)
            # The currency is named unambiguously; a bare "$" only ever means USD.
            assert (re.search(r"(?<![A-Za-z])\$", text) is not None) <= (t["currency"] == "USD")
            assert t["currency"] in text or any(s in text for s in gen._SYMBOLS[t["currency"]])


def test_split_sizes_and_layout_balance(shipped: dict[str, list[dict]]) -> None:
    checks.assert_sizes_and_balance(shipped, gen.SPLIT_SIZES, gen.LAYOUTS, lambda row: row["layout"])
    line_counts = Counter(row["target"]["line_items"] for rows in shipped.values() for row in rows)
    assert set(line_counts) == set(range(1, gen.MAX_LINE_ITEMS + 1))


def test_no_duplicate_text_within_or_across_splits(shipped: dict[str, list[dict]]) -> None:
    checks.assert_no_duplicates(shipped, lambda row: gen.dedupe_key(row["text"]))


def test_data_card_numbers_match_the_files(shipped: dict[str, list[dict]]) -> None:
    checks.assert_data_card_matches(DATA_DIR, shipped, gen.LAYOUTS, lambda row: row["layout"], "layout")
