"""Config checks: the `${slmexp_data:}` resolver and early validation of the composed config.

Validation runs before any model loads so that a typo costs a second, not a model conversion. The generic checks
live here; each plug-in (the runtime's class, the quantizer, the task kind) checks its own keys through its
`check`, looked up from the config, so this module names no backend. Errors name the dotted key and the
file:line (or command-line override) that set it (slmexp.origin).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from slmexp.origin import CONF_DIR, CONF_PKG, PACKAGE_DIR, REPO_ROOT, fail, key_origin
from slmexp.tasks.kinds import KINDS

__all__ = ["CONF_DIR", "CONF_PKG", "DATA_DIR", "REPO_ROOT", "fail", "key_origin", "register_resolvers", "validate"]

DATA_DIR = PACKAGE_DIR / "tasks" / "data"

ADAPTERS = ("none", "lora", "qlora", "dora")
ROLES = ("slm", "baseline")
DTYPES = ("float32", "bfloat16", "float16", "auto")


def register_resolvers() -> None:
    """Register `${slmexp_data:}` (the package's data dir) once; safe to call repeatedly."""
    if not OmegaConf.has_resolver("slmexp_data"):
        OmegaConf.register_new_resolver("slmexp_data", lambda: str(DATA_DIR))


register_resolvers()


def _choice(cfg: DictConfig, key: str, allowed: tuple[str, ...]) -> None:
    value = OmegaConf.select(cfg, key)
    if value not in allowed:
        raise fail(key, f"{value!r} is not one of {', '.join(allowed)}")


def _runtime_names_serving(kind: str) -> list[str]:
    """Runtime options (conf/runtime/*.yaml with their own `_target_`) whose class serves quantization `kind`:
    the suggestion in a mismatch error. Only read on that error path."""
    import yaml

    from slmexp.runtimes import runtime_class

    names = []
    for path in sorted((CONF_DIR / "runtime").glob("*.yaml")):
        target = (yaml.safe_load(path.read_text()) or {}).get("_target_")
        try:
            if target and kind in runtime_class({"_target_": target}).serves:
                names.append(path.stem)
        except Exception:  # a runtime whose module cannot be imported here suggests nothing
            continue
    return names


def _check_runtime_quantization(cfg: DictConfig) -> Any:
    """The runtime's class (from its `_target_`) serves the chosen quantization kind, and both plug-ins accept the
    config (their cheap `check`s: availability by find_spec, option values). Returns the runtime class."""
    from slmexp import quantize
    from slmexp.runtimes import runtime_class

    try:
        cls = runtime_class(cfg.runtime)
    except Exception as e:
        raise fail("runtime._target_", f"cannot import {cfg.runtime.get('_target_')!r}: {e}") from None
    runtime, kind = str(cfg.runtime.name), str(cfg.quantization.kind)
    if kind not in cls.serves:
        quant = cfg.quantization.get("name", kind)
        ok = " or ".join(f"quantization={k}" for k in cls.serves)
        others = [n for n in _runtime_names_serving(kind) if n != runtime]
        raise fail("quantization.kind",
                   f"quantization={quant} ({kind}) cannot run on runtime={runtime} (runtime.name); use {ok}"
                   + (f", or runtime={' / '.join(others)} for {kind}" if others else ""))
    cls.check(cfg)
    quantize.check(cfg)
    return cls


def validate(cfg: DictConfig) -> None:
    """Check the composed config before any stage runs; raise ConfigError naming the first bad key."""
    for key in ("model.name", "task.name", "runtime.name"):
        if not OmegaConf.select(cfg, key):
            raise fail(key, "must be set")
    from slmexp import bounds

    bounds.check(cfg)  # types and ranges of the numeric keys (a zero step count, a negative learning rate, ...)
    _choice(cfg, "model.role", ROLES)
    _choice(cfg, "model.dtype", DTYPES)
    _choice(cfg, "adapter.name", ADAPTERS)
    from slmexp.quantize import QUANTIZERS

    _choice(cfg, "quantization.kind", ("none", *QUANTIZERS))
    _choice(cfg, "task.kind", tuple(KINDS))
    runtime_cls = _check_runtime_quantization(cfg)
    src = cfg.model.source
    if not (src.get("path") or src.get("hub") or src.get("wheel")) and not runtime_cls.remote:
        raise fail("model.source", "needs at least one of path, hub, wheel (a model without weights, an API "
                   "model, runs only on runtime=openai)")
    if src.get("path") and not Path(str(src.path)).expanduser().exists():
        raise fail("model.source.path", f"no such file or directory: {src.path}")
    if cfg.adapter.name != "none":
        if not (cfg.task.get("data") or {}).get("train") and str(cfg.task.kind) != "lm_eval":
            raise fail("task.data.train", f"adapter={cfg.adapter.name} trains on the train split, which is not set")
        if int(cfg.train.max_steps or 0) <= 0 and float(cfg.train.num_train_epochs or 0) <= 0:
            raise fail("train.max_steps", "set train.max_steps or train.num_train_epochs to a positive number")
        for key, allowed in (("precision", ("auto", "bf16", "fp32")), ("sampling", ("random", "group_by_length"))):
            if cfg.train.get(key) is not None:  # absent from a user's own train file: train.py's default
                _choice(cfg, f"train.{key}", allowed)
    limit = cfg.eval.get("limit")
    if limit is not None and (not isinstance(limit, int | float) or limit <= 0):
        raise fail("eval.limit", f"must be a positive number or null, got {limit!r}")
    from slmexp.report.claims import check_config

    check_config(cfg)  # the sweep's claims: schema, and arms the sweep runs (names claims[i].field)
    kind = str(cfg.task.kind)
    if kind == "lm_eval":
        _check_lm_eval_task(cfg)
        return
    split = cfg.eval.split
    if OmegaConf.is_missing(cfg.task.data, split):
        raise fail(f"task.data.{split}", f"is not set: task={cfg.task.name} needs the path of its {split!r} JSONL "
                   f"(task.data.{split}=/path/to/{split}.jsonl)")
    if split not in cfg.task.data or not cfg.task.data[split]:
        raise fail("eval.split", f"task {cfg.task.name!r} has no {split!r} split (has: {list(cfg.task.data)})")
    if KINDS[kind].needs_labels and not cfg.task.get("labels"):
        raise fail("task.labels", f"a {kind} task needs a non-empty label list or mapping")
    if cfg.task.primary_metric not in KINDS[kind].metrics:
        raise fail("task.primary_metric", f"{cfg.task.primary_metric!r} is not a {kind} metric; one of "
                   f"{', '.join(KINDS[kind].metrics)}")


def _check_lm_eval_task(cfg: DictConfig) -> None:
    names = cfg.task.get("names")
    if not names or isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise fail("task.names", "list the lm-eval tasks to run, e.g. task.names=[arc_easy,hellaswag]")
    if cfg.adapter.name != "none":
        raise fail("adapter.name", f"adapter={cfg.adapter.name}: task=lm-eval runs lm-eval's benchmarks for "
                   "evaluation only; train on a slmexp task (task=support-intent, invoice-extraction, ...)")
    include = cfg.task.get("include_path")
    if include and not Path(str(include)).expanduser().is_dir():
        raise fail("task.include_path", f"not a directory: {include}")
