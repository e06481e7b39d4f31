"""A task kind declares its facts once (slmexp.tasks.kinds): metrics, answer extraction, constraint builder.

Three checks of that promise:
- no module outside the kinds' own (slmexp/tasks/kinds.py, and the config schema that validates `task.kind`)
  compares a task kind with a kind name, found by scanning the source (and the scan shown to find one);
- each kind's declared metrics are the ones its lm-eval template reports, in order, with the same direction and
  aggregation, and the report's 0/1 and validity metrics come from those declarations;
- the worked example: a `sentiment` kind declared in this test only, installed as another package's entry point
  (as tests/test_registry.py installs its toy plug-ins), whose tiny JSONL task validates, loads, extracts answers,
  scores them with its template's function and builds its constraint. A task kind is three files: the record, the
  lm-eval template, a test.
"""

from __future__ import annotations

import ast
import json
import textwrap
from collections import Counter
from collections.abc import Collection
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from tests.conftest import compose

PKG = Path(__file__).resolve().parent.parent / "slmexp"
# Where kind names are allowed: the records themselves, and the config schema (it validates `task.kind` and owns
# the lm-eval task's own config rules).
OWNERS = (PKG / "tasks" / "kinds.py", PKG / "schema")
# Comparisons left in files owned elsewhere: none (the stages read `task.task_kind.lm_eval_native`).
LEFT: dict[tuple[str, str], int] = {}


def _mentions_kind(node: ast.AST) -> bool:
    """The expression reads something named kind (`task.kind`, `kind`, `cfg.task.get("kind")`, `kind_name`)."""
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and "kind" in n.id.lower():
            return True
        if isinstance(n, ast.Attribute) and "kind" in n.attr.lower():
            return True
        if isinstance(n, ast.Constant) and n.value == "kind":
            return True
    return False


def _literals(node: ast.AST) -> set[str]:
    """The string constants the expression is: one, or the items of a literal tuple / list / set (for `in`)."""
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return {n.value for n in items if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def kind_name_comparisons(source: str, names: Collection[str]) -> list[tuple[int, str]]:
    """(line, kind name) of every comparison of something named kind with a literal kind name in `source`.
    Quantization, artifact and cost kinds compare with other names (gguf, bnb, none) and are not found."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        for a, b in pairwise(sides):
            for one, other in ((a, b), (b, a)):
                hits = _literals(other) & set(names)
                if hits and _mentions_kind(one):
                    found += [(node.lineno, name) for name in sorted(hits)]
    return found


def test_the_scan_finds_kind_name_comparisons() -> None:
    names = {"classification", "extraction", "qa", "lm_eval"}
    snippet = textwrap.dedent("""\
        if task.kind == "qa":
            pass
        ok = cfg.task.get("kind") in ("classification", "extraction")
        if "lm_eval" != kind_name:
            pass
        if artifact.kind == "gguf" or quantization_kind != "none":  # other kinds' names: not task kinds
            pass
        if task.name == "qa":  # not a kind
            pass
        """)
    assert kind_name_comparisons(snippet, names) == [(1, "qa"), (3, "classification"), (3, "extraction"),
                                                     (4, "lm_eval")]


def test_no_module_outside_the_kinds_compares_a_kind_with_a_kind_name() -> None:
    from slmexp.tasks.kinds import KINDS

    names = set(KINDS)
    found: Counter[tuple[str, str]] = Counter()
    where: dict[tuple[str, str], list[int]] = {}
    for path in sorted(PKG.rglob("*.py")):
        if any(path == o or o in path.parents for o in OWNERS):
            continue
        rel = str(path.relative_to(PKG.parent))
        for line, name in kind_name_comparisons(path.read_text(encoding="utf-8"), names):
            found[(rel, name)] += 1
            where.setdefault((rel, name), []).append(line)
    over = {f"{rel}:{where[(rel, name)]}": name for (rel, name), n in found.items() if n > LEFT.get((rel, name), 0)}
    assert not over, f"compare with a kind name; declare the fact in slmexp/tasks/kinds.py instead: {over}"


# --- the declared metrics --------------------------------------------------------------------------------------------


def _metric_list(template: Path) -> list[tuple[str, str, bool]]:
    doc = yaml.load(template.read_text().replace("!function", ""), Loader=yaml.SafeLoader)
    return [(m["metric"], m.get("aggregation", "mean"), bool(m.get("higher_is_better", True)))
            for m in doc["metric_list"]]


def _declared(kind) -> list[tuple[str, str, bool]]:
    return [(m.name, m.aggregation, m.higher_is_better) for m in kind.metric_specs]


@pytest.mark.parametrize("name", ["classification", "extraction", "tool_call", "qa"])
def test_each_kind_declares_the_metrics_its_template_reports(name: str) -> None:
    from slmexp.tasks import LM_EVAL_TEMPLATES
    from slmexp.tasks.kinds import kind

    record = kind(name)
    assert _declared(record) == _metric_list(LM_EVAL_TEMPLATES / record.template)
    assert record.metrics == tuple(m.name for m in record.metric_specs)  # names, as every reader expects


def test_the_reports_binary_and_validity_metrics_come_from_the_kinds() -> None:
    from slmexp.tasks.kinds import binary_metrics, kind, validity_metrics

    assert validity_metrics() == ("valid_label", "json_valid", "valid_call")
    assert binary_metrics() >= {"exact_match", "strict_match", "acc", "acc_norm", "valid_label", "json_valid",
                                "json_strict", "name_accuracy", "valid_call"}
    assert not binary_metrics() & {"f1", "field_f1", "args_f1"}  # F1-type: the report bootstraps them
    assert [kind(n).validity_metric for n in ("classification", "extraction", "tool_call", "qa")] == [
        "valid_label", "json_valid", "valid_call", None]
    assert kind("classification").chance(["a", "b", "c", "d"]) == 0.25 and kind("qa").chance(["a"]) is None


# --- the worked example: a kind in three files -----------------------------------------------------------------------

# File 1: the record (here in another package; in slmexp it would be an entry of KINDS).
SENTIMENT_RECORD = '''
"""A sentiment kind: the first word of the answer is the polarity."""
from pathlib import Path

from slmexp.tasks.kinds import Metric, TaskKind, check_label, check_string


def polarity(doc, raw):
    """The answer's first word, if it is one of the doc's choices (task.labels)."""
    words = raw.strip().split()
    word = words[0].strip(".,!:;").lower() if words else ""
    return word if word in [c.lower() for c in doc["choices"]] else None


def sentiment_results(doc, results):
    """lm-eval's process_results: exact_match on the polarity, polarity_valid = a polarity was given."""
    answer = polarity(doc, results[0] if results else "")
    return {"exact_match": float(answer == doc["target"].lower()), "polarity_valid": float(answer is not None)}


def one_polarity(task):
    """decoding=constrained: the answer is exactly one of task.labels."""
    from slmexp.decoding.spec import Constraint, ConstraintSpec

    return ConstraintSpec(task.kind, default=Constraint(task.kind, choices=tuple(task.labels)))


SENTIMENT = TaskKind(
    name="sentiment", roles={"text": check_string, "label": check_label}, gold_role="label", needs_labels=True,
    metrics=(Metric("exact_match", binary=True), Metric("polarity_valid", binary=True, validity=True)),
    template=str(Path(__file__).with_name("sentiment.yaml")), doc_choices=True,
    extract=polarity, constraint=one_polarity, answer_space="labels",
)
'''

# File 2: its lm-eval template, reporting exactly the record's metrics.
SENTIMENT_TEMPLATE = """\
# lm-eval template for sentiment tasks: the polarity as the answer's first word.
# Used by: slmexp.tasks.write_lm_eval_task, which includes it from a per-run YAML that names the data files.
output_type: generate_until
dataset_path: json
test_split: test
doc_to_text: "{{prompt}}"
doc_to_target: "{{target}}"
process_results: !function slmexp_sentiment.kinds.sentiment_results
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
  - metric: polarity_valid
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

ROWS = [{"id": "r1", "text": "Loved every minute of it", "label": "positive"},
        {"id": "r2", "text": "The battery died in a day", "label": "negative"},
        {"id": "r3", "text": "It arrived on Tuesday", "label": "neutral"}]


@pytest.fixture
def sentiment_kind(tmp_path, monkeypatch):
    """Install `slmexp_sentiment` (entry point `slmexp.task_kinds: sentiment`) and re-read the kinds' registry."""
    from slmexp.tasks.kinds import KINDS

    pkg = tmp_path / "slmexp_sentiment"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "kinds.py").write_text(textwrap.dedent(SENTIMENT_RECORD))
    (pkg / "sentiment.yaml").write_text(SENTIMENT_TEMPLATE)
    dist = tmp_path / "slmexp_sentiment-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: slmexp-sentiment\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[slmexp.task_kinds]\nsentiment = slmexp_sentiment.kinds:SENTIMENT\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    KINDS.reload()
    yield pkg
    KINDS.reload()


def test_a_new_kind_loads_extracts_scores_and_constrains(sentiment_kind, tmp_path) -> None:
    from slmexp import decoding, generations, rescore
    from slmexp.config import validate
    from slmexp.report.compare import accuracy_ci
    from slmexp.tasks import lm_eval_doc, load_task
    from slmexp.tasks.kinds import binary_metrics, kind, validity_metrics

    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    cfg = compose(["task=jsonl", "task.kind=sentiment", f"task.data.test={data}", "+task.fields.label=label",
                   "task.labels=[positive,negative,neutral]", "task.primary_metric=exact_match",
                   "decoding=constrained"])
    validate(cfg)  # task.kind, the primary metric, decoding=constrained: all accepted from the record
    assert _declared(kind("sentiment")) == _metric_list(sentiment_kind / "sentiment.yaml")

    task = load_task(cfg.task, ["test"])
    docs = [lm_eval_doc(task, "test", i, row) for i, row in enumerate(task.splits["test"])]
    outputs = ["Positive! what a film", "neutral", "I cannot say"]
    assert [generations.extract_answer("sentiment", d, o) for d, o in zip(docs, outputs, strict=True)] == [
        "positive", "neutral", None]
    score = rescore.metric_function("sentiment")  # the template's process_results, as lm-eval and rescore call it
    assert [score(d, [o]) for d, o in zip(docs, outputs, strict=True)] == [
        {"exact_match": 1.0, "polarity_valid": 1.0}, {"exact_match": 0.0, "polarity_valid": 1.0},
        {"exact_match": 0.0, "polarity_valid": 0.0}]

    spec = decoding.build(cfg, task)
    assert spec.default.choices == ("positive", "negative", "neutral") and spec.for_doc(docs[0]) is spec.default
    assert task.task_kind.chance(task.labels) == pytest.approx(1 / 3)
    assert "polarity_valid" in validity_metrics() and "polarity_valid" in binary_metrics()
    row = {"status": "finished", "_runs": [{}], "metric": "polarity_valid", "accuracy": 2 / 3, "n": 3}
    assert accuracy_ci(row)[2] == "wilson"  # the report treats the declared 0/1 metric as a proportion
