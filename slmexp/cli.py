"""The `slmexp` command: the one `@hydra.main` (job name `slmexp`).

Heavy libraries are imported inside the job, never at module import, so `slmexp --help` stays fast.
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from slmexp.config import CONF_PKG, register_resolvers

log = logging.getLogger("slmexp")
register_resolvers()


@hydra.main(version_base="1.3", config_path=CONF_PKG, config_name="config")
def _app(cfg: DictConfig) -> float | None:
    """One job; returns the run's `optimized_metric` (on `eval.split`) for a sweeper such as Optuna."""
    from slmexp import distributed
    from slmexp.errors import ConfigErrors, SlmexpError
    from slmexp.hydra_job import context
    from slmexp.objective import objective
    from slmexp.pipeline import run_job
    from slmexp.summary import print_summary

    if distributed.is_worker():  # accelerate launch rank > 0: trains its shard, writes nothing (rank 0 records)
        from slmexp.dp_worker import worker_job

        return worker_job(cfg)
    run_dir, _sweep, _job, multirun = context()
    try:
        record = run_job(cfg)
        value = objective(record)  # here: an optimized_metric the run did not record is an error like any other
    except SlmexpError as e:
        from slmexp.record import load

        rec = load(run_dir)
        if ((rec.get("run") or {}).get("error") or {}).get("stage") != "validate":  # bad input: the line says all
            print_summary(rec)
        if multirun:  # a failed job must not sink the sweep: it is recorded, the sweep goes on
            log.error("job failed: %s", e)
            return None
        from slmexp.cli_errors import refuse

        refuse(e.lines() if isinstance(e, ConfigErrors) else [str(e)])  # every bad key, a line each
    except Exception:
        if multirun:
            log.exception("job failed (recorded in run.json)")
            return None
        raise
    if record["run"].get("skipped"):
        log.info("skipped: %s already finished with the same config", record["run"]["run_dir"])
    print_summary(record)
    return value


def main() -> None:
    """Console-script entry point: `slmexp report DIR ...` rebuilds a report, `slmexp rescore DIR` re-scores stored
    generations; anything else is a Hydra job (a word that is neither a subcommand nor an override is refused first,
    in one line)."""
    from slmexp.cli_errors import SUBCOMMANDS, bad_word, refuse, run_app

    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        from slmexp.registry import load_ref

        sys.exit(load_ref(SUBCOMMANDS[sys.argv[1]])(sys.argv[2:]))
    from slmexp import secrets
    from slmexp.distributed import worker_argv

    bad = bad_word(sys.argv[1:])  # `slmexp verfy DIR`: neither a subcommand nor an override; said before Hydra runs
    if bad:
        refuse([bad])

    secrets.install_record_factory(sys.argv)  # before Hydra logs the overrides of a multirun's jobs

    sys.argv = worker_argv(sys.argv)  # under accelerate launch: one run dir, rank 0's
    run_app(_app)  # config errors in one line; a failed sweep report fails the exit status


if __name__ == "__main__":
    main()
