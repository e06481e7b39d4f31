"""A `Constraint` in each engine's grammar language: GBNF for llama.cpp, llguidance grammars for transformers.

Whitespace is fixed or nearly so in both: a small model under a grammar that allows free whitespace can spend its
whole token budget on newlines, and a blank line would hit the extraction task's stop string ("\\n\\n") mid-object.
llama.cpp's JSON-Schema converter already allows at most one space between tokens; llguidance is told the
separators of `json.dumps` (", " and ": "), the form every training target and few-shot answer is written in
(slmexp.tasks.render_target), so a fine-tuned model's own answer passes the grammar token for token.
"""

from __future__ import annotations

import json
from typing import Any

from slmexp.decoding.spec import Constraint

# llguidance JSON options: json.dumps' separators, no other whitespace (see the module docstring).
LLGUIDANCE_JSON = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


def _gbnf_literal(text: str) -> str:
    """A GBNF string literal (llama.cpp's escapes: backslash, quote, newline, carriage return, tab)."""
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
               .replace("\t", "\\t"))
    return f'"{escaped}"'


def gbnf(constraint: Constraint) -> str:
    """The GBNF grammar (root rule `root`) that llama.cpp's grammar sampler enforces for `constraint`: a choice
    of literal strings, or llama-cpp-python's own JSON-Schema converter (`llama_cpp.llama_grammar`)."""
    if constraint.choices is not None:
        return "root ::= " + " | ".join(_gbnf_literal(c) for c in constraint.choices) + "\n"
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    grammar = json_schema_to_gbnf(json.dumps(constraint.schema))
    # This converter's string character admits raw control characters (newlines): invalid in JSON, and a blank line
    # would hit the extraction task's stop string inside a value. llama.cpp's current converter excludes them too.
    # \uXXXX escapes are left out: every character then takes at most 2 (slmexp.decoding.schema.max_chars).
    return grammar.replace(_LOOSE_CHAR, _JSON_CHAR).replace(_UNICODE_ESCAPE, "")


_LOOSE_CHAR = 'char ::= [^"\\\\]'
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F]'
_UNICODE_ESCAPE = ' | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F]'


def llguidance_grammar(constraint: Constraint) -> str:
    """The llguidance grammar for `constraint`: a Lark choice of literals, or its JSON-Schema compiler."""
    from llguidance import LLMatcher

    if constraint.choices is not None:
        return LLMatcher.grammar_from_lark("start: " + " | ".join(json.dumps(c) for c in constraint.choices))
    from slmexp.decoding.schema import engine_copy

    return LLMatcher.grammar_from_json_schema(engine_copy(dict(constraint.schema or {})), defaults=LLGUIDANCE_JSON)


def llguidance_problem(constraint: Constraint) -> str | None:
    """Why llguidance cannot compile `constraint` (an unsupported schema keyword, say), or None: checked before a
    model loads."""
    from llguidance import LLMatcher

    try:
        grammar = llguidance_grammar(constraint)
    except ValueError as e:
        return str(e)
    is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar)
    return messages[0] if is_error else None


class TokenMask:
    """The llguidance matcher of one generation over a HF tokenizer: which token ids may come next (`allowed`, a
    boolean numpy row over the tokenizer's vocabulary; end of sequence only, once the answer is complete), and
    `consume` of each token generated. `eos_ids`: the tokens that end a generation."""

    def __init__(self, lltokenizer: Any, grammar: str, eos_ids: set[int]) -> None:
        from llguidance import LLMatcher

        self.matcher = LLMatcher(lltokenizer, grammar, log_level=0)
        self.vocab = int(lltokenizer.vocab_size)
        self.eos_ids = sorted(eos_ids)
        self.finished = False  # an end-of-sequence token was generated: nothing more to constrain
        if self.matcher.is_error():
            from slmexp.errors import SlmexpError

            raise SlmexpError(f"decoding=constrained: llguidance rejected the grammar: {self.matcher.get_error()}")

    def allowed(self) -> Any:
        import numpy as np

        if self.matcher.is_stopped():  # the answer is complete: only the end of the sequence may follow
            mask = np.zeros(self.vocab, dtype=bool)
            mask[[i for i in self.eos_ids if i < self.vocab]] = True
            return mask
        bits = np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8)
        return np.unpackbits(bits, bitorder="little")[: self.vocab].astype(bool)

    def consume(self, token: int) -> None:
        if int(token) in self.eos_ids:
            self.finished = True
        else:
            self.matcher.consume_token(int(token))

    @property
    def done(self) -> bool:
        """The generation ended (end of sequence) or the matcher failed: it constrains nothing more."""
        return self.finished or bool(self.matcher.is_error())
