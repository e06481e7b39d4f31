"""Any OpenAI-compatible chat endpoint: cloud APIs (the usual LLM baseline), Azure OpenAI, GitHub Models, Ollama,
vLLM or llama.cpp servers.

Accuracy goes through lm-eval's own `local-chat-completions` backend (subclassed only to take the key from the env
var that `runtime.api_key_env` names, and to make failures say which request failed); chat endpoints return no
log-likelihoods, so tasks are scored on their generation formulation. Speed streams through the `openai` SDK.

A key never enters the config: the config holds the NAME of an environment variable, and the value is read here,
used in a request header, and never stored on this object's public attributes or written anywhere.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from omegaconf import DictConfig

from slmexp.errors import EndpointError, SlmexpError
from slmexp.runtimes._chat import ChatTurn

__all__ = ["EndpointError", "OpenAIRuntime"]


def _check_reachable(rcfg: DictConfig) -> None:
    """A TCP connection to `runtime.base_url`'s host and port, within `runtime.connect_timeout_s`: an endpoint that
    is down is refused at config time (before any model or tokenizer is resolved), in milliseconds when refused."""
    import socket
    from urllib.parse import urlsplit

    from slmexp.origin import fail

    url = str(rcfg.get("base_url") or "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fail("runtime.base_url", f"{url!r} is not an http(s) URL (e.g. http://127.0.0.1:8080/v1)")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    timeout = float(rcfg.get("connect_timeout_s") or 5)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as e:
        raise fail("runtime.base_url", f"{url} is unreachable (TCP connect to {parts.hostname}:{port} failed within "
                   f"{timeout:g} s: {e.strerror or type(e).__name__})") from None


def _api_key(api_key_env: str | None) -> str | None:
    if not api_key_env:
        return None
    value = os.environ.get(str(api_key_env))
    if not value:
        raise EndpointError(f"runtime.api_key_env: environment variable {api_key_env} is not set (it should hold "
                            f"the API key; export {api_key_env}=... or set runtime.api_key_env=null for an "
                            f"endpoint without a key)")
    return value


class OpenAIRuntime:
    """A remote model behind `base_url` (the API root, e.g. http://127.0.0.1:8080/v1) serving `model`.

    `model_path` is optional: a local copy of the served model, used only for its tokenizer (token counts when the
    server sends no usage). The recipes (ollama, lmstudio, mlx-lm, foundry-local, vllm-server) are this class with
    another `name` and `base_url`.
    """

    serves: ClassVar[tuple[str, ...]] = ("none",)  # the server serves whatever it loaded
    needs: ClassVar[str] = "endpoint"
    remote: ClassVar[bool] = True
    concurrent_requests: ClassVar[bool] = True  # the speed stage may send requests from several threads
    speed_note: ClassVar[str] = ("timings of requests to a remote endpoint: network included; peak_rss_mb is "
                                 "this client's")
    constrained_decoding: ClassVar[str] = "server: response_format json_schema / tools"  # _openai_structured
    scores_choices: ClassVar[bool] = False  # chat endpoints return text, no log-likelihoods
    chat_tools: ClassVar[bool] = True  # chat(): `tools` in chat.completions, tool_calls read back (_openai_chat)
    memory_footprint: int | None = None
    constraints: Any = None  # a slmexp.decoding.ConstraintSpec, set by constrain()

    @classmethod
    def check(cls, cfg: DictConfig) -> None:
        """An endpoint serves its own model: slmexp cannot train an adapter for it."""
        if str(cfg.adapter.name) != "none":
            from slmexp.origin import fail

            raise fail("adapter.name", f"adapter={cfg.adapter.name} cannot be trained for runtime={cfg.runtime.name}: "
                       "the endpoint serves its own model; train with runtime=transformers, export "
                       "(quantization=gguf-*), and serve the file (python -m slmexp.serve --model FILE.gguf)")

    @classmethod
    def preflight(cls, cfg: DictConfig) -> None:
        """The job's own pre-flight (slmexp.pipeline, validate stage; not `check`, which composing alone runs
        offline): the key variable is set and the endpoint answers a TCP connect, so either fails before anything
        is resolved."""
        from slmexp.origin import fail

        try:
            _api_key(cfg.runtime.get("api_key_env"))
        except EndpointError as e:
            raise fail("runtime.api_key_env", str(e).removeprefix("runtime.api_key_env: ")) from None
        _check_reachable(cfg.runtime)

    def __init__(
        self,
        model_path: str | None = None,
        *,
        base_url: str,
        model: str,
        name: str = "openai",
        api_key_env: str | None = None,
        api_key: str | None = None,  # `+runtime.api_key=...`: accepted (and redacted everywhere); prefer api_key_env
        auth_header: str = "Authorization",
        headers: dict[str, str] | None = None,
        provider_id: str | None = None,  # pricing (genai-prices provider): read by slmexp.cost from the config
        price_model: str | None = None,  # pricing: the provider's model id, when `model` is an alias
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        max_retries: int = 3,
        concurrency: int = 1,
        batch_size: int = 1,  # lm-eval's batch size in the config; a chat endpoint takes one conversation per request
        max_gen_toks: int = 256,
        stream_usage: bool = True,
        verify_certificate: bool = True,
        adapter_path: str | None = None,
        trust_remote_code: bool = False,  # unused: the local tokenizer is loaded without remote code
        seed: int = 0,
    ) -> None:
        if adapter_path:
            raise SlmexpError(f"runtime={name} sends requests to an endpoint, which serves its own model: it cannot "
                              f"apply an adapter (given: {adapter_path})")
        import logging

        for logger in ("httpx", "httpx2", "openai"):  # one INFO line per HTTP request would bury the progress bars
            logging.getLogger(logger).setLevel(logging.WARNING)
        self.name = name
        self.base_url = str(base_url).rstrip("/")
        self.model = str(model)
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.max_retries = int(max_retries)
        self.concurrency = int(concurrency)
        self.max_gen_toks = int(max_gen_toks)
        self.stream_usage = bool(stream_usage)
        self.verify_certificate = bool(verify_certificate)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self._auth_header = str(auth_header)
        self._extra_headers = dict(headers or {})
        self.__key = str(api_key) if api_key else _api_key(api_key_env)
        self._local = threading.local()
        t0 = time.perf_counter()
        self.served_models = self._preflight()
        self.tokenizer = _local_tokenizer(model_path)
        self.load_s = time.perf_counter() - t0
        self._client: Any = None
        self._lm: Any = None

    # --- connection ---

    def headers(self) -> dict[str, str]:
        h = dict(self._extra_headers)
        if self.__key:
            h[self._auth_header] = f"Bearer {self.__key}" if self._auth_header == "Authorization" else self.__key
        return h

    def _preflight(self) -> list[str] | None:
        """GET {base_url}/models: fail fast (within the connect timeout) when nothing answers or the key is refused.

        Endpoints without a /models route (404/405) pass: the first real request will tell.
        """
        import requests

        url = f"{self.base_url}/models"
        try:
            r = requests.get(url, headers=self.headers(), timeout=(self.connect_timeout_s, self.timeout_s),
                             verify=self.verify_certificate)
        except requests.exceptions.RequestException as e:
            raise EndpointError(f"runtime.base_url: {self.base_url} is unreachable (GET {url} failed within "
                                f"{self.connect_timeout_s:g} s connect / {self.timeout_s:g} s read timeout: "
                                f"{type(e).__name__})") from None
        if r.status_code in (401, 403):
            raise EndpointError(f"runtime.api_key_env: GET {url} -> HTTP {r.status_code} {r.reason}: the endpoint "
                                f"refused the key: {r.text[:200]}")
        if not r.ok:
            return None
        try:
            return [m.get("id") for m in r.json().get("data", [])]
        except ValueError:
            return None

    def client(self) -> Any:
        if self._client is None:
            try:
                import openai
            except ImportError:
                raise SlmexpError("runtime=openai needs the openai SDK: pip install -e '.[openai]'") from None
            self._client = openai.OpenAI(base_url=self.base_url, api_key=self.__key or "none",
                                         default_headers=self._extra_headers or None,
                                         timeout=self.timeout_s, max_retries=self.max_retries)
        return self._client

    # --- Runtime protocol ---

    def uses_chat_template(self) -> bool:
        return True  # the server applies the model's chat template to the messages

    def lm_eval_model(self) -> Any:
        if self._lm is None:
            from slmexp.runtimes._openai_lm import make_chat_lm

            self._lm = make_chat_lm(self)
        return self._lm

    def constrain(self, spec: Any) -> None:
        """Ask the endpoint for structured outputs (slmexp/runtimes/_openai_structured.py) in every later request."""
        self.constraints = spec

    @property
    def last_usage(self) -> dict[str, Any] | None:
        return getattr(self._local, "usage", None)

    def stream(self, prompt: str, max_new_tokens: int, stop: Sequence[str] | None = None
               ) -> Iterator[tuple[str, float]]:
        """Stream one greedy chat completion with the accuracy pass's request settings: `max_tokens`, and `stop`
        sent for the server to apply (its first 4, as lm-eval's local-chat-completions sends them; nothing is cut
        here, as nothing is cut there). Usage from the server's final chunk, else the local tokenizer.

        The HTTP response is closed however the stream ends: a consumer that stops iterating closes the
        connection, so the server stops generating (and billing) at once rather than when the garbage collector
        gets to the SDK's stream. `last_usage` is this request's even then (counted from the text received).
        """
        import openai

        messages = [{"role": "user", "content": prompt}]
        kwargs: dict[str, Any] = dict(model=self.model, messages=messages, max_tokens=max_new_tokens,
                                      temperature=0, seed=self.seed, stream=True)
        if stop:
            kwargs["stop"] = list(stop)[:4]
        if self.stream_usage:
            kwargs["stream_options"] = {"include_usage": True}
        constraint = None if self.constraints is None else self.constraints.for_text(prompt)
        if constraint is not None:
            import slmexp.runtimes._openai_structured as so

            kwargs.update(so.request_fields(constraint))
        wrapped = constraint is not None and so.wraps(constraint)  # assembled, then yielded as the answer text
        usage, text, calls = None, [], {}
        try:
            response = self.client().chat.completions.create(**kwargs)
            try:
                for chunk in response:
                    if chunk.usage is not None:
                        usage = chunk.usage
                    for choice in chunk.choices or []:
                        for call in (choice.delta.tool_calls if choice.delta else None) or []:
                            got = calls.setdefault(call.index, {"name": "", "arguments": ""})
                            got["name"] += (call.function and call.function.name) or ""
                            got["arguments"] += (call.function and call.function.arguments) or ""
                            yield "", time.perf_counter()
                        if content := (choice.delta.content if choice.delta else None):
                            text.append(content)
                            yield ("" if wrapped else content), time.perf_counter()
                if wrapped:
                    message = {"content": "".join(text),
                               "tool_calls": [{"function": calls[i]} for i in sorted(calls)]}
                    yield so.answer_text(message, constraint), time.perf_counter()
            finally:
                response.close()
        except openai.APIStatusError as e:
            raise EndpointError(f"POST {self.base_url}/chat/completions (speed stage, prompt "
                                f"{prompt[:60]!r}...) -> HTTP {e.status_code}: {str(e)[:300]}") from None
        except openai.APIConnectionError as e:
            raise EndpointError(f"runtime.base_url: {self.base_url} stopped answering during the speed stage "
                                f"({type(e).__name__}: {e})") from None
        finally:
            self._local.usage = self._usage(usage, messages, "".join(text))

    def chat(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
             constraint: Any = None, max_new_tokens: int = 256, stop: Sequence[str] | None = None) -> ChatTurn:
        """One greedy chat completion (the Runtime Protocol's `chat`; not streamed, so ttft_s is None): `messages`
        passed through, `tools` sent, `constraint` as structured outputs (slmexp/runtimes/_openai_chat.py)."""
        from slmexp.runtimes._openai_chat import endpoint_chat

        return endpoint_chat(self, messages, tools=tools, constraint=constraint, max_new_tokens=max_new_tokens,
                             stop=stop)

    def _usage(self, usage: Any, messages: list[dict[str, str]], text: str) -> dict[str, Any]:
        if usage is not None and usage.completion_tokens is not None:
            out = {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens,
                   "source": "server usage"}
            details = getattr(usage, "prompt_tokens_details", None)
            if getattr(details, "cached_tokens", None) is not None:  # a server-side prefix cache hit shows here
                out["cached_input_tokens"] = int(details.cached_tokens)
            return out
        if self.tokenizer is not None:
            ids = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
            ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
            out_ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            return {"input_tokens": len(ids), "output_tokens": len(out_ids), "source": "model tokenizer"}
        return {"input_tokens": None, "output_tokens": None, "source": "chunks"}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        self._lm = None

    def __enter__(self) -> OpenAIRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIRuntime(base_url={self.base_url!r}, model={self.model!r})"


def _local_tokenizer(model_path: str | None) -> Any:
    """The served model's own tokenizer when its checkpoint is local (token counts if the server sends no usage)."""
    if not model_path:
        return None
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError):
        return None
    return tok if getattr(tok, "chat_template", None) else None
