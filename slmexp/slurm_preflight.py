"""Runs the SLURM preflight (slmexp.launchers.check) before a sweep's jobs reach sbatch, and says where each
refused launcher key was set.

Why a callback: Hydra calls `on_multirun_start` after composing the config and before the sweeper hands the jobs to
the launcher, so nothing is submitted (and no sweep dir is made) when the request cannot run. Why SystemExit: Hydra
turns an exception a callback raises into a warning and goes on (hydra/_internal/callbacks.py), so a ConfigError
would be printed as a warning and the job array queued anyway; the lines are printed here as `slmexp: error: ...`
(as slmexp.cli_errors.run_app prints its own) and the process exits 2.

Why a helper for the origin: slmexp.origin.key_origin knows the job's groups and task overrides, not `hydra.*`
keys, which come from the launcher preset (and the presets it extends), a sweep file, or `hydra.` overrides.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from slmexp.cli_errors import refuse
from slmexp.launchers import PREFIX, SINFO_CMD, Node, check, parse_sinfo
from slmexp.origin import _line_of, _show_path, config_dirs, override_for

log = logging.getLogger("slmexp")

KEYS = ("partition", "nodes", "tasks_per_node", "cpus_per_task", "gpus_per_node", "gpus_per_task", "gres", "mem_gb",
        "mem_per_cpu", "mem_per_gpu", "timeout_min")
SINFO_TIMEOUT_S = 30


def sinfo_nodes() -> list[Node] | None:
    """The cluster's nodes from `sinfo`; None (check skipped, with a warning) where there is no sinfo or it fails:
    not on a cluster, or a controller that does not answer (sbatch would then say so itself)."""
    if shutil.which(SINFO_CMD[0]) is None:
        log.warning("slurm preflight skipped: no `sinfo` on this machine (not a SLURM login node?)")
        return None
    try:
        out = subprocess.run(SINFO_CMD, capture_output=True, text=True, timeout=SINFO_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("slurm preflight skipped: %s failed: %s", " ".join(SINFO_CMD), e)
        return None
    if out.returncode != 0:
        log.warning("slurm preflight skipped: sinfo exited %d: %s", out.returncode, out.stderr.strip()[-300:])
        return None
    return parse_sinfo(out.stdout)


def _defaults_of(path: Path) -> list[str]:
    """The same-group entries of a preset's defaults list (`- slurm`, `- submitit_slurm`): the presets it extends."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    entries = data.get("defaults") if isinstance(data, dict) else None
    return [e for e in entries or [] if isinstance(e, str) and e != "_self_"]


def _in_preset(dirs: list[Path], choice: str, keys: list[str], depth: int = 0) -> str | None:
    """file:line of the key in launcher preset `choice` or the presets it extends; a preset with no file is a
    plugin's structured config (hydra-submitit-launcher's submitit_slurm)."""
    for d in reversed(dirs):
        path = d / "hydra" / "launcher" / f"{choice}.yaml"
        if not path.is_file():
            continue
        if not keys:
            return _show_path(path)
        line = _line_of(path, keys)
        if line is not None:
            return f"{_show_path(path)}:{line}"
        for parent in _defaults_of(path) if depth < 8 else []:
            found = _in_preset(dirs, parent, keys, depth + 1)
            if found:
                return found
        return None
    return f"the default of hydra/launcher={choice}"


def launcher_origin(config: DictConfig, key: str) -> str | None:
    """Where `hydra.launcher.<...>` got its value: a command-line override, else a file that sets it (a sweep file
    or the primary config, as `hydra: launcher: ...`), else the launcher preset's file:line."""
    hc = config.hydra
    overrides = [str(o) for o in [*(hc.overrides.get("hydra") or []), *(hc.overrides.get("task") or [])]]
    if ov := override_for(key, overrides):
        return f"command-line override '{ov}'"
    dirs = config_dirs(hc)
    choices = {str(k): v for k, v in (hc.runtime.get("choices") or {}).items()}
    files = [f"{g}/{c}.yaml" for g, c in reversed(choices.items()) if c and not g.startswith("hydra/")]
    for rel in [*files, f"{hc.job.get('config_name') or 'config'}.yaml"]:  # the last in the defaults list wins
        for d in reversed(dirs):
            line = _line_of(d / rel, key.split(".")) if (d / rel).is_file() else None
            if line is not None:
                return f"{_show_path(d / rel)}:{line}"
    choice = choices.get("hydra/launcher")
    sub = key[len(PREFIX):].split(".") if key.startswith(PREFIX) else []
    return _in_preset(dirs, str(choice), sub) if choice else None


def preflight(config: DictConfig) -> list[str]:
    """The error lines for this multirun's launcher; [] when it is not SLURM's, fits, or sinfo is unavailable."""
    launcher = config.hydra.get("launcher")
    if launcher is None or not str(launcher.get("_target_", "")).endswith("SlurmLauncher"):
        return []
    nodes = sinfo_nodes()
    if not nodes:
        if nodes is not None:
            log.warning("slurm preflight skipped: sinfo lists no nodes")
        return []
    values: dict[str, Any] = {k: launcher.get(k) for k in KEYS}
    return check(values, nodes, lambda key: launcher_origin(config, key))


class SlurmPreflight(Callback):
    """Before a multirun with a SLURM launcher: refuse a request no node of its partition can meet (CPUs,
    memory, GPUs/GRES, nodes, time limit), read from `sinfo`. `enabled=false` turns it off (a cluster whose sinfo
    does not show the nodes jobs will get, e.g. nodes that are added on demand)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        lines = preflight(config)
        if lines:
            refuse(lines)
