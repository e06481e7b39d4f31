"""The resume fingerprint is what determines the result: logging, reporting, pricing and locations do not change it;
an edited data file or changed weights under the same path do."""

from __future__ import annotations

import shutil

from omegaconf import OmegaConf

from slmexp.config import DATA_DIR
from slmexp.fingerprint import fingerprint, refresh_cost
from tests.conftest import compose


def _fp(overrides: list[str]) -> str:
    cfg = compose(overrides)
    return fingerprint(OmegaConf.to_container(cfg, resolve=False), OmegaConf.to_container(cfg, resolve=True))


def test_fingerprint_ignores_logger_baseline_cost_and_paths_but_not_data_or_weights(tmp_path) -> None:
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    (model / "model.safetensors").write_bytes(b"weights v1")
    base = [f"paths.data_dir={data}", f"model.source.path={model}", f"paths.cache_dir={tmp_path}/cache"]
    fp = _fp(base)
    for extra in (["logger=wandb"], ["baseline=qwen2.5-coder-1.5b"], ["cost=l4-24gb"],
                  [f"paths.output_dir={tmp_path}/elsewhere"], ["optimized_metric=strict_match"]):
        assert _fp([*base, *extra]) == fp, extra
    assert _fp([*base, "eval.limit=5"]) != fp
    test = data / "support_intent" / "test.jsonl"
    test.write_text(test.read_text().replace("cancel_order", "return_item", 1))  # same path, edited content
    edited = _fp(base)
    assert edited != fp
    (model / "model.safetensors").write_bytes(b"weights v2")  # same folder, new weights
    assert _fp(base) not in (fp, edited)


def test_cost_only_change_recomputes_cost_from_stored_speed() -> None:
    cfg = compose(["cost=l4-24gb"])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    speed = {"requests_per_s": 2.0, "output_tokens_per_s": 50.0, "concurrency": 1}
    previous = {"run": {"status": "finished"}, "config": {"cost": {"name": "cpu-2core"}}, "speed": speed,
                "metrics": {"values": {"exact_match": 0.5}}, "cost": {"profile": "cpu-2core"}}
    assert refresh_cost(previous, cfg, resolved)
    assert previous["cost"]["profile"] == "l4-24gb" and previous["run"]["cost_recomputed"]
    assert previous["config"]["cost"]["name"] == "l4-24gb"
    assert not refresh_cost(previous, cfg, resolved)  # already current: nothing to do


def test_a_job_that_trains_nothing_ignores_the_train_config() -> None:
    """Zero-shot and shipped-model arms read no `train.*`: a change to the training defaults (or a sweep's train
    overrides) must not re-run them, while a LoRA arm's fingerprint still follows every train key."""
    assert _fp(["train.max_steps=40"]) == _fp([])
    assert _fp(["arm=llm-baseline", "train.per_device_train_batch_size=4"]) == _fp(["arm=llm-baseline"])
    assert _fp(["adapter=lora", "train.max_steps=40"]) != _fp(["adapter=lora"])
    assert _fp(["distill=qwen2.5-coder-1.5b", "adapter=lora", "train.learning_rate=1e-4"]) != _fp(
        ["distill=qwen2.5-coder-1.5b", "adapter=lora"])
