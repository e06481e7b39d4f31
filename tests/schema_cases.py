"""Bad-input cases generated from the declared schema (slmexp.schema.describe): for every constrained key, a value
of the wrong type and one out of its range or choices, applied as a command-line override to a config where the
key is read. Used by tests/test_schema.py and to regenerate the schema section of docs/errors.md
(`python -m tests.schema_cases`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmexp.schema.describe import Spec, all_leaves

# Which options make a key of one kind or class readable (the key must exist in the composed config).
BASES: dict[str, list[str]] = {
    "quantization[none]": [], "quantization[bnb]": ["quantization=bnb-nf4"],
    "quantization[gguf]": ["quantization=gguf-q4_k_m", "runtime=llamacpp"],
    "quantization[onnx]": ["quantization=olive-gptq-int4", "runtime=ortgenai"],
    "runtime[TransformersRuntime]": [], "runtime[LlamaCppRuntime]": ["runtime=llamacpp"],
    "runtime[OrtGenAIRuntime]": ["runtime=ortgenai"], "runtime[VLLMRuntime]": ["runtime=vllm"],
    "runtime[OpenAIRuntime]": ["runtime=openai"],
    "adapter.base_quantization": ["adapter=qlora"], "adapter": ["adapter=lora"],
    "distill": ["distill=qwen2.5-coder-1.5b", "adapter=lora"], "router": ["router=slm-first"],
    "logger": ["logger=wandb"], "task.agent": ["task=agent-support"],
}
_BAD_PATTERN = {"model.source.wheel.sha256": "xyz", "runtime.device": "gpu0", "runtime.base_url": "localhost:8080",
                "runtime.api_key_env": "1-NOT-A-NAME", "cost.country_iso_code": "usa"}


@dataclass
class Case:
    id: str
    key: str  # the dotted key the one line must name
    overrides: list[str]  # the base options, then the bad override (last)


def _base(kind_key: str) -> tuple[str, list[str]]:
    """(plain dotted key, base overrides) of a key from describe.all_leaves."""
    m = re.match(r"^(\w+)\[(\w+)\]\.(.*)$", kind_key)
    if m:
        return f"{m.group(1)}.{m.group(3)}", BASES[f"{m.group(1)}[{m.group(2)}]"]
    for prefix in sorted(BASES, key=len, reverse=True):
        if kind_key.startswith(prefix + ".") and "[" not in prefix:
            return kind_key, BASES[prefix]
    return kind_key, []


def bad_values(key: str, spec: Spec) -> list[tuple[str, Any]]:
    """(what, value) pairs that the spec refuses: a wrong type, and each bound or choice broken."""
    out: list[tuple[str, Any]] = []
    if spec.kind in ("int", "number"):
        out.append(("wrong-type", "abc"))
        if spec.low is not None:
            out.append(("below-range", spec.low - 1 if spec.low_inclusive else spec.low))
        if spec.high is not None:
            out.append(("above-range", spec.high + 1 if spec.high_inclusive else spec.high))
    elif spec.kind == "bool":
        out.append(("wrong-type", "maybe"))
    elif spec.kind == "choice":
        out.append(("not-a-choice", 3 if all(isinstance(c, int) for c in spec.choices) else "not_a_choice"))
    elif spec.pattern is not None:
        out.append(("wrong-form", _BAD_PATTERN.get(key, "not a match")))
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"'{value}'" if isinstance(value, str) and " " in value else str(value)


def cases() -> list[Case]:
    """Every generated case, in schema order."""
    out = []
    for kind_key, spec in all_leaves().items():
        if not spec.constrained or (spec.kind == "choice" and len(spec.choices) == 1 and kind_key.endswith("kind")):
            continue  # a quantization kind's own tag: changing it picks another kind, tested by its rule
        key, base = _base(kind_key)
        if key.startswith(("distill.teacher.", "router.llm.")):
            continue  # the same Model/runtime classes as model.* and runtime.*
        for what, value in bad_values(key, spec):
            cid = f"{kind_key}:{what}"
            out.append(Case(cid, key, [*base, f"{key}={_fmt(value)}"]))
    return out


def run(cases_: list[Case]) -> dict[str, dict[str, Any]]:
    """Compose each case in-process (one base composition per set of options, then the bad value applied as the
    command line would, with Hydra's record of the override kept for the error's origin); collect every error."""
    from hydra import initialize_config_module
    from hydra.core.hydra_config import HydraConfig

    import slmexp.config  # noqa: F401  (registers ${slmexp_data:})

    saved = HydraConfig.instance().cfg
    with initialize_config_module("slmexp.conf", version_base="1.3"):
        try:
            return {case.id: _run_one(case) for case in cases_}
        finally:  # leave no Hydra job config behind: later tests read HydraConfig when it is set
            HydraConfig.instance().cfg = saved


_BASES: dict[tuple[str, ...], tuple[Any, set[str]]] = {}


def _run_one(case: Case) -> dict[str, Any]:
    """The lines the bad override adds to its base config's own (a base may have errors of its own: vllm absent)."""
    import copy

    from hydra import compose
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf, open_dict

    from slmexp import schema

    *base, bad = case.overrides
    if tuple(base) not in _BASES:
        composed = compose("config", overrides=base, return_hydra_config=True)
        HydraConfig.instance().set_config(copy.deepcopy(composed))  # set_config makes its node read-only
        _BASES[tuple(base)] = (composed, {str(e) for e in schema.collect(_job(composed))})
    cfg, before = copy.deepcopy(_BASES[tuple(base)][0]), _BASES[tuple(base)][1]
    ov = OverridesParser.create().parse_override(bad)
    with open_dict(cfg):
        OmegaConf.update(cfg, ov.key_or_group, ov.value(), merge=False)
        cfg.hydra.overrides.task.append(bad)
    HydraConfig.instance().set_config(copy.deepcopy(cfg))
    lines = [str(e) for e in schema.collect(_job(cfg))]
    return {"lines": [ln for ln in lines if ln not in before], "key": case.key, "overrides": case.overrides}


def _job(cfg_with_hydra: Any) -> Any:
    import copy

    from omegaconf import open_dict, read_write

    job = copy.deepcopy(cfg_with_hydra)
    with read_write(job), open_dict(job):
        del job["hydra"]
    return job


def write_docs(results: dict[str, dict[str, Any]], doc: Path) -> None:
    """Rewrite the generated section of docs/errors.md (between its markers) from a run of the cases."""
    start, end = "<!-- schema-cases -->", "<!-- /schema-cases -->"
    text = doc.read_text()
    rows = [f"| `slmexp {' '.join(r['overrides'])}` | {r['lines'][0].replace('|', '&#124;')} |"
            for r in results.values() if r["lines"]]
    block = (f"{start}\n{len(rows)} cases, one per constrained key and broken rule (wrong type, below or above its "
             "range, not one of its choices, wrong form), generated from the schema by `python -m tests.schema_cases`"
             " and checked by tests/test_schema.py:\n\n| command | the line printed after `slmexp: error:` |\n"
             "|---|---|\n" + "\n".join(rows) + f"\n{end}")
    if start in text:
        text = text.split(start)[0] + block + text.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Generated from the schema\n\n" + block + "\n"
    doc.write_text(text)


if __name__ == "__main__":
    write_docs(run(cases()), Path(__file__).resolve().parents[1] / "docs" / "errors.md")
