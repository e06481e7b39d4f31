"""The training stage as the job sees it: train (or reuse a cached training), record the `train` block, and
say which checkpoint the later stages serve (the merged one, or the base with an unmerged adapter)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from slmexp.record import RunRecord
from slmexp.stages import Timer


def run(cfg: DictConfig, task: Any, resolved: Any, run_dir: Path, record: RunRecord,
        stage: Timer) -> tuple[Path | None, str | None]:
    """Train (or reuse a cached training); (the checkpoint to evaluate, an unmerged adapter to stack on it)."""
    from slmexp import distributed
    from slmexp.train import cached_or_train

    with stage("train"):
        result = cached_or_train(cfg, task, resolved, run_dir / "train")
    result.block.update(distributed.train_block())  # under accelerate launch: rank 0, trained with N ranks
    distributed.leave()  # from here on one process: merge is done, evaluation runs on rank 0 alone
    record.set("train", result.block)
    eval_path, adapter_path = resolved.path, None
    if result.merged_dir is not None:
        eval_path = result.merged_dir
    else:  # unmerged: the runtime stacks the adapter on the base
        adapter_path = str(result.adapter_dir)
    record.data["model"]["evaluated_path"] = str(eval_path)
    record.data["model"]["adapter"] = str(cfg.adapter.name)
    record.save()
    return eval_path, adapter_path


