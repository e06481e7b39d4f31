"""Distillation: teacher answers are cached (a re-run asks nothing), parsed and counted; an answer that does not
parse is skipped with its reason, never trained on; the student's training data and cache key are the teacher's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slmexp.errors import ConfigError
from tests.conftest import compose


def test_garbage_teacher_is_counted_and_skipped_never_trained_on(tiny_model_dir, tiny_overrides, tmp_path) -> None:
    """Acceptance 3: a real but useless teacher (the tiny random llama) answers with non-labels."""
    from slmexp.pipeline import run_job
    from slmexp.record import load

    cfg = compose([*tiny_overrides, "adapter=lora", "distill=smollm2-135m", "distill.limit=6",
                   f"distill.teacher.model.source.path={tiny_model_dir}", "distill.teacher.model.name=tiny-teacher",
                   "train.max_steps=2", "eval.bench.n=0"])
    with pytest.raises(ConfigError, match=r"distill\.min_kept: the teacher tiny-teacher gave only 0 usable labels"):
        run_job(cfg, tmp_path / "run1")
    rec = load(tmp_path / "run1")
    d = rec["distill"]
    assert (d["n_inputs"], d["n_queried"], d["n_kept"], d["n_rejected"]) == (6, 6, 0, 6)
    assert sum(d["rejected_reasons"].values()) == 6 and d["teacher_loaded"] is True
    assert rec["run"]["error"]["stage"] == "distill" and rec["train"] is None  # nothing was trained
    rows = [json.loads(x) for x in (tmp_path / "run1" / d["file"]).read_text().splitlines()]
    assert len(rows) == 6
    for r in rows:
        assert r["status"] == "rejected" and r["reason"] in ("not a label", "empty output") and r["label"] is None
        assert r["teacher"] == "tiny-teacher" and r["prompt"].startswith("Classify") and "raw" in r
    assert Path(d["cache_file"]).is_file()
    from slmexp.summary import print_summary

    print_summary(rec)

    with pytest.raises(ConfigError, match=r"distill\.min_kept"):  # a new run dir: the cache answers, no teacher
        run_job(cfg, tmp_path / "run2")
    d2 = load(tmp_path / "run2")["distill"]
    assert (d2["n_queried"], d2["n_cached"], d2["teacher_loaded"], d2["n_rejected"]) == (0, 6, False, 6)


def test_cached_answers_are_parsed_and_only_kept_labels_reach_the_student(tmp_path) -> None:
    from slmexp.distill import cache_key, label_with_teacher, student_task
    from slmexp.tasks import load_task
    from slmexp.train import sft_examples, train_key

    cfg = compose(["arm=slm-distilled", f"paths.cache_dir={tmp_path / 'cache'}", "distill.limit=5"])
    task = load_task(cfg.task, ["train", "validation", "test"])
    raws = ["order_status", "Intent: Cancel order", "I think it is about billing", "  ", "refund_status\nbecause"]
    path = tmp_path / "cache" / "distill" / f"{cache_key(cfg, task, 'train')}.jsonl"
    path.parent.mkdir(parents=True)
    lines = [json.dumps({"i": i, "raw": r, "latency_s": 2.0, "input_tokens": 250, "output_tokens": 3})
             for i, r in enumerate(raws)]
    path.write_text("\n".join(lines) + '\n{"i": 7, "raw": "cut off by a cra')  # a crash mid-line is ignored

    def no_teacher():
        pytest.fail("the teacher was queried although every answer is cached")

    rows, block = label_with_teacher(cfg, task, tmp_path / "run", load_teacher=no_teacher)
    assert [r["status"] for r in rows] == ["kept", "kept", "rejected", "rejected", "kept"]
    assert block["rejected_reasons"] == {"empty output": 1, "not a label": 1}
    assert (block["n_queried"], block["n_cached"], block["cached"]) == (0, 5, True)
    assert block["cost_usd"] == pytest.approx(5 * 2.0 * 0.08925 / 3600, rel=1e-5)  # cpu-2core: USD/h x measured seconds
    assert block["cost"]["basis"] == "hardware"

    student = student_task(task, rows, block, "test")
    assert [r["label"] for r in student.splits["train"]] == ["order_status", "cancel_order", "refund_status"]
    assert "validation" not in student.splits  # eval loss would read gold labels
    assert student.sha256["train"] == f"distill:{block['data_sha256']}" != task.sha256["train"]
    assert train_key(cfg, student, "sha", Path("m")) != train_key(cfg, task, "sha", Path("m"))
    examples = sft_examples(student, "train", use_chat_template=True)
    assert [e["completion"][0]["content"] for e in examples] == ["order_status", "cancel_order", "refund_status"]
    assert len((tmp_path / "run" / block["file"]).read_text().splitlines()) == 5


def test_distill_config_errors_name_the_key() -> None:
    from slmexp.distill import validate

    with pytest.raises(ConfigError, match=r"^adapter\.name: distill=qwen2.5-coder-1.5b trains the student"):
        validate(compose(["distill=qwen2.5-coder-1.5b"]))
    with pytest.raises(ConfigError, match=r"^distill\.min_kept: must be a positive integer"):
        validate(compose(["arm=slm-distilled", "distill.min_kept=0"]))
    with pytest.raises(ConfigError, match=r"^distill\.limit"):
        validate(compose(["arm=slm-distilled", "distill.limit=-3"]))
    validate(compose(["arm=slm-distilled"]))


@pytest.mark.slow
def test_real_teacher_labels_train_the_student(tiny_model_dir, tiny_overrides, tmp_path) -> None:
    """The Qwen2.5-Coder-1.5B teacher (llama.cpp) labels 6 train inputs; the tiny student trains on the kept ones."""
    import os

    from slmexp.pipeline import run_job

    real = Path(os.environ.get("SLMEXP_CACHE_DIR", Path.home() / ".cache" / "slmexp"))
    cfg = compose(["arm=slm-distilled"])
    from slmexp import models
    from slmexp.errors import ModelResolutionError

    try:  # the converted teacher from the machine's cache (a fresh conversion takes minutes)
        models.resolve(cfg.distill.teacher.model, real)
    except ModelResolutionError as e:
        pytest.skip(f"no Qwen2.5-Coder-1.5B here (make baseline-model): {e}")
    cache = tmp_path / "cache"
    cache.mkdir()
    for sub in ("hf", "gguf"):  # models from the real cache; teacher answers and training in a fresh one
        if (real / sub).exists():
            (cache / sub).symlink_to(real / sub)
    overrides = [o for o in tiny_overrides if not o.startswith("paths.cache_dir")]
    rec = run_job(compose([*overrides, f"paths.cache_dir={cache}", "adapter=lora", "distill=qwen2.5-coder-1.5b",
                           "distill.limit=6", "distill.min_kept=1", "++distill.teacher.runtime.n_threads=1",
                           "train.max_steps=2", "eval.bench.n=0"]), tmp_path / "run")
    d = rec["distill"]
    assert d["n_queried"] == 6 and d["n_kept"] + d["n_rejected"] == 6 and d["n_kept"] >= 4
    assert rec["train"]["train_examples"] == d["n_kept"] and rec["train"]["cached"] is False
    assert d["cost_usd"] > 0 and d["cost"]["basis"] == "hardware"
