"""What a runtime can do, read in one place: the core asks these functions, never the class with getattr.

The Runtime Protocol (slmexp.runtimes) states every attribute; the optional ones have the defaults below, so a
runtime from another package that predates a capability still loads (it simply does not offer it). Adding a
capability: declare it in the Protocol's docstring, give it a default here, read it through this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig


@dataclass(frozen=True)
class Capabilities:
    """A runtime class's declared facts (class attributes; nothing is built to read them)."""

    remote: bool  # requests go to a server: no local weights, no adapter, no energy figure
    concurrent_requests: bool  # stream() may run from several threads (the speed stage's concurrent pass)
    scores_choices: bool  # log-likelihood of each label (task.formulation=choice)
    constrained_decoding: str | None  # how it constrains output (decoding=constrained), None when it cannot
    constrained_decoding_note: str | None  # why it cannot, in words, for the error
    has_preflight: bool  # a job-time check before anything is resolved (an endpoint's reachability)
    options: type | None  # a pydantic model of its YAML keys (slmexp.schema validates them), None: undeclared


def capabilities(cls: Any) -> Capabilities:
    """The capabilities a runtime class (or a built runtime) declares, optional ones defaulted."""
    return Capabilities(
        remote=bool(getattr(cls, "remote", False)),
        concurrent_requests=bool(getattr(cls, "concurrent_requests", False)),
        scores_choices=bool(getattr(cls, "scores_choices", False)),
        constrained_decoding=getattr(cls, "constrained_decoding", None) or None,
        constrained_decoding_note=getattr(cls, "constrained_decoding_note", None),
        has_preflight=callable(getattr(cls, "preflight", None)),
        options=getattr(cls, "options", None) if isinstance(getattr(cls, "options", None), type) else None,
    )


def preflight(cls: type, cfg: DictConfig) -> None:
    """Run the class's own pre-flight, if it declares one (slmexp.stages.validate, before any model is resolved)."""
    if capabilities(cls).has_preflight:
        cls.preflight(cfg)


def serving_facts(runtime: Any) -> dict[str, Any]:
    """How the loaded runtime served the accuracy pass (the record's speed block): load time, batch size, dtype,
    shared-prefix statistics (None where the runtime does not report one)."""
    return {"load_s": float(getattr(runtime, "load_s", 0.0) or 0.0),
            "batch_size": getattr(runtime, "batch_size", None),
            "dtype_name": getattr(runtime, "dtype_name", None),
            "prefix_stats": getattr(runtime, "prefix_stats", None),
            "memory_footprint": getattr(runtime, "memory_footprint", None)}


def last_usage(runtime: Any) -> dict[str, Any]:
    """Token counts of this thread's last stream() (empty when the runtime reports none: counted per chunk)."""
    return dict(getattr(runtime, "last_usage", None) or {})
