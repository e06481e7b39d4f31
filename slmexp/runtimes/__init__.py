"""Runtimes: one Protocol (below), one module per backend, each built from its `conf/runtime/<name>.yaml`.

A runtime class owns its facts (what it serves, what artifact it loads, whether it is remote) so that the pipeline
and config validation ask the class instead of branching on backend names. Classes are looked up by the YAML's
`_target_` (`runtime_class`), which imports the runtime's module: every runtime module is cheap to import (torch,
llama_cpp, vllm, onnxruntime_genai, openai are imported inside functions), so config-time lookups cost nothing.

Adding a runtime (the whole recipe; nothing else in slmexp changes):
1. Write a module with a class that satisfies `Runtime` below: the class attributes, `check(cfg)`, a constructor
   that takes the keywords `build_runtime` passes plus one keyword per YAML key, and the methods.
2. Write `conf/runtime/<name>.yaml` (or one in a `--config-dir`): `_target_: your.module.YourRuntime`,
   `name: <name>`, then its options. tests/test_targets.py binds the YAML's keys to the constructor's signature.
From another package: declare the class as an entry point in the group `slmexp.runtimes` (`toy =
"yourpkg.runtime:ToyRuntime"`; `_target_: toy` then names it), ship the YAML through a Hydra search-path plugin,
and give the class an `options` attribute (a pydantic model, subclass of `slmexp.schema.runtimes.RuntimeBase`) so
its keys are validated like slmexp's own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from omegaconf import DictConfig

from slmexp.errors import SlmexpError
from slmexp.registry import Registry, import_path
from slmexp.runtimes._chat import ChatTurn
from slmexp.runtimes.facts import (
    Capabilities,
    capabilities,
    chat,
    last_usage,
    preflight,
    request_latencies,
    require_chat,
    score_labels,
    serving_facts,
)

__all__ = ["NEEDS", "RUNTIMES", "Capabilities", "ChatTurn", "Runtime", "build_runtime", "capabilities", "chat",
           "last_usage", "preflight", "request_latencies", "require_chat", "runtime_class", "score_labels",
           "serving_facts"]

NEEDS = ("checkpoint", "gguf", "onnx", "endpoint")  # the artifacts a runtime can load (see `Runtime.needs`)

# Runtime classes by name: slmexp's own, plus the `slmexp.runtimes` entry points of other packages
# (slmexp.registry). A runtime YAML names its class by import path (`_target_: pkg.module.Class`, Hydra's way) or
# by one of these names (`_target_: llamacpp`).
RUNTIMES = Registry("slmexp.runtimes", {
    "transformers": "slmexp.runtimes.transformers:TransformersRuntime",
    "llamacpp": "slmexp.runtimes.llamacpp:LlamaCppRuntime",
    "ortgenai": "slmexp.runtimes.ortgenai:OrtGenAIRuntime",
    "vllm": "slmexp.runtimes.vllm:VLLMRuntime",
    "openai": "slmexp.runtimes.openai:OpenAIRuntime",
})


@runtime_checkable
class Runtime(Protocol):
    """What every runtime offers the pipeline: the whole contract.

    Class attributes (read before anything is built, from `runtime_class(cfg.runtime)`):
        serves: the `quantization.kind`s it can serve, e.g. ("none", "gguf"); config validation refuses others.
        needs: the artifact it loads, one of `NEEDS`: "checkpoint" (an HF folder), "gguf" (a GGUF file), "onnx"
            (an ONNX Runtime GenAI folder), "endpoint" (nothing local: a server answers). The pipeline asks the
            quantizer to prepare exactly this artifact.
        remote: requests go to a server over HTTP; no local weights are loaded or trained (no adapter, no
            energy measurement, the model's weights are optional and used only for its tokenizer).
        concurrent_requests: `stream` may be called from several threads at once (the benchmark's concurrent
            pass); False: the benchmark streams one request at a time.
        speed_note: what the speed figures mean on this runtime (recorded as `speed.note`), e.g. whether
            peak_rss_mb includes the model.
        check(cfg): a classmethod run at config time, before any model loads: cheap checks only
            (`importlib.util.find_spec`, config values; no heavy import), raising `slmexp.origin.fail(key, msg)`.
    Optional class attributes (read through slmexp.runtimes.facts, which gives each its default):
        scores_choices (False): each label's log-likelihood is available (task.formulation=choice, the router's
            label_prob): `score_labels` below.
        constrained_decoding (None): how output is constrained (decoding=constrained), e.g. "llguidance";
            constrained_decoding_note: why not, in words, where it cannot.
        preflight(cfg) (none): a classmethod run when the job starts, before anything is resolved (network
            checks that `check` must not make: an endpoint's reachability, its key variable).
        options (None): a pydantic model of the YAML's keys (subclass `slmexp.schema.runtimes.RuntimeBase`);
            slmexp's own runtimes are declared in slmexp/schema/runtimes.py.
        chat_tools (False): the instance offers `chat` (below): multi-turn chat with tools, for agent loops.
    Optional methods (the core calls them through slmexp.runtimes.facts: `score_labels(runtime, ...)`,
    `chat(runtime, ...)`; a runtime without the capability is refused there in one line naming the config key):
        score_labels(context, continuations) -> list[float] (with scores_choices): log p(continuation | context),
            summed over the continuation's tokens, for every continuation of one context in one call: the
            label-scoring request of task.formulation=choice's speed stage and of the router's label_prob
            (slmexp.label_scoring renders the context as the evaluation does). Numbers equal lm-eval's
            `loglikelihood` on `lm_eval_model()`, which is the default where a runtime declares scores_choices
            without the method; transformers encodes the context once and scores every continuation in one
            batched pass on its KV cache (slmexp/runtimes/_label_scores.py).
        chat(messages, *, tools=None, constraint=None, max_new_tokens=256, stop=None) -> ChatTurn (with
            chat_tools): one greedy assistant turn after `messages` (OpenAI chat format: roles system / user /
            assistant, assistant turns with `tool_calls`, role "tool" results with `tool_call_id`), offering
            `tools` (JSON-Schema functions, OpenAI's `{"type": "function", "function": {...}}` or bare), under an
            optional `slmexp.decoding.Constraint` for this turn (a tool-call schema forces a call). Returns
            `slmexp.runtimes.ChatTurn`: text, tool_calls [{"id", "name", "arguments": dict}], input/output
            tokens, latency_s, ttft_s (None where not streamed). Local runtimes render with the model's chat
            template (tools passed to it; a template without tool support gets them as JSON text in the system
            message) and parse calls from the text; endpoints send `tools` in chat.completions
            (slmexp/runtimes/_chat.py, docs/runtimes.md).

    Constructor: keyword arguments `model_path` (str | None), `adapter_path` (str | None), `trust_remote_code`,
    `seed`, `artifact_path` (only when `needs` is "gguf" or "onnx": the file or folder the quantizer prepared),
    the artifact's `runtime_kwargs` (e.g. `quantization_config` for bnb), and one keyword per key of the runtime's
    YAML (`name` included). No `**kwargs` catch-all: a YAML typo fails at build time, and in tests/test_targets.py.

    Instance attributes and methods (after construction):
        name: the runtime's config name (progress bars, the record).
        batch_size, dtype_name, prefix_stats (optional, None): how the accuracy pass ran (the record's speed block).
        load_s: seconds the constructor spent loading the model (or reaching the endpoint).
        memory_footprint: bytes of the loaded model's parameters and buffers, or None when not measured.
        last_usage: token counts of this thread's last `stream()`: {"input_tokens", "output_tokens", "source"}
            (optionally "cached_input_tokens": prompt tokens the engine or server served from a prefix cache), or
            None before the first. Set however that stream ended: run out, cut at a stop string, or closed by a
            consumer that stopped iterating (a caller that breaks out early still reads its own request's counts).
        uses_chat_template(): whether prompts go through the model's chat template (recorded with the metrics).
        lm_eval_model(): an lm-eval `LM` over the loaded model, for accuracy. It may keep `request_latencies_s`
            (a list of seconds, one per generate_until request, where requests run one per call): slmexp.evaluate
            clears it before and summarizes it after the accuracy pass (`speed.accuracy_pass`).
        stream(prompt, max_new_tokens, stop=None): yield (text chunk, perf_counter time) as tokens are produced,
            greedy, with the accuracy pass's settings, so that a timed request is a scored one: the prompt is
            rendered (chat template) and tokenized as the accuracy pass does it; generation ends at EOS, at
            `max_new_tokens`, or at the first `stop` string, cut as lm-eval cuts (the joined chunks equal the
            accuracy pass's text; no stop text is yielded; the chunk of the token that completed a stop string may
            be ""). Cold: no prefix cached by earlier requests serves the prompt. Closing the generator early stops
            generation (no decoding left running, no HTTP stream left open). TTFT and tokens/s come from this.
        close(): free memory and stop any server or worker the runtime started; `with runtime:` calls it.
    """

    serves: ClassVar[tuple[str, ...]]
    needs: ClassVar[str]
    remote: ClassVar[bool]
    concurrent_requests: ClassVar[bool]
    speed_note: ClassVar[str]

    name: str
    load_s: float
    memory_footprint: int | None
    last_usage: dict[str, Any] | None

    @classmethod
    def check(cls, cfg: DictConfig) -> None:
        """Config-time checks (find_spec only); raise `slmexp.origin.fail(key, msg)`."""

    def uses_chat_template(self) -> bool:
        """Whether prompts go through the model's chat template."""

    def lm_eval_model(self) -> Any:
        """An lm-eval `LM` over the loaded model, for accuracy."""

    def stream(self, prompt: str, max_new_tokens: int, stop: Sequence[str] | None = None
               ) -> Iterator[tuple[str, float]]:
        """Yield (text chunk, perf_counter time) as tokens are produced, ending at the first `stop` string."""

    def close(self) -> None:
        """Free memory and stop any server the runtime started."""

    def __enter__(self) -> Runtime: ...

    def __exit__(self, *exc: object) -> None: ...


def runtime_class(runtime_cfg: Mapping[str, Any]) -> type:
    """The class named by the runtime config's `_target_` (imports its module only: cheap, see above).

    Raises Hydra's ImportError/ValueError when the target cannot be imported; config validation turns that into
    an error on `runtime._target_` with its file and line.
    """
    from hydra.utils import get_class

    target = runtime_cfg.get("_target_") if runtime_cfg is not None else None
    if not target:
        raise ValueError("the runtime config has no _target_ (the runtime class, e.g. "
                         "slmexp.runtimes.openai.OpenAIRuntime)")
    if "." not in str(target) and str(target) in RUNTIMES:  # a registered name: ours or a plug-in's entry point
        return RUNTIMES.load(str(target))
    return get_class(str(target))


def build_runtime(cfg: DictConfig, model_path: str | None, adapter_path: str | None = None,
                  artifact: Any = None) -> Runtime:
    """Instantiate `cfg.runtime` (its `_target_`) on a resolved model.

    `artifact` is what the quantizer prepared (a `slmexp.quantize.Artifact`, duck-typed: `.path` and
    `.runtime_kwargs`; runtimes never import quantizers). Its path is passed as `artifact_path` to runtimes that
    load a GGUF file or an ONNX folder; its `runtime_kwargs` (bnb: `quantization_config`) to any runtime.
    """
    cls = runtime_class(cfg.runtime)
    extra: dict[str, Any] = {}
    if cls.needs in ("gguf", "onnx"):
        if artifact is None or artifact.path is None:
            raise SlmexpError(f"runtime={cfg.runtime.name} loads a {cls.needs} artifact, and none was prepared")
        extra["artifact_path"] = str(artifact.path)
    if artifact is not None:
        extra.update(dict(getattr(artifact, "runtime_kwargs", None) or {}))
    from hydra.errors import InstantiationException

    try:
        return _instantiate(cfg, cls, model_path, adapter_path, extra)
    except InstantiationException as e:  # Hydra wraps the runtime's own error: surface ours unchanged
        if isinstance(e.__cause__, SlmexpError):
            raise e.__cause__ from None
        raise


def _instantiate(cfg: DictConfig, cls: type, model_path: str | None, adapter_path: str | None,
                 extra: dict[str, Any]) -> Any:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    node = cfg.runtime
    if "." not in str(node.get("_target_")):  # a registered name: Hydra instantiates by the class's import path
        node = OmegaConf.merge(node, {"_target_": import_path(cls)})
    return instantiate(
        node,
        model_path=None if model_path is None else str(model_path),
        adapter_path=adapter_path,
        trust_remote_code=bool(cfg.model.get("trust_remote_code", False)),
        seed=int(cfg.seed),
        _convert_="all",
        _recursive_=False,  # quantization_config keeps its _target_: the runtime builds it after its own checks
        **extra,
    )
