"""What a runtime can do, read in one place: the core asks these functions, never the class with getattr.

The Runtime Protocol (slmexp.runtimes) states every attribute; the optional ones have the defaults below, so a
runtime from another package that predates a capability still loads (it simply does not offer it). Adding a
capability: declare it in the Protocol's docstring, give it a default here, read it through this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from slmexp.origin import fail

if TYPE_CHECKING:
    from slmexp.decoding.spec import Constraint
    from slmexp.runtimes._chat import ChatTurn


@dataclass(frozen=True)
class Capabilities:
    """A runtime class's declared facts (class attributes; nothing is built to read them)."""

    remote: bool  # requests go to a server: no local weights, no adapter, no energy figure
    concurrent_requests: bool  # stream() may run from several threads (the speed stage's concurrent pass)
    scores_choices: bool  # log-likelihood of each label (task.formulation=choice; `score_labels`)
    constrained_decoding: str | None  # how it constrains output (decoding=constrained), None when it cannot
    constrained_decoding_note: str | None  # why it cannot, in words, for the error
    has_preflight: bool  # a job-time check before anything is resolved (an endpoint's reachability)
    options: type | None  # a pydantic model of its YAML keys (slmexp.schema validates them), None: undeclared
    chat_tools: bool  # multi-turn chat with tool schemas and an optional constraint per turn (`chat`)


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
        chat_tools=bool(getattr(cls, "chat_tools", False)),
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


def request_latencies(lm: Any) -> list[float] | None:
    """The list an `lm_eval_model()` appends each accuracy-pass request's seconds to (`request_latencies_s`, the
    Protocol's optional per-request timing), or None where it keeps none; slmexp.evaluate clears it before the pass."""
    latencies = getattr(lm, "request_latencies_s", None)
    return latencies if isinstance(latencies, list) else None


def _name(runtime: Any) -> str:
    """The runtime's config name (a built runtime's `name`), else its class name."""
    name = getattr(runtime, "name", None)
    return name if isinstance(name, str) else getattr(runtime, "__name__", type(runtime).__name__)


def score_labels(runtime: Any, context: str, continuations: Sequence[str], *, key: str = "runtime.name"
                 ) -> list[float]:
    """log p(continuation | context) of each continuation (summed over its tokens), one prompt in one call.

    The runtime's own `score_labels` where it has one (transformers: the shared-prefix KV kernel); the default for
    a runtime that declares `scores_choices` without it: lm-eval `loglikelihood` requests on its `lm_eval_model()`.
    A runtime without `scores_choices` is refused in one line naming `key`.
    """
    if not capabilities(runtime).scores_choices:
        raise fail(key, f"runtime={_name(runtime)} cannot score labels (each label's log-likelihood): chat "
                   "endpoints return text; use a local runtime (transformers, llamacpp, ortgenai, vllm)")
    own = getattr(runtime, "score_labels", None)
    if callable(own):
        return [float(x) for x in own(context, list(continuations))]
    from slmexp.runtimes._label_scores import lm_loglikelihoods

    return lm_loglikelihoods(runtime.lm_eval_model(), context, continuations)


def require_chat(runtime: Any, *, key: str = "runtime.name", name: str | None = None) -> None:
    """Refuse, in one line naming `key`, a runtime class (or a built runtime) that cannot run multi-turn chat with
    tools: cheap, so an agent task can call it at config time on `runtime_class(cfg.runtime)`."""
    if not capabilities(runtime).chat_tools:
        raise fail(key, f"runtime={name or _name(runtime)} cannot run multi-turn chat with tools (it declares no "
                   "`chat` capability); runtimes that can: transformers, llamacpp, openai and its server recipes")


def chat(runtime: Any, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
         constraint: Constraint | None = None, max_new_tokens: int = 256, stop: Sequence[str] | None = None,
         key: str = "runtime.name") -> ChatTurn:
    """One assistant turn after `messages` (the Runtime Protocol's `chat`), or the one-line refusal of
    `require_chat` on a runtime without the capability: an agent loop calls this and names no runtime."""
    require_chat(runtime, key=key)
    return runtime.chat(messages, tools=tools, constraint=constraint, max_new_tokens=max_new_tokens, stop=stop)
