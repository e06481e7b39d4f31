"""`tune validate` for slmexp's config tree: every `_target_` in every composed option binds its keys to the
target's signature, without calling it.

Why: Hydra only finds out that `runtime.n_ctxx` or `adapter.peft.lora_alpah` is not an argument when the target is
instantiated, after the model has been resolved, trained or exported. Binding the keys here (torchtune's
`config/_validate.py` idea) catches such a key in any YAML in a second, and reports every bad key at once.

Runtimes are bound with the keywords `build_runtime` adds (model_path, adapter_path, trust_remote_code, seed,
artifact_path for GGUF/ONNX runtimes, the bnb artifact's quantization_config for runtimes that serve bnb), and may
not take `**kwargs`. A library class that has named parameters and a `**kwargs` (transformers.BitsAndBytesConfig,
which only logs unknown keys) is checked against its named parameters. Targets whose package is not installed
here (e.g. a launcher plugin) are skipped.
"""

from __future__ import annotations

import importlib.util
import inspect
from typing import Any

import pytest

from slmexp.config import CONF_DIR

HYDRA_KEYS = ("_target_", "_convert_", "_recursive_", "_partial_", "_args_")
RUNTIME_KEYWORDS = {"model_path", "adapter_path", "trust_remote_code", "seed"}
ARTIFACT_KEYWORDS = {"gguf": {"artifact_path"}, "onnx": {"artifact_path"}}  # by the runtime class's `needs`
RUNTIME_KWARGS = {"bnb": {"quantization_config"}}  # by the quantization kinds the runtime class `serves`


def _options() -> list[str]:
    """`group=option` for every YAML that can bring a `_target_` or set a target's keys: one with a `_target_`, a
    defaults list (it may pull one in) or `@package _global_` (an arm, a sweep: it may set runtime keys). The rest
    (models, tasks, prices...) cannot, and composing costs ~0.1 s each."""
    out = []
    for path in sorted(CONF_DIR.rglob("*.yaml")):
        rel = path.relative_to(CONF_DIR)
        text = path.read_text()
        if len(rel.parts) > 1 and rel.parts[0] != "local" and (
                "_target_" in text or "defaults:" in text or "@package _global_" in text):
            out.append(f"{'/'.join(rel.parts[:-1])}={path.stem}")
    return out


def _compose_all() -> list[tuple[str, dict[str, Any]]]:
    """(override, the composed config with Hydra's own section, unresolved) for every option that composes here
    (a launcher or sweeper plugin may not be installed: tests/test_sweeps.py covers those where they are)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    configs = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="slmexp"):
        for override in ["", *_options()]:
            try:
                cfg = compose(config_name="config", overrides=[override] if override else [],
                              return_hydra_config=True)
            except Exception:  # e.g. hydra/launcher=parallel without hydra-joblib-launcher
                if override.startswith(("hydra/", "sweep=")):
                    continue
                raise
            configs.append((override or "(defaults)", OmegaConf.to_container(cfg, resolve=False)))
    return configs


def _target_nodes(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(dotted path, mapping) for every mapping with a `_target_`, depth first."""
    found = []
    if isinstance(node, dict):
        if "_target_" in node:
            found.append((path, node))
        for key, value in node.items():
            found += _target_nodes(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _target_nodes(value, f"{path}[{i}]")
    return found


def _signature(target: Any) -> inspect.Signature:
    """The signature to bind against: a class's constructor without `self`; `**kwargs` dropped where the target
    also names its parameters (its named ones are its interface; the catch-all would accept any typo)."""
    sig = inspect.signature(target)
    named = [p for p in sig.parameters.values() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    if named:
        sig = sig.replace(parameters=[p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD])
    return sig


def _keywords(target: Any, keys: set[str]) -> tuple[set[str], list[str]]:
    """The keywords Hydra + slmexp pass to `target` for these YAML keys; and contract problems of a runtime."""
    if not (inspect.isclass(target) and isinstance(getattr(target, "needs", None), str)):
        return keys, []
    problems = []
    if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(target).parameters.values()):
        problems.append("a runtime takes no **kwargs catch-all: every YAML key must be a named parameter")
    extra = set(RUNTIME_KEYWORDS) | ARTIFACT_KEYWORDS.get(target.needs, set())
    for kind in getattr(target, "serves", ()):
        extra |= RUNTIME_KWARGS.get(kind, set())
    return keys | extra, problems


def test_every_target_binds_its_keys() -> None:
    from hydra._internal.utils import _locate

    configs = _compose_all()
    errors: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    checked = 0
    for override, cfg in configs:
        for path, node in _target_nodes(cfg):
            target_name = str(node["_target_"])
            keys = {str(k) for k in node if k not in HYDRA_KEYS}
            if (target_name, frozenset(keys)) in seen:
                continue
            seen.add((target_name, frozenset(keys)))
            if importlib.util.find_spec(target_name.split(".")[0]) is None:
                continue  # not installed here
            where = f"{override}: {path} ({target_name})"
            try:
                target = _locate(target_name)
            except Exception as e:
                errors[where] = f"cannot import: {e}"
                continue
            kwargs, problems = _keywords(target, keys)
            try:
                _signature(target).bind_partial(**dict.fromkeys(kwargs))
            except TypeError as e:
                problems.append(str(e))
            checked += 1
            if problems:
                errors[where] = "; ".join(problems)
    assert checked >= 8, f"only {checked} targets were checked: is the config tree there?"
    assert not errors, "keys that the target does not accept:\n" + "\n".join(f"  {k}: {v}" for k, v in errors.items())


def test_a_bad_key_is_reported_with_its_target() -> None:
    """The check itself: a misspelt runtime key and a misspelt BitsAndBytesConfig key both fail to bind."""
    from slmexp.runtimes.llamacpp import LlamaCppRuntime

    kwargs, problems = _keywords(LlamaCppRuntime, {"name", "n_ctx"})
    assert problems == [] and {"artifact_path", "seed"} <= kwargs
    _signature(LlamaCppRuntime).bind_partial(**dict.fromkeys(kwargs))
    with pytest.raises(TypeError, match="n_ctxx"):
        _signature(LlamaCppRuntime).bind_partial(**dict.fromkeys(kwargs | {"n_ctxx"}))
    if importlib.util.find_spec("transformers") is not None:
        from transformers import BitsAndBytesConfig

        with pytest.raises(TypeError, match="load_in_4bitt"):
            _signature(BitsAndBytesConfig).bind_partial(load_in_4bitt=True)

    class CatchAll:
        needs = "checkpoint"
        serves = ("none",)

        def __init__(self, model_path: str | None = None, **kwargs: Any) -> None: ...

    assert _keywords(CatchAll, {"name"})[1], "a runtime with **kwargs must be reported"
