"""The generation cache (`eval.cache=true`, slmexp.gencache): a re-run of the same artifact, prompts and generation
settings reads its answers back instead of generating them; any change to one of the three generates again."""

from __future__ import annotations

import json

import pytest

from slmexp.pipeline import run_job
from tests.conftest import compose


def _raw(run_dir) -> list[str]:
    return [json.loads(line)["raw"] for line in (run_dir / "generations.jsonl").read_text().splitlines()]


@pytest.mark.slow  # four tiny runs
def test_rerun_reads_answers_back_and_a_new_setting_generates_again(tiny_overrides, tmp_path) -> None:
    base = [*tiny_overrides, "eval.cache=true", "eval.bench.n=0"]
    first = run_job(compose(base), run_dir=tmp_path / "a")["metrics"]["generation_cache"]
    assert first["answered_now"] == 6 and first["from_cache"] == 0 and len(first["artifact_sha256"]) == 64
    again = run_job(compose([*base, "seed=7"]), run_dir=tmp_path / "b")  # another job, same artifact and prompts
    cached = again["metrics"]["generation_cache"]
    assert cached["answered_now"] == 0 and cached["from_cache"] == 6 and cached["file"] == first["file"]
    assert _raw(tmp_path / "b") == _raw(tmp_path / "a")
    changed = run_job(compose([*base, "task.generation.max_new_tokens=3"]), run_dir=tmp_path / "c")
    assert changed["metrics"]["generation_cache"]["answered_now"] == 6  # other settings: generated again
    off = run_job(compose([*tiny_overrides, "eval.bench.n=0"]), run_dir=tmp_path / "d")
    assert "generation_cache" not in off["metrics"]
