"""`logger=trackio`: the same runs as `logger=wandb` (slmexp.tracking builds what each carries), written to Trackio.

Trackio (Hugging Face's `trackio` package) speaks W&B's logging API and keeps everything in one local SQLite file per
project (`<logger.dir>/<project>.db`): no account, no server, nothing leaves the machine; `trackio show` opens a
local dashboard over it and `trackio sync` publishes it to a Hugging Face Space when wanted.

Why a child process (`python -m slmexp.trackio_log`, the run's data on stdin): Trackio reads its storage dir
(`TRACKIO_DIR`) once, at import, into module constants, so one process cannot write two jobs' runs to two dirs (a
multirun in one process, tests); it also starts threads and a SIGTERM handler we do not want in a job, and records
the process's command line (`_Command`), where an override could carry a secret. The child sees only the record's
already-redacted config and `python -m slmexp.trackio_log` as its command line. Trackio's Space, server and bucket
variables are removed from its environment and HF_HUB_OFFLINE=1 is set, so it stays local.

Differences from wandb a reader sees: Trackio has no run summary, so the summary figures are logged once, at the
step after the training curve's last; it has no job_type or tags, so they go into the config under `slmexp_run`
(Trackio reserves config keys starting with `_`).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

# Variables that would send Trackio's data to a Space, a server or a bucket instead of the local file.
_REMOTE_ENV = ("TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL", "TRACKIO_DATASET_ID", "TRACKIO_BUCKET_ID",
               "TRACKIO_WRITE_TOKEN")
TIMEOUT_S = 300


def storage(logger_cfg: DictConfig) -> tuple[Path, str]:
    """(the Trackio dir, the project): the SQLite file is `<dir>/<project>.db`."""
    return Path(str(logger_cfg.get("dir") or "trackio")).expanduser().resolve(), str(logger_cfg.get("project"))


def write(logger_cfg: DictConfig, payload: dict[str, Any]) -> Path:
    """Hand one run to the child process; returns the project's SQLite file.

    Args:
        logger_cfg: the `logger` node (dir, project).
        payload: name, group, config, history [(step, {key: value})], summary {key: scalar}, tables
            {name: (columns, rows)}, images {name: PNG path}, markdown {name: text} (slmexp.tracking builds it).
    """
    from slmexp.secrets import redact_values

    tdir, project = storage(logger_cfg)
    tdir.mkdir(parents=True, exist_ok=True)
    # the config is run.json's (redacted); names, groups and tags come from the logger node: redacted here too
    payload = redact_values(json.loads(json.dumps({"project": project, **payload}, default=str)))
    env = {k: v for k, v in os.environ.items() if k not in _REMOTE_ENV}
    env.update(TRACKIO_DIR=str(tdir), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "slmexp.trackio_log"], input=json.dumps(payload),
                          capture_output=True, text=True, env=env, timeout=TIMEOUT_S)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise RuntimeError(f"trackio writer failed: {last}")
    return tdir / f"{project}.db"


def _child(payload: dict[str, Any]) -> None:
    """Write one run with Trackio's own API (in the child: TRACKIO_DIR is set before trackio is imported)."""
    import trackio

    with contextlib.redirect_stdout(sys.stderr):  # its banners ("* Trackio metrics logged to ...") stay off stdout
        trackio.init(project=payload["project"], name=payload["name"], group=payload.get("group"),
                     config=payload.get("config") or {}, embed=False, auto_log_cpu=False, auto_log_gpu=False,
                     capture_console=False)
        try:
            steps = [int(step) for step, _values in payload.get("history") or []]
            for step, values in payload.get("history") or []:
                trackio.log(values, step=int(step))
            final: dict[str, Any] = dict(payload.get("summary") or {})
            final.update({k: trackio.Table(columns=cols, data=rows)
                          for k, (cols, rows) in (payload.get("tables") or {}).items()})
            final.update({k: trackio.Image(p) for k, p in (payload.get("images") or {}).items()})
            final.update({k: trackio.Markdown(t) for k, t in (payload.get("markdown") or {}).items()})
            if final:
                trackio.log(final, step=max(steps) + 1 if steps else 0)
        finally:
            trackio.finish()


if __name__ == "__main__":  # python -m slmexp.trackio_log < payload.json (slmexp's own call; see _write)
    _child(json.load(sys.stdin))
