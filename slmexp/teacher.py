"""A second model in a job: the distillation teacher and the router's LLM, loaded and asked the same way.

Why one home: both are a model the job did not train, served as shipped next to the model under test, asked one
greedy answer per prompt, timed per request and priced per request, with answers cached by what determines them.
Keeping the loading and asking here means distillation and routing cannot drift apart (the same prompt through
the same chat template gives the same answer in both), and neither names a backend: the runtime class says what
artifact it needs and the quantizer prepares it, as for the model under test.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from slmexp.origin import fail
from slmexp.runtimes import last_usage

# Runtime keys that change how fast an answer comes, not what it says: left out of answer-cache keys.
EXECUTION_KEYS = ("n_threads", "threads", "batch_size", "n_batch", "concurrency", "timeout_s", "connect_timeout_s",
                  "max_retries")


def answer_config(runtime_cfg: DictConfig) -> dict[str, Any]:
    """A runtime config minus `EXECUTION_KEYS`: what determines its greedy answers."""
    c = OmegaConf.to_container(runtime_cfg, resolve=True)
    return {k: v for k, v in c.items() if k not in EXECUTION_KEYS}


def sub_config(cfg: DictConfig, model: DictConfig, runtime: DictConfig) -> DictConfig:
    """A config `build_runtime`, the quantizer and `cost` accept for a second model of the job: served as shipped
    (no adapter, quantization=none), with the job's seed, paths and cost profile."""
    return OmegaConf.create({
        "model": OmegaConf.to_container(model, resolve=True),
        "runtime": OmegaConf.to_container(runtime, resolve=True),
        "adapter": {"name": "none"}, "quantization": {"kind": "none", "name": "none"},
        "seed": int(cfg.seed), "paths": OmegaConf.to_container(cfg.paths, resolve=True),
    })


def load_model_runtime(sub: DictConfig, key: str, work_dir: Path) -> Any:
    """Resolve and load a second model (see `sub_config`); `key` names its config subtree in errors.

    The runtime class says whether it is remote (an endpoint: weights are resolved only if the config names a
    source) and which artifact it loads; `slmexp.quantize.prepare` makes that artifact from the shipped weights
    (untrained, quantization=none: a shipped GGUF as is, else the default export, cached by content). `work_dir`
    is this model's own folder in the run dir, so its files never mix with those of the model under test.
    """
    from slmexp import models
    from slmexp.errors import ModelResolutionError
    from slmexp.quantize import Source, needs_weights, prepare
    from slmexp.runtimes import build_runtime, runtime_class

    cls = runtime_class(sub.runtime)
    resolved = None
    if not cls.remote or any(sub.model.source.get(k) for k in ("path", "hub", "wheel")):
        try:
            resolved = models.resolve(sub.model, sub.paths.cache_dir,
                                      weights=needs_weights(sub, cls.needs, trained=False))
        except ModelResolutionError as e:
            if not cls.remote:
                raise fail(f"{key}.model.source", str(e)) from None
    source = Source(checkpoint=resolved.path if resolved is not None else None, adapter_path=None,
                    shipped_gguf=resolved.gguf_path if resolved is not None else None, trained=False)
    threads = sub.runtime.get("threads")
    artifact = prepare(sub.quantization, cls.needs, source, Path(work_dir), None,
                       cache_dir=Path(str(sub.paths.cache_dir)), threads=int(threads) if threads else None,
                       runtime_name=str(sub.runtime.name))
    return build_runtime(sub, str(resolved.path) if resolved is not None else None, None, artifact)


def answer(runtime: Any, prompt: str, max_new_tokens: int, until: list[str]) -> dict[str, Any]:
    """Greedy answer to one user turn, cut at the first `until` string, with its wall time and token counts.

    Through `runtime.stream`, which applies the model's chat template as the evaluation does and stops at `until`
    (server-side on endpoints); the stream is closed on every exit, so no generation runs on after the answer.
    Latency is request start -> last token (s, time.perf_counter).
    """
    from contextlib import closing

    t0 = time.perf_counter()
    text = ""
    with closing(runtime.stream(prompt, max_new_tokens, stop=list(until))) as chunks:
        for chunk, _t in chunks:
            text += chunk
            if any(stop in text for stop in until):
                break
    latency = time.perf_counter() - t0
    for stop in until:
        text = text.split(stop)[0]
    usage = last_usage(runtime)
    return {"raw": text, "latency_s": round(latency, 4), "input_tokens": usage.get("input_tokens"),
            "output_tokens": usage.get("output_tokens"), "token_source": usage.get("source")}
