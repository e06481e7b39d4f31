"""The declared schema read back as data: every leaf key with its type, range and choices.

Two readers: slmexp.configref (the "type" column of docs/config-reference.md, so the reference shows what the
schema accepts, not what someone wrote about it) and the bad-input tests generated from the schema
(tests/schema_cases.py: one out-of-range or wrong-type value per constrained key).
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from slmexp.schema.types import FORMS


@dataclass
class Spec:
    """What one key accepts. `kind`: int | number | bool | str | choice | list | mapping | any."""

    kind: str
    nullable: bool = False
    low: float | None = None
    low_inclusive: bool = True
    high: float | None = None
    high_inclusive: bool = True
    choices: tuple[Any, ...] = ()
    pattern: str | None = None
    alternatives: list[Spec] = field(default_factory=list)  # `int >= 1 | auto`

    def text(self) -> str:
        """`int >= 1`, `number in [0, 1]`, `one of a, b`, ... and `| null` when null is accepted."""
        if self.kind == "choice":
            out = "one of " + ", ".join(str(c) for c in self.choices)
        else:
            out = self.kind
            lo = f"{'>=' if self.low_inclusive else '>'} {self.low:g}" if self.low is not None else ""
            hi = f"{'<=' if self.high_inclusive else '<'} {self.high:g}" if self.high is not None else ""
            out += "".join(f" {b}" for b in (lo, hi) if b)
            if self.pattern:
                out += ": " + FORMS.get(self.pattern, f"matching `{self.pattern}`")
        out = " \\| ".join([out, *(a.text() for a in self.alternatives)])
        return out + (" \\| null" if self.nullable else "")

    @property
    def constrained(self) -> bool:
        """Whether some value of a plain type can break it (every typed key can: a string where a number goes)."""
        return self.kind in ("int", "number", "bool", "choice") or self.pattern is not None


_BASE = {int: "int", float: "number", bool: "bool", str: "str", list: "list", dict: "mapping"}


def _spec(annotation: Any, metadata: list[Any]) -> Spec | None:
    """The Spec of a leaf annotation; None for a nested model (walked, not described)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *meta = typing.get_args(annotation)
        return _spec(inner, [*metadata, *meta])
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(annotation) if a is not type(None)]
        specs = [_spec(a, metadata) for a in arms]
        if any(s is None for s in specs):
            return None
        first, *rest = specs
        first.nullable = len(arms) < len(typing.get_args(annotation))
        first.alternatives = rest
        return first
    if origin is Literal:
        return Spec("choice", choices=typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return None
    spec = Spec(_BASE.get(origin or annotation, "any"))
    flat = [x for m in metadata for x in ([m, *m.metadata] if isinstance(m, FieldInfo) else [m])]
    for m in flat:
        for attr, (side, incl) in {"ge": ("low", True), "gt": ("low", False), "le": ("high", True),
                                   "lt": ("high", False)}.items():
            if getattr(m, attr, None) is not None:
                setattr(spec, side, getattr(m, attr))
                setattr(spec, f"{side}_inclusive", incl)
        spec.pattern = getattr(m, "pattern", None) or spec.pattern
    return spec


def leaves(model: type[BaseModel], prefix: str = "") -> dict[str, Spec]:
    """Every leaf key of `model` (nested models walked), dotted, with its Spec."""
    out: dict[str, Spec] = {}
    for name, info in model.model_fields.items():
        key = f"{prefix}{info.alias or name}"
        spec = _spec(info.annotation, list(info.metadata))
        if spec is not None:
            out[key] = spec
            continue
        nested = [a for a in (typing.get_args(info.annotation) or (info.annotation,))
                  if isinstance(a, type) and issubclass(a, BaseModel)]
        for sub in nested[:1]:
            out.update(leaves(sub, key + "."))
    return out


def all_leaves() -> dict[str, Spec]:
    """Every key the schema declares: groups, quantization kinds and runtimes (as `quantization[gguf].gguf_type`
    and `runtime[llamacpp].n_ctx` where the key belongs to one kind or one runtime class)."""
    from slmexp.schema.groups import GROUPS, QUANTIZATION_KINDS, TopLevel
    from slmexp.schema.runtimes import RUNTIMES

    out = dict(leaves(TopLevel))
    for group, model in GROUPS.items():
        out.update(leaves(model, group + "."))
    for kind, model in QUANTIZATION_KINDS.items():
        out.update({k.replace("quantization.", f"quantization[{kind}].", 1): v
                    for k, v in leaves(model, "quantization.").items()})
    for target, model in RUNTIMES.items():
        cls = target.rsplit(".", 1)[-1]
        out.update({k.replace("runtime.", f"runtime[{cls}].", 1): v for k, v in leaves(model, "runtime.").items()})
    return out
