"""Where a config key got its value, and the ConfigError that says so.

Every bad-input error names the dotted key and the file:line (or command-line override) that set it, found from
Hydra's own records. This is a leaf module (it imports only slmexp.errors), so the plug-ins whose `check`s the
config layer calls can raise these errors without an import cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slmexp.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
CONF_DIR = PACKAGE_DIR / "conf"  # shipped in the package: found through pkg://slmexp.conf
CONF_PKG = "pkg://slmexp.conf"


def config_dirs(hc: Any) -> list[Path]:
    """The config dirs Hydra searched, from its runtime config `hc`: our conf/ first, then the user's --config-dir
    ones (which shadow it, as in Hydra's search path)."""
    dirs = [Path(str(src.path)) for src in hc.runtime.get("config_sources") or []
            if src.get("schema") == "file" and Path(str(src.path)).resolve() != CONF_DIR]
    return [CONF_DIR, *dirs]


def override_for(key: str, overrides: list[str]) -> str | None:
    """The command-line override that set `key`: the most specific one (`task.labels=...` over the `task=jsonl`
    that chose the file), or None."""
    names = {ov: ov.lstrip("+~").split("=", 1)[0] for ov in overrides}
    matches = [ov for ov, name in names.items() if name == key or key.startswith(name + ".")]
    return max(matches, key=lambda ov: len(names[ov])) if matches else None


def _hydra_choices_and_overrides() -> tuple[dict[str, Any], list[str], list[Path]]:
    """Group choices, command-line overrides, and the config dirs searched (ours plus --config-dir ones)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        return dict(hc.runtime.choices), list(hc.overrides.task), config_dirs(hc)
    except Exception:  # not inside a Hydra app (tests, notebooks)
        return {}, [], [CONF_DIR]


def _show_path(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _line_of(yaml_file: Path, keys: list[str]) -> int | None:
    """1-based line of a nested key in a YAML file, from PyYAML's node marks."""
    import yaml

    try:
        node = yaml.compose(yaml_file.read_text())
    except Exception:
        return None
    for k in keys:
        if not isinstance(node, yaml.MappingNode):
            return None
        for key_node, value_node in node.value:
            if key_node.value == k:
                line = key_node.start_mark.line + 1
                node = value_node
                break
        else:
            return None
    return line


def key_origin(key: str) -> str | None:
    """Where `key` got its value: a command-line override, or <config dir>/<group>/<choice>.yaml:<line> (our
    conf/ or a user's --config-dir)."""
    choices, overrides, dirs = _hydra_choices_and_overrides()
    if ov := override_for(key, overrides):
        return f"command-line override '{ov}'"
    parts = key.split(".")
    group = parts[0]
    candidates = []
    if choices.get(group):  # a user's config dir shadows ours, as in Hydra's search path
        candidates += [(d / group / f"{choices[group]}.yaml", parts[1:]) for d in reversed(dirs)]
    candidates.append((CONF_DIR / "config.yaml", parts))
    candidates = [(path, sub) for path, sub in candidates if path.exists()]
    for path, sub in candidates:
        if sub:
            line = _line_of(path, sub)
            if line is not None:
                return f"{_show_path(path)}:{line}"
    if candidates:
        return _show_path(candidates[0][0])
    return None


def fail(key: str, message: str) -> ConfigError:
    """A ConfigError for `key`, with its origin filled in."""
    return ConfigError(key, message, key_origin(key))
