"""The value types config keys are declared with: strict numbers, bounded ranges, closed choices.

Why strict: Hydra parses `train.max_steps=abc` as the string "abc" and `seed=1.5` as a float; pydantic's lax mode
would turn "5" into 5 and True into 1, hiding the mistake until a trainer's traceback. Numbers here are strict (an
int is accepted where a float is declared, never a bool or a string) and finite.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict

Int = Annotated[int, Strict()]
Num = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Bool = Annotated[bool, Strict()]
PosInt = Annotated[int, Strict(), Field(ge=1)]
NonNegInt = Annotated[int, Strict(), Field(ge=0)]
PosNum = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
NonNegNum = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
Dropout = Annotated[float, Strict(), Field(ge=0, lt=1, allow_inf_nan=False)]  # a probability below 1
Share = Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False)]  # a fraction between 0 and 1
DTYPES = ("float32", "bfloat16", "float16", "auto")


class Node(BaseModel):
    """A config node: every key it may hold is declared; a key slmexp does not read is refused (a typo in a YAML
    file or a `+key=value` override would otherwise be silently ignored)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, arbitrary_types_allowed=True)


class Open(BaseModel):
    """A node passed through as is to a library (`_target_` keyword arguments, engine kwargs): keys are the
    library's, checked against its signature by tests/test_targets.py, not here."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

# Strings of a fixed form: the pattern, and how an error message says it to a person.
URL = r"^https?://[^/\s]+"
SHA256 = r"^[0-9a-f]{64}$"
DEVICE = r"^(auto|cpu|mps|cuda(:\d+)?)$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
ISO3 = r"^[A-Z]{3}$"
FORMS = {URL: "an http(s) URL (e.g. http://127.0.0.1:8080/v1)", SHA256: "a sha256 digest (64 lower-case hex digits)",
         DEVICE: "auto, cpu, mps, cuda or cuda:N", ENV_NAME: "the NAME of an environment variable (not its value)",
         ISO3: "an ISO 3166 alpha-3 country code (e.g. USA)"}
