"""One plug-in registry (slmexp.registry): runtimes, quantizers and task kinds from another package's entry points.

The "package" here is real as far as Python's packaging is concerned: a dist-info folder with an entry_points.txt
on sys.path, which importlib.metadata discovers exactly as it discovers a pip-installed distribution. Nothing in
slmexp is patched: the registries read the entry points, the config schema checks the plug-ins' own option models,
and config validation accepts a job that uses all three.
"""

from __future__ import annotations

import textwrap

import pytest

from slmexp.errors import ConfigError
from slmexp.origin import CONF_DIR
from tests.conftest import compose

ENTRY_POINTS = """\
[slmexp.runtimes]
toy = slmexp_toy.runtime:ToyRuntime
transformers = slmexp_toy.runtime:ToyRuntime

[slmexp.quantizers]
toyq = slmexp_toy.quant

[slmexp.task_kinds]
toy = slmexp_toy.kinds:TOY
"""

RUNTIME = '''
from typing import ClassVar

from slmexp.schema.runtimes import RuntimeBase
from slmexp.schema.types import PosInt


class ToyOptions(RuntimeBase):
    words: PosInt
    batch_size: PosInt


class ToyRuntime:
    serves: ClassVar[tuple[str, ...]] = ("none", "toyq")
    needs: ClassVar[str] = "checkpoint"
    remote: ClassVar[bool] = False
    concurrent_requests: ClassVar[bool] = False
    speed_note: ClassVar[str] = "a toy"
    options = ToyOptions

    @classmethod
    def check(cls, cfg) -> None:
        pass
'''

QUANT = '''
from slmexp.schema.types import Node, PosInt

KIND = "toyq"
PRODUCES = "checkpoint"


class OPTIONS(Node):
    name: str
    kind: str
    bits: PosInt


def check(qcfg) -> None:
    pass
'''

KINDS_MODULE = '''
from slmexp.tasks.kinds import TaskKind, check_label, check_string

TOY = TaskKind(name="toy", roles={"text": check_string, "label": check_label}, gold_role="label",
               needs_labels=True, metrics=("exact_match",), template="classification.yaml", doc_choices=True)
'''


@pytest.fixture
def toy_plugin(tmp_path, monkeypatch):
    """Install the toy distribution on sys.path and make the registries read entry points afresh."""
    from slmexp.quantize import QUANTIZERS
    from slmexp.runtimes import RUNTIMES
    from slmexp.tasks.kinds import KINDS

    pkg = tmp_path / "slmexp_toy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name, text in (("runtime", RUNTIME), ("quant", QUANT), ("kinds", KINDS_MODULE)):
        (pkg / f"{name}.py").write_text(textwrap.dedent(text))
    dist = tmp_path / "slmexp_toy-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: slmexp-toy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    conf = tmp_path / "conf"
    (conf / "runtime").mkdir(parents=True)
    (conf / "runtime" / "toy.yaml").write_text("# A toy runtime.\n_target_: toy\nname: toy\nwords: 3\nbatch_size: 1\n")
    (conf / "quantization").mkdir()
    (conf / "quantization" / "toyq.yaml").write_text("# A toy quantizer.\nname: toyq\nkind: toyq\nbits: 4\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for registry in (RUNTIMES, QUANTIZERS, KINDS):
        registry.reload()
    yield [f"hydra.searchpath=[file://{conf}]"]
    for registry in (RUNTIMES, QUANTIZERS, KINDS):
        registry.reload()


def test_entry_points_add_a_runtime_a_quantizer_and_a_task_kind(toy_plugin) -> None:
    from slmexp.quantize import QUANTIZERS, quantizer
    from slmexp.runtimes import RUNTIMES, runtime_class
    from slmexp.tasks.kinds import KINDS, kind

    assert "toy" in RUNTIMES and runtime_class({"_target_": "toy"}).__name__ == "ToyRuntime"
    assert RUNTIMES.origin("toy") == "plug-in slmexp_toy.runtime:ToyRuntime"
    assert RUNTIMES.origin("transformers") == "slmexp"  # slmexp's own entry wins over a plug-in's of that name
    assert runtime_class({"_target_": "transformers"}).__module__ == "slmexp.runtimes.transformers"
    assert QUANTIZERS["toyq"] == "slmexp_toy.quant" and quantizer("toyq").PRODUCES == "checkpoint"
    assert "toy" in KINDS and kind("toy").metrics == ("exact_match",)


def test_a_job_using_all_three_validates_and_their_options_are_checked(toy_plugin) -> None:
    from slmexp.config import validate

    job = [*toy_plugin, "runtime=toy", "quantization=toyq", "task.kind=toy", "task.primary_metric=exact_match"]
    validate(compose(job))  # the schema takes the plug-ins' own option models; the rules ask their classes
    with pytest.raises(ConfigError) as bad:
        validate(compose([*job, "runtime.words=0", "quantization.bits=zero"]))
    lines = sorted(str(bad.value).splitlines())
    assert len(lines) == 2 and lines[0].startswith("quantization.bits: must be an integer"), lines
    assert lines[1].startswith("runtime.words: must be >= 1"), lines


def test_builtin_runtimes_are_named_by_the_registry() -> None:
    """Every runtime YAML's class is a registered one (by name or import path), so `_target_: <name>` works too."""
    import yaml

    from slmexp.runtimes import RUNTIMES, runtime_class

    paths = {f"{RUNTIMES.load(n).__module__}.{RUNTIMES.load(n).__qualname__}" for n in RUNTIMES}
    for f in sorted((CONF_DIR / "runtime").glob("*.yaml")):
        target = (yaml.safe_load(f.read_text()) or {}).get("_target_")
        if target:
            assert target in paths, f"{f.name}: {target}"
            assert runtime_class({"_target_": target}) is RUNTIMES.load(target.rsplit(".", 2)[-2])
