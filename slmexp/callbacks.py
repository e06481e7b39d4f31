"""Hydra callbacks: a sweep ends in its comparison table, and a tuning sweep in its chosen configuration measured on
test, without a second command.

Why a tuning sweep needs the second one: the best of several trials scored on the same examples is an optimistic
estimate of the chosen configuration (its score is the maximum of noisy estimates). So trials are scored on the
validation split only, and the test split is read once, by one final job that re-runs the chosen trial's
overrides with `eval.split=test`; both figures are recorded (`metrics.selection`) and printed side by side.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from slmexp.record_types import RunError, RunJson, Selection

log = logging.getLogger("slmexp")

# The final job's run dir, inside the sweep dir (so the sweep's report collects it next to the trials).
CHOSEN_DIR = "chosen"
CHOSEN_ON = "validation"
TEST_SPLIT = "test"


# Set when the sweep's report failed; `slmexp` (cli.main) then exits non-zero after Hydra returns.
REPORT_FAILURES: list[str] = []


class ReportCallback(Callback):
    """After a multirun, write comparison.md/.csv/.tex and plots into the sweep dir (`slmexp report DIR` redoes it).
    A report that fails removes the stale tables (slmexp.report.write_report) and fails the sweep's exit status."""

    def __init__(self, baseline: str | None = None, enabled: bool = True) -> None:
        self.baseline = baseline
        self.enabled = enabled

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        from slmexp.report import write_report

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            paths = write_report(sweep_dir, baseline=self.baseline)
        except Exception as e:  # the runs are safe on disk; the report can be rebuilt later
            log.exception("report failed; rebuild it with: slmexp report %s", sweep_dir)
            REPORT_FAILURES.append(f"the sweep's report failed ({type(e).__name__}: {e}); its old tables were "
                                   f"removed; rebuild it with: slmexp report {sweep_dir}")
            return
        from slmexp.tracking import log_sweep

        log_sweep(config.get("logger"), sweep_dir, paths)
        log.info("comparison table: %s", paths.get("md"))
        print(Path(paths["md"]).read_text())


class RedactCallback(Callback):
    """Secrets out of what Hydra writes: `.hydra/config.yaml`, `hydra.yaml`, `overrides.yaml` and the sweep's
    `multirun.yaml` are rewritten redacted (slmexp.secrets) once Hydra has saved them (it saves before a job starts),
    and the job's log handlers get a filter that redacts every line."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        from slmexp import secrets

        secrets.redact(OmegaConf.to_container(config, resolve=False))  # learn the values to hide
        secrets.install_log_filter()
        hydra_cfg = config.hydra
        if hydra_cfg.get("output_subdir") is not None:
            out = Path(str(hydra_cfg.runtime.output_dir)) / str(hydra_cfg.output_subdir)
            for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
                secrets.rewrite_yaml(out / name)
        from hydra.types import RunMode

        if hydra_cfg.get("mode") == RunMode.MULTIRUN:
            secrets.rewrite_yaml(Path(str(hydra_cfg.sweep.dir)) / "multirun.yaml")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from slmexp import secrets

        secrets.rewrite_yaml(Path(str(config.hydra.sweep.dir)) / "multirun.yaml")


# --- choosing on validation ----------------------------------------------------------------------------------------


class SelectionError(Exception):
    """No configuration can be chosen honestly (no finished trial, or trials scored on a split other than
    validation); the message says why and what to change."""


@dataclass
class Choice:
    """The chosen trial: its run dir, record, validation value and the overrides that set it apart."""

    job_dir: Path
    record: RunJson
    value: float
    metric: str
    n_trials: int
    n_finished: int
    params: list[str] = field(default_factory=list)


def metric_name(record: RunJson, metric: str | None = None) -> str:
    """The metric a trial is judged by: `metric` if given, else the run's `optimized_metric`, else its primary."""
    metrics = record.get("metrics") or {}
    return str(metric or (record.get("config") or {}).get("optimized_metric") or metrics.get("primary"))


def trials(sweep_dir: Path) -> list[tuple[Path, RunJson]]:
    """(job dir, record) of every job directly under the sweep dir, the final `chosen` job excluded."""
    out: list[tuple[Path, RunJson]] = []
    for path in sorted(Path(sweep_dir).glob("*/run.json")):
        if path.parent.name == CHOSEN_DIR:
            continue
        try:
            out.append((path.parent, json.loads(path.read_text())))
        except (OSError, ValueError) as e:
            log.warning("selection: skipping unreadable %s: %s", path, e)
    return out


def _get(record: RunJson, dotted: str) -> Any:
    node: Any = record
    for k in dotted.split("."):
        node = node.get(k) if isinstance(node, dict) else None
    return node


def _order(job_dir: Path) -> tuple[int, str]:
    return (int(job_dir.name), "") if job_dir.name.isdigit() else (1 << 30, job_dir.name)


def choose(runs: list[tuple[Path, RunJson]], metric: str | None = None, direction: str = "maximize",
           tolerance: float = 0.0, prefer_lowest: str | None = None) -> Choice:
    """The best finished trial by its validation value.

    Trials within `tolerance` of the best value are equally good; among them the one with the lowest
    `prefer_lowest` (a dotted record path, e.g. `metrics.values.escalated_share`: fewer LLM calls) wins, then the
    better value, then the earlier job (as Optuna's best_trial). Refuses (SelectionError) when a finished trial was
    scored on another split: a choice made on test examples must not be reported on them.
    """
    if direction not in ("maximize", "minimize"):
        raise SelectionError(f"direction must be maximize or minimize, got {direction!r}")
    finished = [(d, r) for d, r in runs if (r.get("run") or {}).get("status") == "finished"]
    if not finished:
        raise SelectionError(f"no finished trial among {len(runs)} job(s)")
    off = sorted({str((r.get("metrics") or {}).get("split")) for _, r in finished} - {CHOSEN_ON})
    if off:
        raise SelectionError(f"trials were scored on eval.split={','.join(off)}; a configuration is chosen on "
                             f"eval.split={CHOSEN_ON} and only then measured on {TEST_SPLIT} (drop the eval.split "
                             "override)")
    sign = 1.0 if direction == "maximize" else -1.0
    scored: list[tuple[Path, RunJson, float]] = []
    for d, r in finished:
        v = ((r.get("metrics") or {}).get("values") or {}).get(metric_name(r, metric))
        if isinstance(v, int | float) and not isinstance(v, bool):
            scored.append((d, r, float(v)))
    if not scored:
        raise SelectionError(f"no finished trial recorded {metric_name(finished[0][1], metric)!r}")
    best = max(sign * v for _, _, v in scored)
    near = [s for s in scored if sign * s[2] >= best - tolerance]

    def key(s: tuple[Path, RunJson, float]) -> tuple:
        cost = _get(s[1], prefer_lowest) if prefer_lowest else None
        return (cost if isinstance(cost, int | float) else float("inf"), -sign * s[2], _order(s[0]))

    d, r, v = min(near, key=key)
    return Choice(d, r, v, metric_name(r, metric), len(runs), len(finished))


def job_overrides(job_dir: Path) -> list[str]:
    """The overrides Hydra composed this job with (`<job>/.hydra/overrides.yaml`): enough to run it again."""
    path = Path(job_dir) / ".hydra" / "overrides.yaml"
    if not path.is_file():
        raise SelectionError(f"{path} is missing (hydra.output_subdir=null?): the chosen trial cannot be re-run")
    return [str(o) for o in yaml.safe_load(path.read_text()) or []]


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def final_command(overrides: list[str], out_dir: Path, config_name: str = "config",
                 config_dir: str | None = None) -> list[str]:
    """`python -m slmexp <the chosen trial's overrides> eval.split=test` as one plain run into `out_dir`.

    A subprocess, not a call: the final job gets its own Hydra context (run dir, record, peak RSS) as any run.
    `hydra.mode=RUN` overrides the sweep file's MULTIRUN, so the job does not start another sweep.
    """
    keep = [o for o in overrides if _key(o) != "eval.split"]
    cmd = [sys.executable, "-m", "slmexp", *keep, f"eval.split={TEST_SPLIT}", "hydra.mode=RUN",
           f"hydra.run.dir={out_dir}"]
    if config_name != "config":
        cmd += ["--config-name", config_name]
    if config_dir:
        cmd += ["--config-dir", config_dir]
    return cmd


def _fmt_param(override: str) -> str:
    k, _, v = override.partition("=")
    try:
        f = float(v)
    except ValueError:
        return override
    return f"{k}={v}" if f.is_integer() or "." not in v else f"{k}={f:.3g}"


def selection_block(choice: Choice, test: RunJson, direction: str, tolerance: float,
                    prefer_lowest: str | None) -> Selection:
    """The chosen run's `metrics.selection`: which split chose it, both figures (labelled) and how it was chosen."""
    values = (test.get("metrics") or {}).get("values") or {}
    return {
        "chosen_on": CHOSEN_ON, "metric": choice.metric, "validation": choice.value,
        "test": values.get(choice.metric),
        "n_validation": (choice.record.get("metrics") or {}).get("n_examples"),
        "n_test": (test.get("metrics") or {}).get("n_examples"),
        "params": choice.params, "trial": choice.job_dir.name,  # the job dir's name in the sweep dir
        "n_trials": choice.n_trials, "n_finished": choice.n_finished,
        "direction": direction, "tolerance": tolerance, "prefer_lowest": prefer_lowest,
    }


def describe(sel: Selection) -> str:
    """One line: the configuration chosen on validation with its validation figure, then its test figure."""
    params = ", ".join(_fmt_param(p) for p in sel["params"]) or f"trial {sel['trial']}"
    test = "n/a" if sel["test"] is None else f"{sel['test']:.3f}"
    return (f"chosen on validation: {params} (validation {sel['metric']} {sel['validation']:.3f}, "
            f"n={sel['n_validation']}, best of {sel['n_finished']} trials); test {sel['metric']} {test} "
            f"(n={sel['n_test']})")


class ChooseOnValidation(Callback):
    """After a tuning multirun (`sweep=hpo`, `sweep=router`), whose trials run with `eval.split=validation`: pick
    the best trial (`choose`), run its overrides once more with `eval.split=test` into `<sweep dir>/chosen`, write
    `metrics.selection` into that run.json and print `describe`'s line. Runs before the report (Hydra calls
    multirun-end callbacks last-declared first), so the table has the chosen row.
    """

    def __init__(self, metric: str | None = None, direction: str = "maximize", tolerance: float = 0.0,
                 prefer_lowest: str | None = None, enabled: bool = True) -> None:
        self.metric, self.direction, self.tolerance = metric, str(direction), float(tolerance)
        self.prefer_lowest, self.enabled = prefer_lowest, enabled

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            choice = choose(trials(sweep_dir), self.metric, self.direction, self.tolerance, self.prefer_lowest)
            overrides = job_overrides(choice.job_dir)
        except SelectionError as e:
            print(f"slmexp: no configuration chosen on validation: {e}", flush=True)
            return
        common = set(config.hydra.overrides.get("task") or [])
        choice.params = [o for o in overrides if o not in common]
        sources = config.hydra.runtime.get("config_sources") or []
        cdir = next((str(s.path) for s in sources if s.get("provider") == "command-line"), None)
        out_dir = sweep_dir / CHOSEN_DIR
        cmd = final_command(overrides, out_dir, str(config.hydra.job.config_name or "config"), cdir)
        log.info("selection: %s chosen on validation; measuring it on %s: %s", choice.job_dir, TEST_SPLIT,
                 " ".join(cmd))
        sys.stdout.flush()
        rc = subprocess.run(cmd, env=os.environ.copy(), check=False).returncode
        self._finish(choice, out_dir, rc)

    def _finish(self, choice: Choice, out_dir: Path, rc: int) -> None:
        from slmexp.cache import write_json_atomic
        from slmexp.record import RECORD_NAME, load

        path = out_dir / RECORD_NAME
        test: RunJson = load(path) if path.is_file() else {}
        if rc != 0 or (test.get("run") or {}).get("status") != "finished":
            err: RunError = ((test.get("run") or {}).get("error") or {}) if test else {}
            print(f"slmexp: the configuration chosen on validation ({choice.job_dir}) failed on {TEST_SPLIT} "
                  f"(exit {rc}): {err.get('message', err) or 'no run.json'}; see {out_dir}", flush=True)
            return
        sel = selection_block(choice, test, self.direction, self.tolerance, self.prefer_lowest)
        test.setdefault("metrics", {})["selection"] = sel
        write_json_atomic(path, test)
        print(f"{describe(sel)}  [{path}]", flush=True)
