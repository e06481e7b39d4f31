"""Types and ranges of the numeric config keys, checked before any model loads.

Why a table: a step count of 0, a negative learning rate or `eval.bench.n=abc` used to surface minutes later as a
trainer's or runtime's traceback (or, worse, as a run that silently did nothing). Each row says what the key must
be; `check` raises slmexp.origin's ConfigError naming the key and the override or file:line that set it.
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig, OmegaConf

from slmexp.origin import fail

# key -> (type, lowest allowed, is the lowest allowed itself?, read only when ...)
# "int" refuses 2.5 and "abc"; "num" takes ints and floats; None (null) is allowed only where noted.
_ALWAYS = None
ROWS: dict[str, tuple[str, float, bool, str | None]] = {
    "seed": ("int", 0, True, _ALWAYS),
    "eval.limit": ("num", 0, False, _ALWAYS),  # null = all examples
    "task.generation.max_new_tokens": ("int", 1, True, _ALWAYS),  # before eval.bench.max_new_tokens, which copies it
    "eval.num_fewshot": ("int", 0, True, _ALWAYS),
    "eval.bootstrap_iters": ("int", 0, True, _ALWAYS),
    "eval.bench.n": ("int", 0, True, _ALWAYS),
    "eval.bench.warmup": ("int", 0, True, _ALWAYS),
    "eval.bench.max_new_tokens": ("int", 1, True, _ALWAYS),
    "eval.bench.concurrency": ("int", 1, True, _ALWAYS),
    "runtime.batch_size": ("int", 1, True, _ALWAYS),  # `auto` (vLLM) is allowed: see _AUTO
    "runtime.timeout_s": ("num", 0, False, _ALWAYS),
    "runtime.connect_timeout_s": ("num", 0, False, _ALWAYS),
    "runtime.max_retries": ("int", 1, True, _ALWAYS),
    "runtime.concurrency": ("int", 1, True, _ALWAYS),
    "train.max_steps": ("int", 0, True, "train"),
    "train.num_train_epochs": ("num", 0, True, "train"),
    "train.per_device_train_batch_size": ("int", 1, True, "train"),
    "train.gradient_accumulation_steps": ("int", 1, True, "train"),
    "train.learning_rate": ("num", 0, False, "train"),
    "train.warmup_ratio": ("num", 0, True, "train"),
    "train.weight_decay": ("num", 0, True, "train"),
    "train.max_length": ("int", 1, True, "train"),
    "train.train_limit": ("int", 1, True, "train"),
    "train.eval_steps": ("int", 0, True, "train"),
    "train.eval_limit": ("int", 1, True, "train"),
    "train.early_stopping.patience": ("int", 0, True, "train"),
    "train.early_stopping.min_delta": ("num", 0, True, "train"),
    "train.early_stopping.min_epochs": ("num", 0, True, "train"),
    "train.logging_steps": ("int", 1, True, "train"),
}
_AUTO = {"runtime.batch_size"}  # keys that also take the string `auto`
_NULLABLE = {"eval.limit", "train.train_limit", "train.eval_limit", "runtime.timeout_s", "runtime.connect_timeout_s",
             "runtime.max_retries", "runtime.concurrency", "eval.bench.max_new_tokens", "seed"}


def _value(cfg: DictConfig, key: str) -> tuple[bool, Any]:
    try:
        node = OmegaConf.select(cfg, key, default="<absent>", throw_on_missing=False)
    except Exception:  # an interpolation that cannot resolve: reported by whoever reads it
        return False, None
    return node != "<absent>", node


def _number(value: Any, kind: str) -> float | None:
    if isinstance(value, bool):
        return None
    if kind == "int":
        return float(value) if isinstance(value, int) else None
    return float(value) if isinstance(value, int | float) else None


def check(cfg: DictConfig) -> None:
    """Raise ConfigError for the first numeric key of ROWS whose type or range is wrong."""
    trains = str(OmegaConf.select(cfg, "adapter.name", default="none")) != "none"
    for key, (kind, low, inclusive, when) in ROWS.items():
        if when == "train" and not trains:
            continue
        present, value = _value(cfg, key)
        if not present or (value is None and key in _NULLABLE) or (key in _AUTO and value == "auto"):
            continue
        if value is None:
            raise fail(key, "must be set (null is not allowed here)")
        number = _number(value, kind)
        what = "an integer" if kind == "int" else "a number"
        if number is None:
            raise fail(key, f"must be {what}, got {value!r} ({type(value).__name__})")
        if math.isnan(number) or math.isinf(number):
            raise fail(key, f"must be a finite number, got {value!r}")
        if number < low or (number == low and not inclusive):
            bound = f">= {low:g}" if inclusive else f"> {low:g}"
            raise fail(key, f"must be {bound}, got {value!r}")
    if trains and float(OmegaConf.select(cfg, "train.warmup_ratio", default=0) or 0) > 1:
        raise fail("train.warmup_ratio", "is a share of the training steps: between 0 and 1")
