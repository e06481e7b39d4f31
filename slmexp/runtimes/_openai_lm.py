"""lm-eval's LocalChatCompletion for the openai runtime (split from openai.py, like _llamacpp_lm.py): the key from
the runtime's headers, errors that name the failing request, each accuracy-pass request timed, and the structured-
output fields (slmexp/runtimes/_openai_structured.py) added to constrained requests.
"""

from __future__ import annotations

import time
from typing import Any

from slmexp.errors import EndpointError, SlmexpError


def make_chat_lm(rt: Any) -> Any:
    """lm-eval's LocalChatCompletion, with our key handling, errors that name the failing request, and each generate
    request timed into `request_latencies_s` (the accuracy pass's per-request latency, read by slmexp.evaluate)."""
    from lm_eval.models.openai_completions import LocalChatCompletion

    class SlmexpChatLM(LocalChatCompletion):
        @property
        def api_key(self) -> str:  # lm-eval would read OPENAI_API_KEY; we use the variable the config names
            return ""

        @property
        def header(self) -> dict[str, str]:
            return rt.headers()

        def model_call(self, messages: Any, **kwargs: Any) -> Any:
            import requests

            t0 = time.perf_counter()
            try:
                out = super().model_call(messages, **kwargs)
                if kwargs.get("generate", True):
                    self._timed(t0)  # one chat request (batch size 1): an accuracy-pass request's latency
                return out
            except requests.exceptions.HTTPError as e:
                resp = e.response
                raise EndpointError(f"POST {self.base_url} (accuracy stage, request {_preview(messages)}) -> HTTP "
                                    f"{resp.status_code} {resp.reason}: {resp.text[:300]}") from None
            except requests.exceptions.RequestException as e:
                raise EndpointError(f"runtime.base_url: POST {self.base_url} failed (accuracy stage, request "
                                    f"{_preview(messages)}): {type(e).__name__} within {self.timeout} s") from None

        def _timed(self, t0: float) -> None:
            self.request_latencies_s.append(time.perf_counter() - t0)

        async def amodel_call(self, session: Any, sem: Any, messages: Any, **kwargs: Any) -> Any:
            """lm-eval's concurrent path: timed from when the request got its slot (not its queueing)."""
            started: list[float] = []
            out = await super().amodel_call(session, _TimedSlot(sem, started), messages, **kwargs)
            if kwargs.get("generate", True) and started:
                self._timed(started[-1])
            return out

        def _create_payload(self, messages: Any, *args: Any, **kwargs: Any) -> dict:
            payload = super()._create_payload(messages, *args, **kwargs)
            if rt.constraints is not None and kwargs.get("generate", True):
                from slmexp.runtimes._openai_structured import last_user_content, request_fields

                payload.update(request_fields(rt.constraints.for_text(last_user_content(messages))))
            return payload

        def parse_generations(self, outputs: Any, **kwargs: Any) -> list[str]:
            if rt.constraints is None:
                return super().parse_generations(outputs=outputs, **kwargs)
            return _constrained_answers(rt.constraints, outputs, kwargs.get("contexts"))

        def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
            try:
                return super().generate_until(requests, disable_tqdm=disable_tqdm)
            except SlmexpError:
                raise
            except Exception as e:  # aiohttp errors from the concurrent path, after lm-eval's retries
                raise EndpointError(f"runtime=openai: a request to {self.base_url} failed after "
                                    f"{self.max_retries} tries: {type(e).__name__}: {str(e)[:300]}") from None

    lm = SlmexpChatLM(
        base_url=f"{rt.base_url}/chat/completions", model=rt.model, tokenizer_backend=None,
        tokenized_requests=False, num_concurrent=rt.concurrency, max_retries=rt.max_retries,
        timeout=int(rt.timeout_s), max_gen_toks=rt.max_gen_toks, seed=rt.seed,
        verify_certificate=rt.verify_certificate,
    )
    lm.request_latencies_s = []  # per successful generate request (slmexp.evaluate clears and reads it)
    lm.request_concurrency = rt.concurrency
    return lm


class _TimedSlot:
    """The semaphore lm-eval acquires around exactly one HTTP request, noting when the request got its slot."""

    def __init__(self, sem: Any, started: list[float]) -> None:
        self.sem, self.started = sem, started

    async def acquire(self) -> bool:
        got = await self.sem.acquire()
        self.started.append(time.perf_counter())
        return got

    def release(self) -> None:
        self.sem.release()


def _constrained_answers(constraints: Any, outputs: Any, given: Any) -> list[str]:
    """Each reply's answer under its prompt's constraint (a tool call's arguments, a JSON object), so the metrics
    see what the server was asked to produce (slmexp.runtimes._openai_structured)."""
    from slmexp.runtimes._openai_structured import answer_text, last_user_content

    contexts = list(given) if isinstance(given, list | tuple) else [given]
    out = []
    for i, reply in enumerate(outputs if isinstance(outputs, list) else [outputs]):
        context = contexts[min(i, len(contexts) - 1)]
        constraint = constraints.for_text(last_user_content(context) if context is not None else "")
        for choice in sorted(reply["choices"], key=lambda c: c.get("index", 0)):
            out.append(answer_text(choice.get("message") or {}, constraint))
    return out


def _preview(messages: Any) -> str:
    """The first words of the request's last user message, enough to find it in samples.jsonl."""
    try:
        import json

        batch = isinstance(messages, list) and messages and not isinstance(messages[-1], dict)
        msgs = messages[-1] if batch else messages  # a batch of one conversation, or the conversation itself
        msgs = json.loads(msgs.prompt) if hasattr(msgs, "prompt") else msgs  # lm-eval's JsonChatStr
        content = msgs[-1]["content"] if isinstance(msgs, list) and msgs else str(messages)
    except (ValueError, KeyError, TypeError, IndexError):
        content = str(messages)
    return repr(str(content)[:80]) + "..."
