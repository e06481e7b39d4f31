"""Config as a schema: the composed config checked against declared types, ranges and choices, every error at once.

    errors = schema.collect(cfg)      # [ConfigError(key, what, where), ...], in config order
    schema.validate(cfg)              # raises ConfigErrors (all of them) when there is any

Why pydantic (not Hydra structured configs): a structured config types a key but cannot say "a positive integer",
"between 0 and 1", or "one of these" without hand-written `__post_init__` checks, stops at the first error, and
would have to restate every default the YAML files already hold. pydantic declares type, range and choices in one
line, reports every error of a node in one pass, and is already installed by the pinned stack (lm-eval, wandb and
genai-prices depend on it). The YAML files stay the one home of the values (docs/configuration.md).

Order: each group is validated against its class (slmexp.schema.groups, .runtimes); then the cross-key rules and
the plug-ins' own checks (slmexp.schema.rules) run, skipping any key already reported, so one bad value says one
line.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from slmexp.errors import ConfigError, ConfigErrors
from slmexp.origin import fail

__all__ = ["collect", "validate"]


def resolved(cfg: DictConfig, key: str, errors: list[ConfigError]) -> Any:
    """The plain value of `key` with interpolations resolved. An interpolation that cannot resolve is an error
    naming the innermost key that holds it (appended to `errors`); UNRESOLVED is returned for its node then."""
    try:
        node = OmegaConf.select(cfg, key, throw_on_missing=False)
    except Exception as e:
        reason = str(e).splitlines()[0].split(" (", 1)[0] if str(e) else type(e).__name__
        errors.append(fail(key, f"cannot resolve its value: {reason}"))
        return UNRESOLVED
    if not OmegaConf.is_config(node):
        return node
    try:
        return _without_missing(OmegaConf.to_container(node, resolve=True, throw_on_missing=False))
    except Exception:  # find which key's interpolation fails
        for sub in node:
            resolved(cfg, f"{key}.{sub}", errors)
    return UNRESOLVED


def _without_missing(value: Any) -> Any:
    """`???` (a value the user must give) left out: the schema says "must be set" where the key is required, and
    the rules say what to set where a plug-in knows better (task.data.test, task.names)."""
    if isinstance(value, dict):
        return {k: _without_missing(v) for k, v in value.items() if v != "???"}
    return value


UNRESOLVED = object()  # a node whose interpolation failed: its error is already listed


def check_node(model: type, data: Any, prefix: str) -> list[ConfigError]:
    """Validate one node's plain value against its class; its errors as ConfigErrors keyed under `prefix`."""
    from pydantic import ValidationError

    from slmexp.schema.messages import to_config_errors

    if data is UNRESOLVED:
        return []
    if data is None:
        return [fail(prefix, "must be set")]
    try:
        model.model_validate(data)
    except ValidationError as e:
        return to_config_errors(e, data if isinstance(data, dict) else {}, prefix)
    return []


def _runtime_errors(cfg: DictConfig, key: str, errors: list[ConfigError]) -> list[ConfigError]:
    from slmexp.schema.runtimes import options_for

    data = resolved(cfg, key, errors)
    target = data.get("_target_") if isinstance(data, dict) else None
    if not target:
        return [fail(f"{key}._target_", "must be set (the runtime class)")]
    return check_node(options_for(str(target)), data, key)


def _quantization_errors(cfg: DictConfig, errors: list[ConfigError]) -> list[ConfigError]:
    from slmexp.quantize import QUANTIZERS, options
    from slmexp.schema.groups import QUANTIZATION_KINDS, QuantPlugin

    data = resolved(cfg, "quantization", errors)
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind in QUANTIZATION_KINDS:
        return check_node(QUANTIZATION_KINDS[kind], data, "quantization")
    if kind in QUANTIZERS:  # a plug-in's kind: its module's OPTIONS model, else only kind and name
        return check_node(options(str(kind)) or QuantPlugin, data, "quantization")
    return [fail("quantization.kind", f"{kind!r} is not one of none, {', '.join(QUANTIZERS)}")]


def _top_level_errors(cfg: DictConfig, errors: list[ConfigError]) -> list[ConfigError]:
    from slmexp.schema.groups import TopLevel

    data = {k: resolved(cfg, k, errors) for k in cfg if k in TopLevel.model_fields}
    return check_node(TopLevel, data, "")


def schema_errors(cfg: DictConfig) -> list[ConfigError]:
    """Every group's type/range/choice errors (the declared schema), in config order."""
    from slmexp.schema.groups import GROUPS

    errors: list[ConfigError] = []
    errors += _top_level_errors(cfg, errors)
    for group, model in GROUPS.items():
        if group in cfg:
            errors += check_node(model, resolved(cfg, group, errors), group)
    errors += _quantization_errors(cfg, errors)
    errors += _runtime_errors(cfg, "runtime", errors)
    for second in ("distill.teacher.runtime", "router.llm.runtime"):  # a teacher's or router LLM's own runtime
        if OmegaConf.select(cfg, second) is not None:
            errors += _runtime_errors(cfg, second, errors)
    return errors


def _raw(cfg: DictConfig, key: str) -> Any:
    """The value of `key` as written (an interpolation stays `${...}`), or None."""
    parent, _, last = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, throw_on_missing=False) if parent else cfg
    try:
        return node._get_node(last)._value() if OmegaConf.is_config(node) else None
    except Exception:
        return None


def _at_source(cfg: DictConfig, errors: list[ConfigError]) -> list[ConfigError]:
    """Drop the error of a key whose value is an interpolation of a key already reported (`train.seed: ${seed}`
    with a bad `seed`): the line belongs where the value was set, once."""
    keys = {e.key for e in errors}
    out = []
    for e in errors:
        raw = _raw(cfg, e.key)
        if isinstance(raw, str) and "${" in raw and any(k != e.key and k in raw for k in keys):
            continue
        out.append(e)
    return out


def collect(cfg: DictConfig) -> list[ConfigError]:
    """Every error of the config: the schema's, then the cross-key rules' and plug-ins' on keys not yet reported."""
    from slmexp.schema.rules import rule_errors

    errors = _at_source(cfg, schema_errors(cfg))
    bad = {e.key for e in errors}
    for e in rule_errors(cfg, bad):
        if not any(e.key == k or e.key.startswith(k + ".") or k.startswith(e.key + ".") for k in bad):
            errors.append(e)
            bad.add(e.key)
    return errors


def validate(cfg: DictConfig) -> None:
    """Raise ConfigErrors listing every error of `cfg` (one line each); return when there is none."""
    errors = collect(cfg)
    if errors:
        raise ConfigErrors(errors)
