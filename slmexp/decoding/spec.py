"""The answer space of a task's prompts (a leaf module: the runtimes' constraint engines import it without
importing the decoding stage itself, so slmexp.decoding may look up runtime classes without an import cycle)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slmexp.decoding.schema import max_chars
from slmexp.errors import SlmexpError


@dataclass(frozen=True)
class Constraint:
    """One answer space: `choices` (the output is exactly one of these strings) or `schema` (a JSON Schema the
    output, a JSON value, satisfies). `task_kind` says what it came from; `tools` (tool calls) are the row's offered
    tool schemas as written, for endpoints that take `tools` rather than a schema."""

    task_kind: str
    choices: tuple[str, ...] | None = None
    schema: Mapping[str, Any] | None = None
    tools: tuple[Mapping[str, Any], ...] | None = None

    @property
    def max_chars(self) -> int | None:
        """The longest answer this constraint admits, in characters (None: unbounded; slmexp.decoding.schema)."""
        if self.choices is not None:
            return max(len(c) for c in self.choices)
        return max_chars(self.schema)

    @property
    def key(self) -> str:
        """A stable identity (grouping requests that share a constraint; caching compiled grammars)."""
        return json.dumps({"choices": self.choices, "schema": self.schema}, sort_keys=True)


@dataclass
class ConstraintSpec:
    """The constraint of every prompt of a task: one shared `default`, or one per rendered user turn (`by_prompt`,
    tool calls: each row offers its own tools)."""

    task_kind: str
    default: Constraint | None = None
    by_prompt: dict[str, Constraint] = field(default_factory=dict)

    @property
    def max_chars(self) -> int | None:
        """The longest answer any prompt's constraint admits, in characters (None: one of them is unbounded)."""
        sizes = [c.max_chars for c in [*([self.default] if self.default else []), *self.by_prompt.values()]]
        return None if not sizes or None in sizes else max(sizes)

    def for_doc(self, doc: Mapping[str, Any] | None) -> Constraint:
        """The constraint of an lm-eval request, from its doc (our docs carry the rendered user turn as `prompt`)."""
        prompt = (doc or {}).get("prompt")
        if isinstance(prompt, str) and prompt in self.by_prompt:
            return self.by_prompt[prompt]
        if self.default is not None:
            return self.default
        raise SlmexpError("decoding=constrained: an evaluation request whose doc matches no task example")

    def for_text(self, text: str) -> Constraint:
        """The constraint of a request given as text: a user turn, possibly with the prompt suffix or the chat
        template around it. With per-row constraints, the example whose user turn ends latest in `text` (a
        few-shot context holds earlier examples' turns first)."""
        if self.default is not None:
            return self.default
        if text in self.by_prompt:
            return self.by_prompt[text]
        best, best_end = None, -1
        for prompt, constraint in self.by_prompt.items():
            at = text.rfind(prompt)
            if at >= 0 and (end := at + len(prompt)) > best_end:
                best, best_end = constraint, end
        if best is None:
            raise SlmexpError("decoding=constrained: a request whose prompt matches no task example, so its "
                              "constraint (the row's offered tools) is unknown")
        return best
