"""Classification answer extraction (slmexp.tasks.extract) on hand-made outputs: one normaliser for gold labels,
answers and task.labels; the formats models wrap a right label in; strict vs extracted; the same rule in
evaluation, distillation and routing; labels the normaliser cannot tell apart are a config error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from slmexp.errors import ConfigError
from slmexp.tasks.metrics import classification_results
from tests.conftest import compose

INTENTS = ["order_status", "cancel_order", "return_item", "refund_status", "billing_issue", "payment_method",
           "change_address", "account_access", "delete_account", "product_info", "damaged_item", "speak_to_human"]
USER_LABELS = ["Bill dispute", "SIM replacement", "Roaming", "Other"]


def _score(output: str, target: str = "billing_issue", labels: list[str] = INTENTS,
           prefix: str = "Intent:") -> dict[str, float]:
    return classification_results({"target": target, "choices": labels, "answer_prefix": prefix}, [output])


@pytest.mark.parametrize("output", [
    "**Intent:** billing_issue",                   # markdown emphasis around an `Intent:` prefix
    "- billing_issue",                             # a bullet
    "1. billing_issue",                            # numbering
    "1) `billing_issue`",                          # numbering and backticks
    "billing_issue: a wrong or double charge",     # label: description
    "* **billing_issue** - charged twice",         # bullet, emphasis, label - description
    "The intent is billing_issue.",                # a sentence naming exactly one label
    "**billing_issue** (charged twice)",           # emphasis, then prose
    "Label = billing_issue",                       # another prefix word and separator
    "Intent:\nbilling_issue",                      # the prefix alone on the first line
])
def test_a_right_label_in_any_common_format_is_exact_match(output: str) -> None:
    assert _score(output) == {"exact_match": 1.0, "strict_match": 0.0, "valid_label": 1.0}


@pytest.mark.parametrize("output", ["Bill dispute", "bill dispute", "BILL-DISPUTE.", "`Bill dispute`",
                                    "- Bill dispute: charged twice", "**Category:** bill_dispute"])
def test_user_labels_with_spaces_and_capitals_match_the_gold_as_written(output: str) -> None:
    out = _score(output, target="Bill dispute", labels=USER_LABELS, prefix="Answer:")
    assert out["exact_match"] == 1.0 and out["valid_label"] == 1.0


def test_strict_match_is_the_raw_first_line_up_to_case_and_whitespace() -> None:
    assert _score("billing_issue\nbecause the customer was charged twice")["strict_match"] == 1.0
    assert _score("  Billing_Issue ")["strict_match"] == 1.0
    for loose in ("billing_issue.", "**billing_issue**", "Intent: billing_issue", "billing issue"):
        out = _score(loose)
        assert (out["strict_match"], out["exact_match"]) == (0.0, 1.0), loose
    out = _score("Bill   dispute", target="Bill dispute", labels=USER_LABELS)
    assert out["strict_match"] == 1.0
    # the data spells the gold `bill_dispute`, the YAML `Bill dispute`: either spelling is strict
    assert _score("Bill dispute", target="bill_dispute", labels=USER_LABELS)["strict_match"] == 1.0
    assert _score("refund_status")["strict_match"] == 0.0  # a wrong label


def test_a_sentence_counts_only_when_it_names_exactly_one_label() -> None:
    labels = [*INTENTS, "refund"]
    assert _score("The intent is refund_status.", "refund_status", labels)["exact_match"] == 1.0  # not also `refund`
    for vague in ("refund_status or billing_issue", "I think it is about billing", "billing_issue_extra", "", "  "):
        assert _score(vague, "billing_issue", labels) == {"exact_match": 0.0, "strict_match": 0.0,
                                                            "valid_label": 0.0}, vague
    assert _score("The intent is billing_issue, not refund_status.")["valid_label"] == 0.0


def test_the_tasks_own_answer_prefix_is_stripped_before_label_description() -> None:
    from slmexp.tasks.extract import extract_label

    labels = ["queue", "billing_issue"]  # `queue` is a label AND the task's prefix word
    assert extract_label("Queue: billing_issue", labels, "Queue:") == "billing_issue"
    assert extract_label("Queue >> billing_issue", labels, "Queue >>") == "billing_issue"
    assert extract_label("queue: the general inbox", labels, "Answer:") == "queue"  # label: description


def test_normaliser_is_one_for_gold_answers_and_labels() -> None:
    from slmexp.tasks.extract import check_labels, normalize_label, same_label

    assert normalize_label("**Intent:** x") == "intent_x"  # no leading `_x` artefact
    assert normalize_label('"Bill Dispute."') == normalize_label("bill-dispute") == "bill_dispute"
    assert same_label("SIM replacement", "sim_replacement") and not same_label("", "")
    assert check_labels(USER_LABELS) is None
    assert "'Bill dispute' and 'bill-dispute'" in check_labels(["Bill dispute", "bill-dispute"])
    assert "no letters or digits" in check_labels(["ok", "???"])


def test_classification_kind_reports_strict_match_after_the_primary() -> None:
    from slmexp.tasks import LM_EVAL_TEMPLATES
    from slmexp.tasks.kinds import KINDS

    assert KINDS["classification"].metrics == ("exact_match", "strict_match", "valid_label")
    template = yaml.load((LM_EVAL_TEMPLATES / "classification.yaml").read_text().replace("!function", ""),
                         Loader=yaml.SafeLoader)
    assert [m["metric"] for m in template["metric_list"]] == ["exact_match", "strict_match", "valid_label"]


# --- the same extractor in distillation and routing ------------------------------------------------------------------


def _user_task(tmp_path: Path, labels: list[str], gold: str = "Bill dispute") -> object:
    rows = [{"id": "a", "text": "I was charged twice", "label": gold},
            {"id": "b", "text": "my sim card is broken", "label": "SIM replacement"}]
    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return compose(["task=jsonl", "task.kind=classification", f"task.data.test={data}", "+task.fields.label=label",
                    f"task.labels={json.dumps(labels)}", "task.primary_metric=exact_match",
                    "task.answer_prefix=Intent:"]).task


def test_teacher_parse_and_routed_correctness_use_the_evaluation_extractor(tmp_path) -> None:
    from slmexp.tasks.kinds import KINDS

    rec = KINDS["classification"]
    task_cfg = _user_task(tmp_path, USER_LABELS)
    assert rec.teacher_parse("**Intent:** bill dispute", task_cfg) == ("Bill dispute", None)  # the label as written
    assert rec.teacher_parse("1. SIM replacement", task_cfg) == ("SIM replacement", None)
    assert rec.teacher_parse("Roaming or Other", task_cfg) == (None, "not a label")
    assert rec.teacher_parse(" ", task_cfg) == (None, "empty output")
    assert rec.routed_correct("Bill dispute", "Bill dispute", task_cfg) == 1.0  # the SLM's label_prob answer
    assert rec.routed_correct("- bill-dispute: charged twice", "Bill dispute", task_cfg) == 1.0  # an LLM's answer
    assert rec.routed_correct("SIM replacement", "Bill dispute", task_cfg) == 0.0


def test_labels_that_normalise_alike_are_a_config_error_when_the_task_loads(tmp_path) -> None:
    from slmexp.tasks import load_task

    with pytest.raises(ConfigError, match=r"^task\.labels: labels 'Bill dispute' and 'bill-dispute' are the same"):
        load_task(_user_task(tmp_path, [*USER_LABELS, "bill-dispute"]), ["test"])
    with pytest.raises(ConfigError, match=r"^task\.labels: label '\?\?' has no letters or digits"):
        load_task(_user_task(tmp_path, [*USER_LABELS, "??"]), ["test"])


def test_a_gold_label_spelled_differently_from_task_labels_loads_and_scores(tmp_path) -> None:
    from slmexp.tasks import lm_eval_doc, load_task

    task = load_task(_user_task(tmp_path, USER_LABELS, gold="bill_dispute"), ["test"])
    doc = lm_eval_doc(task, "test", 0, task.splits["test"][0])
    assert doc["choices"] == USER_LABELS and doc["answer_prefix"] == "Intent:"
    assert classification_results(doc, ["Intent: Bill dispute"])["exact_match"] == 1.0
