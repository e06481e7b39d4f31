"""A data-parallel rank other than 0 (see slmexp.distributed): the same training as rank 0, nothing written.

Apart from slmexp.distributed so that module stays a leaf that train.py can import (this one imports train).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from omegaconf import DictConfig

from slmexp.distributed import rank, validate


def worker_job(cfg: DictConfig) -> None:
    """A rank > 0: the same model, task and training as rank 0 (so the same cache decision), then exit."""
    from slmexp import config as slm_config
    from slmexp import models
    from slmexp.tasks import load_task
    from slmexp.train import train, train_key

    slm_config.validate(cfg)
    validate(cfg)
    splits = [s for s in ("train", "validation") if (cfg.task.get("data") or {}).get(s)]
    task = load_task(cfg.task, splits)
    resolved = models.resolve(cfg.model, cfg.paths.cache_dir)
    cache = Path(str(cfg.paths.cache_dir)).expanduser() / "trained" / train_key(cfg, task, resolved.sha256,
                                                                                   resolved.path)
    # rank 0's test in train.cached_or_train: a finished entry is reused there, so no process group forms
    if (cache / "train.json").exists() and (cache / "merged").exists() == bool(cfg.train.merge):
        return
    with tempfile.TemporaryDirectory(prefix=f"slmexp-rank{rank()}-train-") as tmp:
        train(cfg, task, resolved.path, Path(tmp))  # returns right after training on a worker: nothing saved
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
