"""slmexp: declarative experiments comparing small language models against an LLM baseline.

Kept import-light on purpose: `slmexp --help` must not pay for torch, transformers or lm-eval.
"""

__version__ = "0.1.0"
