"""transformers' generate() on a worker thread, each new token handed over with the time it arrived.

Why a thread: generate() only reports tokens through a streamer callback; the speed stage wants an iterator of
(token ids, arrival time) it can stop at a stop string. `stop()` makes the worker end at its next decoding step
(a StoppingCriteria reading an Event) and joins it, so no generation keeps running to slow the next request.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

_DONE = object()


class GenerationWorker:
    """Run `model.generate(**kwargs)` greedily on a thread; iterate it for (new token ids, perf_counter time)."""

    def __init__(self, model: Any, **generate_kwargs: Any) -> None:
        from transformers import StoppingCriteria, StoppingCriteriaList
        from transformers.generation.streamers import BaseStreamer

        self._tokens: queue.Queue = queue.Queue()
        self._halt = threading.Event()
        self.failure: BaseException | None = None
        tokens, halt = self._tokens, self._halt

        class _PerToken(BaseStreamer):
            # generate() calls put() once with the prompt, then once per decoding step.
            def __init__(self) -> None:
                self.prompt_seen = False

            def put(self, value: Any) -> None:
                if not self.prompt_seen:
                    self.prompt_seen = True
                    return
                tokens.put((value.reshape(-1).tolist(), time.perf_counter()))

            def end(self) -> None:
                tokens.put(_DONE)

        class _Halt(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                import torch

                return torch.full((input_ids.shape[0],), halt.is_set(), dtype=torch.bool, device=input_ids.device)

        def _generate() -> None:
            try:
                model.generate(do_sample=False, streamer=_PerToken(),
                               stopping_criteria=StoppingCriteriaList([_Halt()]), **generate_kwargs)
            except BaseException as e:  # surfaced to the caller by stop()
                self.failure = e
                tokens.put(_DONE)

        self._worker = threading.Thread(target=_generate, name="slmexp-transformers-generate", daemon=True)
        self._worker.start()

    def __iter__(self) -> Iterator[tuple[list[int], float]]:
        while (item := self._tokens.get()) is not _DONE:
            yield item

    def stop(self) -> None:
        """End the generation at its next step and wait for the thread."""
        self._halt.set()
        self._worker.join()
