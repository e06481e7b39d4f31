"""Kind `agent` (slmexp/tasks/agent): episodes of a goal, tools over the episode's data and a checker.

Why these tests: an agent's score must mean "the job got done", and nothing a model writes may crash a sweep. So a
scripted OpenAI-compatible endpoint that plays each gold trajectory must score success 1.0 through the kind's own
runner, and one that calls a missing tool, passes bad arguments or loops must fail each episode with its reason,
every error counted. The shipped data must regenerate byte for byte, and every gold trajectory must solve its own
episode under the checker. Real engines run an episode end to end: the tiny transformers llama through the whole
job (the constrained tool-call grammar per step, the record's per-episode $; training rows are checked apart), and
the real SmolLM2-135M GGUF on llama.cpp (slow).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from datagen import agent_support as gen
from slmexp.tasks import load_task
from slmexp.tasks.agent import judge as judge_mod
from slmexp.tasks.agent.runner import evaluate, tools_source
from slmexp.tasks.agent.steps import call_steps, sft_rows
from slmexp.tasks.agent.toolbox import load
from tests.chat_server import ChatServer, serving
from tests.conftest import compose

TASK = ["task=agent-support"]


@pytest.fixture(scope="module")
def task():
    return load_task(compose(TASK).task, ["train", "validation", "test"])


# --- the data -------------------------------------------------------------------------------------------------------


def test_shipped_episodes_regenerate_byte_for_byte(tmp_path) -> None:
    gen.main(["--out", str(tmp_path)])
    for split, size in gen.SPLIT_SIZES.items():
        shipped = (gen.DEFAULT_OUT_DIR / f"{split}.jsonl").read_bytes()
        assert (tmp_path / f"{split}.jsonl").read_bytes() == shipped, split
        assert len(shipped.splitlines()) == size
    assert gen.SPLIT_SIZES["train"] >= 300 and gen.SPLIT_SIZES["test"] >= 60


def test_every_gold_trajectory_solves_its_episode_in_1_to_4_calls(task) -> None:
    box = load(tools_source(task.cfg))
    for split, rows in task.splits.items():
        for row in rows:
            gold = row["target"]
            assert 1 <= len(gold["calls"]) <= 4, row["id"]
            turns = [{"raw": "", "text": "", "calls": [c], "input_tokens": 1, "output_tokens": 1}
                     for c in gold["calls"]] + [{"raw": gold["reply"], "text": gold["reply"], "calls": []}]
            metrics, reason = judge_mod.judge(box, row, gold, row["tools"], {"turns": turns, "wall_s": 1.0,
                                                                            "answer_s": 1.0, "max_steps": 6})
            assert (metrics["success"], reason) == (1.0, "solved"), (split, row["id"], reason)
            assert metrics["tool_errors"] == 0 and metrics["valid_calls"] == len(gold["calls"])


def test_training_rows_are_one_example_per_assistant_turn_in_the_text_form(task) -> None:
    row = next(r for r in task.splits["train"] if len(r["target"]["calls"]) == 3)
    rows = sft_rows(task.cfg, row)
    assert len(rows) == 4  # three calls and the reply, each with its whole history
    assert [len(r["prompt"]) for r in rows] == [2, 4, 6, 8]  # system (tools) + user, then +assistant +tool result
    first, last = rows[0], rows[-1]
    assert first["prompt"][0]["role"] == "system" and '"name": "find_customer"' in first["prompt"][0]["content"]
    assert json.loads(first["completion"][0]["content"].split("\n")[1])["name"] == row["target"]["calls"][0]["name"]
    assert "<tool_response>" in last["prompt"][-1]["content"]  # the tool's real result, run on the row's data
    assert last["completion"] == [{"role": "assistant", "content": row["target"]["reply"]}]


def test_the_constraint_offers_the_tools_and_final_answer(task) -> None:
    from jsonschema import Draft202012Validator

    spec = call_steps(task)
    row = task.splits["test"][0]
    doc = {"prompt": next(p for p in spec.by_prompt if row["text"] in p)}
    schema = spec.for_doc(doc).schema
    ok = Draft202012Validator(schema)
    assert ok.is_valid(row["target"]["calls"][0])
    assert ok.is_valid({"name": "final_answer", "arguments": {"answer": "Done."}})
    assert not ok.is_valid({"name": "delete_everything", "arguments": {}})
    assert spec.max_chars is not None  # bounded strings: decoding.budget=fit can close every call


# --- a scripted OpenAI-compatible endpoint ----------------------------------------------------------------------


def _player(rows: list[dict]):
    """Plays an episode by its goal (the first user turn): `runtime.model` picks the behaviour."""

    def reply(req: dict) -> dict:
        goal = req["messages"][0]["content"]
        row = next(r for r in rows if r["text"] in goal)
        step = sum(m["role"] == "assistant" for m in req["messages"])
        calls = list(row["target"]["calls"])
        if req["model"] == "missing-tool":
            calls = [{"name": "lookup_everything", "arguments": {"q": row["text"]}}, *calls[1:]]
        elif req["model"] == "bad-arguments":
            calls = [{"name": calls[0]["name"], "arguments": {"wrong": 1}}, *calls[1:]]
        elif req["model"] == "loops":
            calls = [calls[0]] * 99
        if step >= len(calls):
            return {"role": "assistant", "content": row["target"]["reply"]}
        call = calls[step]
        return {"role": "assistant", "content": None, "tool_calls": [{
            "id": f"call_{step}", "type": "function",
            "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])}}]}

    return reply


@pytest.fixture
def server(task) -> Iterator[ChatServer]:
    pytest.importorskip("openai")
    with serving(_player(task.splits["test"])) as srv:
        yield srv


def _run(server: ChatServer, task, model: str, tmp_path: Path, limit: int = 10):
    from slmexp.runtimes.openai import OpenAIRuntime

    eval_cfg = compose([*TASK, f"eval.limit={limit}"]).eval
    with OpenAIRuntime(base_url=server.base_url, model=model) as rt:
        return evaluate(rt, task, eval_cfg, tmp_path / "lm_eval")


def test_an_endpoint_playing_the_gold_trajectories_scores_success_one(server, task, tmp_path) -> None:
    result = _run(server, task, "scripted", tmp_path)
    m = result.metrics
    assert (result.n_examples, m["success"], m["tool_errors"]) == (10, 1.0, 0.0)
    gold_calls = [len(r["target"]["calls"]) for r in task.splits["test"][:10]]
    assert m["tool_calls"] == pytest.approx(sum(gold_calls) / 10)
    assert m["steps"] == pytest.approx(m["tool_calls"] + 1)  # every call, then the answer
    assert m["input_tokens"] > 0 and m["output_tokens"] == pytest.approx(12 * m["steps"])
    speed = result.speed
    assert speed["n_requests"] == 10 and speed["usage"]["requests"] == 10 and speed["requests_per_s"] > 0
    assert [r["id"] for r in speed["requests"]] == [r["id"] for r in task.splits["test"][:10]]
    samples = [json.loads(x) for x in result.samples_path.read_text().splitlines()]
    assert {s["success"] for s in samples} == {1.0} and samples[0]["id"] == "ag-test-0001"
    # the stored transcripts re-score to the same metrics with no model (what `slmexp rescore` does)
    from slmexp import generations
    from slmexp.rescore import metric_function

    score = metric_function("agent")
    for row in generations.read(result.generations_path):
        assert score(row["doc"], [row["raw"]]) == row["metrics"]
        assert row["extracted"]["reason"] == "solved"


@pytest.mark.parametrize(("model", "reason"), [
    ("missing-tool", r"wrong final data|does not state"),
    ("bad-arguments", r"wrong final data|does not state"),
    ("loops", r"^no final answer within max_steps=6 model calls \(the same \w+ call 6 times\)$"),
])
def test_a_missing_tool_bad_arguments_or_a_loop_fail_with_the_reason(server, task, tmp_path, model, reason) -> None:
    # episodes whose first call changes or reads data the answer needs (not the read-only status episodes)
    result = _run(server, task, model, tmp_path, limit=6)
    rows = [json.loads(x) for x in result.samples_path.read_text().splitlines()]
    assert result.metrics["success"] < 1.0
    failed = [r for r in rows if r["success"] == 0.0]
    assert failed and all(__import__("re").search(reason, r["reason"]) for r in failed), failed
    if model == "loops":
        assert result.metrics["steps"] == 6.0 and len(failed) == 6
    else:
        assert result.metrics["tool_errors"] == 1.0  # the first call of every episode, fed back and counted
        assert result.metrics["valid_calls"] == pytest.approx(result.metrics["tool_calls"] - 1)


# --- real engines -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("decoding", ["free", pytest.param("constrained", marks=pytest.mark.slow)])  # ~12 s
def test_a_tiny_model_job_plays_episodes_and_prices_them(tiny_overrides, tmp_path, decoding) -> None:
    pytest.importorskip("llguidance")
    from slmexp.pipeline import run_job
    from slmexp.record import load as load_record

    cfg = compose([*tiny_overrides, *TASK, "eval.limit=2", "task.agent.max_steps=2", f"decoding={decoding}",
                   f"task.generation.max_new_tokens={48 if decoding == 'constrained' else 6}"])
    run_job(cfg, run_dir=tmp_path / "run")
    rec = load_record(tmp_path / "run")
    assert rec["run"]["status"] == "finished", rec["run"].get("error")
    m, speed = rec["metrics"], rec["speed"]
    assert m["n_examples"] == 2 and m["formulation"] == "agent/chat_template/0-shot"
    assert m["values"]["steps"] > 0 and m["values"]["input_tokens"] > 0
    assert speed["n_requests"] == 2 and speed["timing_note"].startswith("one request = one whole episode")
    assert rec["cost"]["usd_per_1k_requests"] > 0  # $ per 1k episodes, on the hardware basis
    for row in [json.loads(x) for x in (tmp_path / "run" / "generations.jsonl").read_text().splitlines()]:
        turns = json.loads(row["raw"])["turns"]
        assert turns and (decoding == "free" or all(t["calls"] for t in turns))  # constrained: every turn calls
        assert row["extracted"]["reason"]


@pytest.mark.slow  # SmolLM2-135M on llama.cpp, two episodes of up to 3 model calls (~20 s on 2 cores)
def test_smollm2_plays_episodes_on_llamacpp(task, tmp_path) -> None:
    pytest.importorskip("llama_cpp")
    from slmexp import models
    from slmexp.runtimes.llamacpp import LlamaCppRuntime

    cfg = compose([*TASK, "eval.limit=2", "task.agent.max_steps=3"])
    resolved = models.resolve(cfg.model, cfg.paths.cache_dir, weights=False)
    small = load_task(cfg.task, ["test"])
    with LlamaCppRuntime(str(resolved.path), artifact_path=str(resolved.gguf_path), n_ctx=4096, n_threads=2) as rt:
        result = evaluate(rt, small, cfg.eval, tmp_path / "lm_eval")
    assert result.n_examples == 2 and 1.0 <= result.metrics["steps"] <= 3.0
    assert result.speed["usage"]["input_tokens"] > 0 and result.speed["requests_per_s"] > 0
    rows = [json.loads(x) for x in result.samples_path.read_text().splitlines()]
    assert all(r["reason"] for r in rows)


def test_agent_needs_a_runtime_that_chats() -> None:
    from slmexp.errors import ConfigError
    from slmexp.schema.rules import task_fits_its_kind

    with pytest.raises(ConfigError, match=r"^runtime\.name: runtime=vllm cannot run multi-turn chat"):
        task_fits_its_kind(compose([*TASK, "runtime=vllm"]))
