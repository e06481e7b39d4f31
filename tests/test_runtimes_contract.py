"""The runtime contract (slmexp/runtimes/__init__.py): every shipped runtime class declares its facts, its module is
cheap to import, and a runtime written outside slmexp (a module + a YAML in a --config-dir) is accepted as is.

Why: the pipeline and config validation ask the class (`serves`, `needs`, `remote`, `check`) instead of branching
on runtime names, so a class that forgets an attribute or a module that imports torch at the top breaks every run
that merely names it. The toy runtime below is the "adding a runtime = its module + its YAML" recipe, run.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml

from slmexp.config import CONF_DIR
from slmexp.errors import ConfigError, SlmexpError
from slmexp.runtimes import NEEDS, build_runtime, runtime_class
from tests.conftest import compose

RUNTIMES = sorted(p.stem for p in (CONF_DIR / "runtime").glob("*.yaml"))
QUANT_KINDS = {str((yaml.safe_load(p.read_text()) or {}).get("kind"))
               for p in (CONF_DIR / "quantization").glob("*.yaml")}
HEAVY = ("torch", "transformers", "llama_cpp", "vllm", "onnxruntime_genai", "openai", "lm_eval")
METHODS = ("uses_chat_template", "lm_eval_model", "stream", "close", "__enter__", "__exit__")


@pytest.mark.parametrize("name", RUNTIMES)
def test_runtime_class_declares_the_contract(name: str) -> None:
    cfg = compose([f"runtime={name}"])
    assert cfg.runtime.name == name, "a runtime YAML sets `name:` to its own file name (the record shows it)"
    cls = runtime_class(cfg.runtime)
    assert isinstance(cls.serves, tuple) and "none" in cls.serves and set(cls.serves) <= QUANT_KINDS, cls.serves
    assert cls.needs in NEEDS
    assert isinstance(cls.remote, bool) and isinstance(cls.concurrent_requests, bool)
    assert cls.remote == (cls.needs == "endpoint"), "remote runtimes load no artifact; local ones load one"
    assert isinstance(cls.speed_note, str) and cls.speed_note
    assert inspect.ismethod(cls.check), "check is a classmethod: it runs before anything is built"
    assert all(callable(getattr(cls, m, None)) for m in METHODS)
    stop = inspect.signature(cls.stream).parameters.get("stop")
    assert stop is not None and stop.default is None, "stream(prompt, max_new_tokens, stop=None): the speed stage " \
        "times requests with the accuracy pass's stop strings"
    params = inspect.signature(cls).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), "no **kwargs catch-all"
    assert {"model_path", "adapter_path", "trust_remote_code", "seed"} <= set(params)
    assert ("artifact_path" in params) == (cls.needs in ("gguf", "onnx"))


def test_shipped_facts() -> None:
    """Today's facts, now on the classes (the config and pipeline read them from here)."""
    facts = {}
    for name in ("transformers", "llamacpp", "ortgenai", "openai", "vllm"):
        cls = runtime_class(compose([f"runtime={name}"]).runtime)
        facts[name] = (cls.serves, cls.needs, cls.remote, cls.concurrent_requests)
    assert facts == {"transformers": (("none", "bnb"), "checkpoint", False, False),
                     "llamacpp": (("none", "gguf"), "gguf", False, False),
                     "ortgenai": (("none", "onnx"), "onnx", False, False),
                     "openai": (("none",), "endpoint", True, True),
                     "vllm": (("none",), "checkpoint", False, True)}


def test_runtime_modules_import_nothing_heavy() -> None:
    """Config validation imports the chosen runtime's module: no torch, transformers, engine or lm-eval there."""
    targets = [(yaml.safe_load(p.read_text()) or {}).get("_target_") for p in (CONF_DIR / "runtime").glob("*.yaml")]
    modules = sorted({str(t).rsplit(".", 1)[0] for t in targets if t})  # recipes: the openai module
    code = (f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", f"imported at module level by {modules}: {out.stdout.strip()}"


def test_openai_check_refuses_an_adapter_naming_the_recipe() -> None:
    cls = runtime_class(compose(["runtime=ollama"]).runtime)
    cls.check(compose(["runtime=ollama"]))
    with pytest.raises(ConfigError, match=r"^adapter\.name: adapter=lora cannot be trained for runtime=ollama"):
        cls.check(compose(["runtime=ollama", "adapter=lora"]))


TOY_MODULE = '''
"""A runtime written outside slmexp: it echoes the prompt."""
import time


class ToyRuntime:
    serves = ("none",)
    needs = "{needs}"
    remote = False
    concurrent_requests = False
    speed_note = "in-process: peak_rss_mb includes the model"
    memory_footprint = None
    last_usage = None

    @classmethod
    def check(cls, cfg):
        if cfg.runtime.words < 1:
            from slmexp.config import fail

            raise fail("runtime.words", "must be at least 1")

    def __init__(self, model_path=None, *, name, words=2, adapter_path=None, trust_remote_code=False, seed=0{extra}):
        if words > 99:
            from slmexp.errors import SlmexpError

            raise SlmexpError("runtime.words: too many")
        self.name, self.words, self.load_s, self.kwargs = name, words, 0.0, {{"model_path": model_path{kw}}}

    def uses_chat_template(self):
        return False

    def lm_eval_model(self):
        raise NotImplementedError

    def stream(self, prompt, max_new_tokens, stop=None):
        words = prompt.split()[: min(self.words, max_new_tokens)]
        if stop:
            words = words[: next((i for i, w in enumerate(words) if w in stop), len(words))]
        try:
            for word in words:
                yield word, time.perf_counter()
        finally:
            self.last_usage = {{"input_tokens": len(prompt.split()), "output_tokens": len(words), "source": "words"}}

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
'''


def _toy(tmp_path, monkeypatch, module: str, needs: str = "checkpoint") -> list[str]:
    """Write the toy runtime's module and its YAML; the overrides that select it."""
    extra, kw = (", artifact_path", ', "artifact_path": artifact_path') if needs in ("gguf", "onnx") else ("", "")
    (tmp_path / f"{module}.py").write_text(TOY_MODULE.format(needs=needs, extra=extra, kw=kw))
    monkeypatch.syspath_prepend(str(tmp_path))
    conf = tmp_path / "conf" / "runtime"
    conf.mkdir(parents=True)
    (conf / "toy.yaml").write_text(f"# A toy runtime.\n_target_: {module}.ToyRuntime\nname: toy\nwords: 3\n")
    return [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "runtime=toy"]


def test_a_new_runtime_is_its_module_and_its_yaml(tmp_path, monkeypatch) -> None:
    from slmexp.config import validate

    overrides = _toy(tmp_path, monkeypatch, "toy_runtime_checkpoint")
    cfg = compose(overrides)
    cls = runtime_class(cfg.runtime)
    assert cls.__name__ == "ToyRuntime" and cls.needs == "checkpoint"
    validate(cfg)  # config validation takes it: its check() runs, nothing names it
    with pytest.raises(ConfigError, match=r"^runtime\.words: must be at least 1"):
        validate(compose([*overrides, "runtime.words=0"]))
    unserved = r"^quantization\.kind: quantization=bnb-nf4 \(bnb\) cannot run on runtime=toy"
    with pytest.raises(ConfigError, match=unserved):  # its `serves` is asked, not a list in slmexp
        validate(compose([*overrides, "quantization=bnb-nf4"]))
    artifact = SimpleNamespace(path=tmp_path, runtime_kwargs={})
    with build_runtime(cfg, "/some/checkpoint", artifact=artifact) as rt:
        assert rt.name == "toy" and rt.kwargs == {"model_path": "/some/checkpoint"}
        assert [w for w, _t in rt.stream("one two three four", 8)] == ["one", "two", "three"]
        assert rt.last_usage["output_tokens"] == 3
        assert [w for w, _t in rt.stream("one two three four", 8, stop=["three"])] == ["one", "two"]
    with pytest.raises(SlmexpError, match=r"^runtime\.words: too many$"):  # its own error, not Hydra's wrapper
        build_runtime(compose([*overrides, "runtime.words=100"]), None)


def test_build_runtime_passes_the_artifact_path_to_a_gguf_runtime(tmp_path, monkeypatch) -> None:
    cfg = compose(_toy(tmp_path, monkeypatch, "toy_runtime_gguf", needs="gguf"))
    rt = build_runtime(cfg, None, artifact=SimpleNamespace(path=tmp_path / "model.gguf", runtime_kwargs={}))
    assert rt.kwargs == {"model_path": None, "artifact_path": str(tmp_path / "model.gguf")}
    with pytest.raises(SlmexpError, match=r"runtime=toy loads a gguf artifact, and none was prepared"):
        build_runtime(cfg, None)
