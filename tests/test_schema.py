"""Config as a schema (slmexp.schema): the YAML files and the declared schema agree; a bad value of any constrained
key is one line naming the key and the override that set it; several bad values are several lines at once.

The bad values are generated from the schema (tests/schema_cases.py), not written by hand: a key added to the
schema gets its cases with no test to write. They run in-process (one Hydra composition per set of options), so
the ~190 cases cost seconds; tests/test_bad_input.py runs the hand-written list through the real CLI.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from slmexp.config import CONF_DIR
from slmexp.schema import schema_errors
from slmexp.schema.describe import all_leaves
from tests import schema_cases
from tests.conftest import compose

REPO = Path(__file__).resolve().parents[1]
CASES = schema_cases.cases()
# Options that only make sense with another choice (as in tests/test_config.py).
PAIRS = {"gguf-": ["runtime=llamacpp"], "onnx-": ["runtime=ortgenai"], "olive-": ["runtime=ortgenai"]}
GROUP_OPTIONS = [(g, p.stem) for g in sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir()
                                             and p.name not in ("local", "hydra", "sweep"))
                 for p in sorted((CONF_DIR / g).glob("*.yaml"))]
# Keys declared for users' own files and `+key=` overrides, set by no shipped option.
USER_ONLY = {"runtime[OpenAIRuntime].api_key", "task.required_keys", "adapter.base_quantization.load_in_8bit",
             "claims", "quantization[bnb].config.bnb_4bit_quant_type", "model.source.path"}


@functools.cache
def _composed(group: str, option: str):
    pair = next((v for k, v in PAIRS.items() if option.startswith(k)), [])
    if group == "model" and not compose([f"model={option}"]).model.source.hub:
        pair = ["runtime=openai"]
    return compose([f"{group}={option}", *pair])


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS, ids=[f"{g}={o}" for g, o in GROUP_OPTIONS])
def test_every_shipped_option_satisfies_the_schema(group: str, option: str) -> None:
    """No YAML value the schema refuses, and no YAML key the schema does not declare (extra keys are refused)."""
    errors = [str(e) for e in schema_errors(_composed(group, option))]
    assert errors == [], errors


def _present_keys(cfg, prefix: str = "") -> set[str]:
    out = set()
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        out.add(key)
        if isinstance(v, dict):
            out |= _present_keys(v, key + ".")
    return out


def test_every_declared_key_is_set_by_a_shipped_option() -> None:
    """The schema declares nothing the YAML files never set (bar the few keys for users' own files): a key
    removed from the YAML files must leave the schema too."""
    seen: set[str] = set()
    for group, option in GROUP_OPTIONS:
        cfg = _composed(group, option)
        plain = OmegaConf.to_container(cfg, resolve=False)
        keys = _present_keys(plain)
        seen |= keys
        q, r = cfg.quantization.kind, cfg.runtime._target_.rsplit(".", 1)[-1]
        seen |= {k.replace("quantization.", f"quantization[{q}].", 1) for k in keys}
        seen |= {k.replace("runtime.", f"runtime[{r}].", 1) for k in keys}
    seen |= _present_keys(OmegaConf.to_container(compose(["task=lm-eval"]), resolve=False))
    unset = sorted(k for k in all_leaves() if k not in seen and k not in USER_ONLY
                   and not k.startswith(("distill.teacher.", "router.llm.")))
    assert unset == [], f"declared in slmexp/schema but set by no YAML option: {unset}"


@pytest.fixture(scope="module")
def generated() -> dict[str, dict]:
    return schema_cases.run(CASES)


def test_the_schema_generates_a_case_for_every_constrained_key() -> None:
    keys = {c.key for c in CASES}
    assert len(CASES) >= 150 and len(keys) >= 90, (len(CASES), len(keys))
    for must in ("adapter.peft.r", "train.learning_rate", "runtime.n_ctx", "eval.limit", "quantization.olive.bits"):
        assert must in keys


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_value_is_one_line_naming_the_key_and_the_override(generated, case) -> None:
    lines = generated[case.id]["lines"]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{case.key}: "), lines[0]
    assert f"(command-line override '{case.overrides[-1]}')" in lines[0], lines[0]


def test_errors_doc_lists_the_generated_cases(generated) -> None:
    doc = (REPO / "docs" / "errors.md").read_text()
    missing = [r["lines"][0] for r in generated.values() if r["lines"][0].replace("|", "&#124;") not in doc]
    assert not missing, f"{len(missing)} generated cases not in docs/errors.md (python -m tests.schema_cases): " \
                        f"{missing[:3]}"


def test_three_bad_values_print_three_lines_before_any_model_loads(tmp_path) -> None:
    """Through the real CLI: every error at once, each naming its key and override; exit 2; no traceback."""
    argv = ["adapter=lora", "adapter.peft.r=0", "train.learning_rate=fast", "eval.bench.concurrency=0",
            f"hydra.run.dir={tmp_path}/run", f"paths.output_dir={tmp_path}/out", f"paths.cache_dir={tmp_path}/c"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "slmexp", *argv], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    expected = [("adapter.peft.r", "adapter.peft.r=0"), ("train.learning_rate", "train.learning_rate=fast"),
                ("eval.bench.concurrency", "eval.bench.concurrency=0")]
    assert len(lines) == len(expected), lines
    for ln, (key, ov) in zip(lines, expected, strict=True):
        assert ln.startswith(f"slmexp: error: {key}: ") and f"(command-line override '{ov}')" in ln, ln
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["run"]["error"]["stage"] == "validate" and rec["model"] is None  # before any model was resolved
