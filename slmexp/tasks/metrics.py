"""Metric functions lm-eval calls per example (`process_results`); pure Python so they are unit-testable."""

from __future__ import annotations

import re
from typing import Any

_SEP = re.compile(r"[\s\-]+")
_STRIP = re.compile(r"^[^a-z0-9_]+|[^a-z0-9_]+$")


def normalize_label(text: str) -> str:
    """First line, lower case, `Intent:`-style prefix and quotes/punctuation dropped, spaces -> underscores."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    line = line.strip().lower()
    if ":" in line:  # "intent: cancel_order" -> "cancel_order"
        line = line.rsplit(":", 1)[1]
    line = _SEP.sub("_", line.strip())
    return _STRIP.sub("", line)


def classification_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """exact_match: the normalised generation equals the gold label; valid_label: it is any known label."""
    pred = normalize_label(results[0] if results else "")
    return {
        "exact_match": float(pred == doc["target"]),
        "valid_label": float(pred in doc["choices"]),
    }
