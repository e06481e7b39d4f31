"""One plug-in registry for runtimes, quantizers and task kinds: slmexp's own entries as lazy "module:attr"
strings, plus whatever installed packages declare under the entry-point groups `slmexp.runtimes`,
`slmexp.quantizers` and `slmexp.task_kinds` (pyproject.toml: `[project.entry-points."slmexp.runtimes"]
toy = "slmexp_toy.runtime:ToyRuntime"`).

Why entry points: they are how pytest, Hydra's launchers and lm-eval's own extensions find code in other packages,
so a separate package adds a backend, an export format or a task kind without touching slmexp. Why lazy strings:
naming an entry must not import it (`slmexp --help` and config validation stay cheap; torch, llama_cpp and vllm
are imported only by the entry that is used), as in lm-eval's MODEL_MAPPING.

A registry is a read-only mapping: `TASK_KINDS["qa"]` returns the kind's record, `RUNTIMES.load("llamacpp")` imports
and returns the class; `"toy" in TASK_KINDS` and `list(RUNTIMES)` import nothing. slmexp's own entries win over
a plug-in's of the same name.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

GROUPS = ("slmexp.runtimes", "slmexp.quantizers", "slmexp.task_kinds")


def load_ref(ref: str) -> Any:
    """Import "package.module:attr" (the attribute) or "package.module" (the module)."""
    module, _, attr = ref.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def import_path(obj: Any) -> str:
    """`package.module.Name`: how Hydra's `_target_` names a class that a registry entry (or `load_ref`) gave."""
    return f"{obj.__module__}.{obj.__qualname__}"


class Registry(Mapping[str, Any]):
    """name -> object, from built-in "module:attr" strings and the installed entry points of `group`.

    `load=False`: the mapping's values are the references themselves (the quantizers' map is kind -> module path,
    imported by `slmexp.quantize.quantizer`); `load(name)` imports either way."""

    def __init__(self, group: str, builtin: Mapping[str, str | Any], *, load: bool = True) -> None:
        self.group = group
        self._load_values = load
        self._builtin = dict(builtin)
        self._refs: dict[str, str | Any] | None = None
        self._loaded: dict[str, Any] = {}

    def refs(self) -> dict[str, str | Any]:
        """name -> its "module:attr" (or the object itself, for built-ins that are plain data); nothing imported."""
        if self._refs is None:
            from importlib.metadata import entry_points

            plugins = {ep.name: ep.value for ep in entry_points(group=self.group)}
            self._refs = {**plugins, **self._builtin}
        return self._refs

    def origin(self, name: str) -> str:
        """Where an entry comes from: "slmexp" or "plug-in <module:attr>" (the record and errors say it)."""
        return "slmexp" if name in self._builtin else f"plug-in {self.refs()[name]}"

    def __getitem__(self, name: str) -> Any:
        return self.load(name) if self._load_values else self.refs()[name]

    def load(self, name: str) -> Any:
        """The entry's object, imported on first use (KeyError for an unknown name)."""
        if name not in self._loaded:
            ref = self.refs()[name]
            self._loaded[name] = load_ref(ref) if isinstance(ref, str) else ref
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.refs())

    def __len__(self) -> int:
        return len(self.refs())

    def __contains__(self, name: object) -> bool:
        return name in self.refs()

    def reload(self) -> None:
        """Forget the entry points read (a package was installed since)."""
        self._refs, self._loaded = None, {}
