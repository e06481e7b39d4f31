"""Classification answers: the one normaliser of labels and the one parser of a model's label, for every stage.

Why one home: evaluation (`metrics.classification_results`), distillation (the teacher parse rule) and routing
(routed correctness) must agree on what "the model answered label X" means; three rules would let a distilled
student or a routed system be scored by a different yardstick than the row it is compared with.

Identity of a label (`normalize_label`): its letters and digits only, case-folded (Unicode NFKC), the runs
between them joined by `_`. So `Bill dispute`, `bill-dispute`, `BILL_DISPUTE` and `"bill dispute."` are the same
label, and gold labels, `task.labels` and answers all go through it. Two labels with the same key, or a label with
no letters or digits, are a config error naming `task.labels` (`check_labels`, run when the task loads).

Two readings of an answer, as lm-eval's `strict-match` and `flexible-extract` filters:
- strict (`strict_match`): the first non-empty line, compared with case and whitespace runs ignored, IS the label;
- extracted (`extract_label`): the first rule below that finds a label wins; lines are tried in order, then the
  whole output:
  1. the line is a label (markdown emphasis, quotes, backticks and trailing punctuation ignored, since they are
     not letters or digits; a leading bullet `-`/`*`/`+`/`•`/`>`/`#` or number `1.`/`1)`/`(1)` dropped);
  2. the line starts with the task's `answer_prefix` (e.g. `Intent:`): what follows, by these rules;
  3. the line is `head: rest` (also `head - rest`, `head = rest`): if `head` is an answer-style prefix (Intent,
     Label, Answer, Category, Class, ...), `rest` by these rules; else `head` if it is a label (`label:
     description`); else `rest` by these rules;
  4. the whole output names exactly one label as whole words (a span inside a longer label's span does not count:
     `refund_status` does not also name `refund`); two different labels named is no answer.
A negation (`not billing_issue`) still names the label: like lm-eval's flexible extraction, this parser finds an
answer, it does not read meaning; `strict_match` is reported next to it for that reason.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

_TOKEN = re.compile(r"[^\W_]+")  # letters/digits: a label's identity
_WORD = re.compile(r"\w+(?:[-'\u2019]\w+)*")  # a written word: `billing_issue`, `e-mail`, `customer's`
_BULLET = re.compile(r"^\s*(?:[-*+\u2022>#]+|\(?\d{1,3}[.)])\s+")
_SPLIT = re.compile(r"\s*(?::|=|\s[-\u2013\u2014]\s)\s*")
_WS = re.compile(r"\s+")
# Words a model puts before its answer ("Intent: x"); the task's own `answer_prefix` is added to them.
PREFIX_WORDS = frozenset({"intent", "label", "answer", "final_answer", "category", "class", "classification",
                          "prediction", "predicted_label", "predicted_intent", "output", "response", "result",
                          "the_intent", "the_answer", "the_label", "topic", "type"})


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").casefold()


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(_fold(text))


def normalize_label(text: str) -> str:
    """A label's identity: letters and digits, case-folded, joined by `_` (`"**Bill Dispute.**"` -> `bill_dispute`).

    Applied to gold labels, `task.labels` and answers alike, so no side can be spelled differently from another.
    """
    return "_".join(_tokens(text))


def same_label(a: str | None, b: str | None) -> bool:
    """Whether two spellings are the same label (both non-empty after normalisation)."""
    return a is not None and b is not None and normalize_label(a) == normalize_label(b) != ""


def task_labels(task_cfg: Any) -> list[str]:
    """`task.labels` as written: a list, or the keys of a label -> description mapping."""
    labels = task_cfg.get("labels") if task_cfg is not None else None
    if isinstance(labels, Mapping) or hasattr(labels, "keys"):
        return [str(k) for k in labels]
    return [str(x) for x in labels or []]


def check_labels(labels: Iterable[str]) -> str | None:
    """Why these labels cannot be told apart by the normaliser, or None. The caller raises it on `task.labels`.

    No labels at all is refused too: every gold and every answer would then be "not a label"."""
    labels = list(labels)
    if not labels:
        return "is empty: a classification task needs a non-empty label list or mapping"
    seen: dict[str, str] = {}
    for label in labels:
        key = normalize_label(label)
        if not key:
            return f"label {label!r} has no letters or digits, so no answer could name it"
        if key in seen:
            return (f"labels {seen[key]!r} and {label!r} are the same label once normalised ({key!r}: case, spaces, "
                    f"hyphens, underscores and punctuation are ignored when answers are matched); rename one")
        seen[key] = label
    return None


def _index(labels: Iterable[str]) -> dict[str, str]:
    """normalised key -> the label as written (the first, if a config error slipped through)."""
    out: dict[str, str] = {}
    for label in labels:
        out.setdefault(normalize_label(label), label)
    out.pop("", None)
    return out


def first_line(text: str) -> str:
    """The first non-empty line of an output, stripped."""
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def _loose(text: str) -> str:
    return _WS.sub(" ", _fold(text).strip())


def strict_match(text: str, gold: str, labels: Sequence[str] = ()) -> bool:
    """Whether the output's first non-empty line is the gold label, ignoring only case and runs of whitespace.

    The gold is accepted as written in the data or as written in `task.labels` (when the two spell it differently,
    e.g. `bill_dispute` in the JSONL and `Bill dispute` in the YAML).
    """
    line = _loose(first_line(text))
    spellings = [gold, *(label for label in labels if same_label(label, gold))]
    return bool(line) and any(line == _loose(s) for s in spellings)


def _strip_prefix(line: str, prefix_tokens: list[str]) -> str | None:
    """What follows the task's answer prefix at the start of `line` (matched on letters/digits), or None."""
    if not prefix_tokens:
        return None
    pattern = r"^[\W_]*" + r"[\W_]+".join(map(re.escape, prefix_tokens)) + r"(?![^\W_])"
    m = re.match(pattern, _fold(line))
    return _fold(line)[m.end():] if m else None


def _candidates(line: str, prefix_tokens: list[str], depth: int = 0) -> Iterator[str]:
    """Strings that may be the label, in the order of the module docstring's rules 1-3."""
    line = _BULLET.sub("", line.strip(), count=1)
    yield line
    if depth > 4:  # "a: b: c: d" nests; a real answer never needs more
        return
    rest = _strip_prefix(line, prefix_tokens)
    if rest is not None:
        yield from _candidates(rest, prefix_tokens, depth + 1)
    parts = _SPLIT.split(line, maxsplit=1)
    if len(parts) == 2:
        head, tail = parts
        head_key = normalize_label(head)
        if head_key in PREFIX_WORDS or (prefix_tokens and head_key == "_".join(prefix_tokens)):
            yield from _candidates(tail, prefix_tokens, depth + 1)
        yield head
        yield from _candidates(tail, prefix_tokens, depth + 1)


def _only_label_named(text: str, index: Mapping[str, str]) -> str | None:
    """The one label the text names as whole words (rule 4), or None when it names none or several."""
    toks: list[str] = []
    starts: list[bool] = []
    ends: list[bool] = []
    for word in _WORD.findall(_fold(text)):
        sub = _TOKEN.findall(word)
        toks += sub
        starts += [j == 0 for j in range(len(sub))]
        ends += [j == len(sub) - 1 for j in range(len(sub))]
    spans: list[tuple[int, int, str]] = []
    for key, label in index.items():
        lt = key.split("_")
        m = len(lt)
        for i in range(len(toks) - m + 1):
            if starts[i] and ends[i + m - 1] and toks[i:i + m] == lt:
                spans.append((i, i + m, label))
    kept = {label for s, e, label in spans
            if not any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) for s2, e2, _ in spans)}
    return kept.pop() if len(kept) == 1 else None


def extract_label(text: str, labels: Sequence[str], answer_prefix: str | None = None) -> str | None:
    """The label (as written in `labels`) a model's output gives, by the module docstring's rules, or None."""
    index = _index(labels)
    if not index or not (text or "").strip():
        return None
    prefix_tokens = _tokens(answer_prefix or "")
    for line in text.splitlines():
        if not line.strip():
            continue
        for cand in _candidates(line, prefix_tokens):
            hit = index.get(normalize_label(cand))
            if hit is not None:
                return hit
    return _only_label_named(text, index)
