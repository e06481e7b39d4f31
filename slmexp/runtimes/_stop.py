"""Stop strings on streamed text, as lm-eval applies them to a finished generation.

Why here: the speed stage must time the request that was scored, and lm-eval's `generate_until` ends a
generation at the first of the task's `until` strings and keeps the text before it. A runtime that streams cuts
its chunks with `StopCut`, so the joined chunks equal the accuracy pass's text and the engine stops decoding as
soon as a stop string is complete (no tokens generated, timed or billed after it). Used by the in-process
runtimes; vLLM and OpenAI-compatible servers apply stop strings themselves, as their accuracy pass does.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopCut:
    """Feed streamed text chunks; get back the text that is safe to emit.

    Text that could be the start of a stop string (a trailing "\\n" when the stop string is "\\n\\n") is held
    back until the next chunk decides it, so no stop text is ever emitted. `hit` turns true when a stop string
    appeared: the emitted text is then exactly what lm-eval keeps (`postprocess_generated_text`: the text split
    at each stop string in turn, the part before it kept).
    """

    def __init__(self, stop: Sequence[str] | str | None) -> None:
        stop = [stop] if isinstance(stop, str) else list(stop or [])
        self.stop = [s for s in stop if s]  # lm-eval ignores empty stop strings
        self.text = ""
        self.emitted = 0
        self.hit = False

    def _held(self) -> int:
        """Characters at the end of the text that are a proper prefix of some stop string."""
        held = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(self.text)), held, -1):
                if self.text.endswith(s[:k]):
                    held = k
                    break
        return held

    def feed(self, chunk: str) -> str:
        """The text to emit after `chunk` arrived (possibly ""); sets `hit` once a stop string is complete."""
        if self.hit:
            return ""
        self.text += chunk
        if any(s in self.text for s in self.stop):
            self.hit = True
            kept = self.text
            for s in self.stop:
                kept = kept.split(s)[0]
            end = len(kept)  # never before `emitted`: held-back text covered any stop string's start
        else:
            end = len(self.text) - self._held()
        out = self.text[self.emitted:end] if end > self.emitted else ""
        self.emitted = max(self.emitted, end)
        return out

    def flush(self) -> str:
        """At the end of a generation that met no stop string: the held-back rest of the text."""
        if self.hit:
            return ""
        out = self.text[self.emitted:]
        self.emitted = len(self.text)
        return out
