"""Tasks users define without Python: their own JSONL mapped by YAML, and lm-eval's tasks by name."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from slmexp.errors import ConfigError, DataError
from slmexp.pipeline import run_job
from tests.conftest import compose

QA_ROWS = [
    {"uid": f"q{i}", "passage": f"The store opens at {h} am and the return window is {d} days.",
     "question": q, "answer": a}
    for i, (h, d, q, a) in enumerate([
        (9, 30, "When does the store open?", ["9 am", "nine am"]),
        (8, 14, "How long is the return window?", ["14 days"]),
        (10, 60, "How many days can I return items?", ["60 days", "sixty days"]),
        (7, 21, "What time do you open?", ["7 am"]),
        (9, 45, "Return window?", ["45 days"]),
        (11, 7, "Opening time?", ["11 am"]),
    ])
]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow
def test_user_jsonl_task_defined_only_in_yaml_runs_end_to_end(tiny_model_dir, tmp_path) -> None:
    """A task YAML in the user's own config dir (extending conf/task/jsonl.yaml), their field names, LoRA training
    and evaluation through the real CLI."""
    data = tmp_path / "data"
    data.mkdir()
    _write_jsonl(data / "train.jsonl", QA_ROWS)
    _write_jsonl(data / "test.jsonl", QA_ROWS[:4])
    conf = tmp_path / "my_conf" / "task"
    conf.mkdir(parents=True)
    (conf / "store-qa.yaml").write_text(textwrap.dedent(f"""\
        defaults:
          - jsonl
          - _self_
        name: store-qa
        kind: qa
        data:
          train: {data / 'train.jsonl'}
          test: {data / 'test.jsonl'}
        fields:
          id: uid
          text: question
          target: answer
          context: passage
        prompt: |-
          {{{{ context }}}}
          Question ({{{{ row.uid }}}}): {{{{ text }}}}
        generation:
          max_new_tokens: 6
          until: ["\\n"]
        """))
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "slmexp", "--config-dir", str(tmp_path / "my_conf"), "task=store-qa",
            f"model.source.path={tiny_model_dir}", "model.name=tiny-llama", f"paths.cache_dir={tmp_path / 'cache'}",
            "adapter=lora", "train.max_steps=2", "train.eval_steps=0", "eval.bench.n=2", "eval.bench.warmup=0",
            f"hydra.run.dir={run_dir}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["run"]["status"] == "finished"
    m = rec["metrics"]
    assert m["task"] == "store-qa" and m["primary"] == "f1" and m["n_examples"] == 4
    assert set(m["values"]) >= {"f1", "exact_match"} and m["chance"] is None
    assert rec["train"]["train_examples"] == 6 and rec["train"]["steps"] == 2
    samples = [json.loads(line) for line in (run_dir / m["samples"]).read_text().splitlines()]
    assert [s["id"] for s in samples] == ["q0", "q1", "q2", "q3"]
    assert all(0.0 <= s["f1"] <= 1.0 for s in samples)
    rendered = json.loads((run_dir / "lm_eval" / "tasks" / "data" / "test.jsonl").read_text().splitlines()[0])
    assert rendered["prompt"].endswith("Question (q0): When does the store open?")
    assert json.loads(rendered["gold"]) == ["9 am", "nine am"] and rendered["target"] == "9 am"
    assert rec["speed"]["latency_ms"]["p50"] > 0


def _run_tiny(overrides: list[str], tmp_path: Path) -> dict:
    return run_job(compose(overrides), run_dir=tmp_path / "run")


def test_user_extraction_task_by_overrides_only(tiny_overrides, tmp_path) -> None:
    rows = [{"doc": f"Order {i} costs {i}.50 EUR", "fields": {"order": str(i), "amount": i + 0.5}} for i in range(5)]
    test = _write_jsonl(tmp_path / "ex.jsonl", rows)
    rec = _run_tiny([*tiny_overrides, "task=jsonl", "task.name=orders", "task.kind=extraction",
                     f"task.data.test={test}", "task.fields.text=doc", "task.fields.target=fields",
                     "task.primary_metric=field_f1"], tmp_path)
    assert set(rec["metrics"]["values"]) >= {"field_f1", "exact_match", "json_valid", "json_strict"}
    assert rec["metrics"]["n_examples"] == 5


@pytest.mark.parametrize(("kind", "fields", "row", "message"), [
    ("qa", {"text": "question", "target": "answer"}, {"question": "q?", "answer": 42},
     "field 'answer' (task.fields.target) must be a non-empty string or list of non-empty strings, got 42"),
    ("qa", {"text": "question", "target": "answer"}, {"query": "q?", "answer": "a"},
     "missing field 'question' (task.fields.text)"),
    ("extraction", {"text": "doc", "target": "fields"}, {"doc": "x", "fields": "{\"a\": 1}"},
     "field 'fields' (task.fields.target) must be a non-empty JSON object"),
    ("tool_call", {"text": "text", "target": "target", "tools": "tools"},
     {"text": "x", "tools": [{"name": "a", "parameters": {}}], "target": {"name": "b", "arguments": {}}},
     "gold call 'b' is not among the row's tools (a)"),
    ("tool_call", {"text": "text", "target": "target", "tools": "tools"},
     {"text": "x", "tools": [{"name": "a", "parameters": {}}], "target": {"name": "a", "args": {}}},
     'must be {"name": str, "arguments": object}'),
])
def test_bad_rows_fail_with_file_line_and_key(tiny_overrides, tmp_path, kind, fields, row, message) -> None:
    path = tmp_path / "data.jsonl"
    if kind == "qa":  # line 1 is fine, line 2 is the bad one
        first = {"question": "fine?", "answer": "yes"}
    elif kind == "extraction":
        first = {"doc": "fine", "fields": {"a": 1}}
    else:
        first = {"text": "fine", "tools": [{"name": "a", "parameters": {}}], "target": {"name": "a", "arguments": {}}}
    _write_jsonl(path, [first, row])
    overrides = [*tiny_overrides, "task=jsonl", f"task.kind={kind}", f"task.data.test={path}",
                 "task.primary_metric=exact_match"] + [f"task.fields.{k}={v}" for k, v in fields.items()]
    with pytest.raises(DataError) as err:
        _run_tiny(overrides, tmp_path)
    assert f"{path}:2:" in str(err.value) and message in str(err.value)


def test_kind_without_a_field_mapping_names_the_key(tiny_overrides, tmp_path) -> None:
    path = _write_jsonl(tmp_path / "t.jsonl", [{"text": "x", "target": {"name": "a", "arguments": {}}}])
    with pytest.raises(ConfigError, match=r"task\.fields\.tools"):
        _run_tiny([*tiny_overrides, "task=jsonl", "task.kind=tool_call", f"task.data.test={path}",
                   "task.primary_metric=exact_match"], tmp_path)


def test_primary_metric_must_belong_to_the_kind(tiny_overrides, tmp_path) -> None:
    path = _write_jsonl(tmp_path / "t.jsonl", [{"text": "x", "target": "y"}])
    with pytest.raises(ConfigError, match=r"task\.primary_metric: 'field_f1' is not a qa metric"):
        _run_tiny([*tiny_overrides, "task=jsonl", f"task.data.test={path}", "task.primary_metric=field_f1"],
                  tmp_path)


# --- lm-eval's own tasks ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_lm_eval_task_without_local_data_fails_fast_offline(tiny_overrides, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(DataError) as err:
        _run_tiny([*tiny_overrides, "task=lm-eval", "task.names=[arc_easy]"], tmp_path)
    msg = str(err.value)
    assert "arc_easy" in msg and "allenai/ai2_arc" in msg and "not available locally" in msg
    assert "HF_HUB_OFFLINE" in msg
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["run"]["status"] == "failed" and rec["run"]["error"]["stage"] == "validate"  # no model was loaded
    assert time.perf_counter() - t0 < 60


@pytest.mark.slow
def test_unknown_lm_eval_task_suggests_names(tiny_overrides, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"task\.names: 'arc_eazy' is not an lm-eval task or group; did you mean "
                                          r".*arc_easy"):
        _run_tiny([*tiny_overrides, "task=lm-eval", "task.names=[arc_eazy]"], tmp_path)


def _mc_task(dir_: Path, name: str, rows: list[dict]) -> None:
    data = _write_jsonl(dir_ / f"{name}.jsonl", rows)
    (dir_ / f"{name}.yaml").write_text(textwrap.dedent(f"""\
        task: {name}
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {data}
        test_split: test
        output_type: multiple_choice
        doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
        doc_to_choice: "{{{{choices}}}}"
        doc_to_target: "{{{{answer}}}}"
        metric_list:
          - metric: acc
            aggregation: mean
            higher_is_better: true
        metadata:
          version: 1.0
        """))


@pytest.mark.slow
def test_lm_eval_tasks_by_name_with_include_path(tiny_overrides, tmp_path) -> None:
    """lm-eval YAMLs the user keeps in a directory, run by name through lm-eval's loglikelihood path; two tasks give
    per-task values and the unweighted mean of the primary metric."""
    tasks = tmp_path / "lm_eval_tasks"
    tasks.mkdir()
    _mc_task(tasks, "colors", [{"question": f"Color {i}?", "choices": ["red", "blue", "green"], "answer": i % 3}
                               for i in range(5)])
    _mc_task(tasks, "sizes", [{"question": f"Size {i}?", "choices": ["small", "large"], "answer": i % 2}
                              for i in range(4)])
    rec = _run_tiny([*tiny_overrides, "task=lm-eval", f"task.include_path={tasks}", "task.names=[colors,sizes]"],
                    tmp_path)
    m = rec["metrics"]
    assert m["lm_eval_tasks"] == ["colors", "sizes"] and m["n_examples"] == 5 + 4
    assert m["values"]["acc"] == pytest.approx((m["values"]["colors/acc"] + m["values"]["sizes/acc"]) / 2)
    assert m["formulation"].startswith("lm-eval/multiple_choice/")
    samples = [json.loads(line) for line in (tmp_path / "run" / m["samples"]).read_text().splitlines()]
    assert len(samples) == 9 and {s["id"].split("/")[0] for s in samples} == {"colors", "sizes"}
    assert all(s["response"] in (0, 1, 2) and s["acc"] in (0.0, 1.0) for s in samples)
    assert rec["speed"]["latency_ms"]["p50"] > 0  # the speed stage streamed lm-eval's own prompts
