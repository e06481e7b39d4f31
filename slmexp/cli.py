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
    from slmexp.pipeline import _hydra_context, objective, run_job
    from slmexp.summary import print_summary

    if distributed.is_worker():  # accelerate launch rank > 0: trains its shard, writes nothing (rank 0 records)
        from slmexp.dp_worker import worker_job

        return worker_job(cfg)
    run_dir, _sweep, _job, multirun = _hydra_context()
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
        for line in e.lines() if isinstance(e, ConfigErrors) else [str(e)]:  # every bad key, a line each
            print(f"slmexp: error: {line}", file=sys.stderr)
        sys.exit(2)
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
    if len(sys.argv) > 1 and sys.argv[1] == "report":
        from slmexp.report import main as report_main

        sys.exit(report_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "rescore":
        from slmexp.rescore import main as rescore_main

        sys.exit(rescore_main(sys.argv[2:]))
    from slmexp import secrets
    from slmexp.cli_errors import bad_word, run_app
    from slmexp.distributed import worker_argv

    bad = bad_word(sys.argv[1:])  # `slmexp verfy DIR`: neither a subcommand nor an override; said before Hydra runs
    if bad:
        secrets.redact(list(sys.argv))  # learn the secrets the command line carries: the line echoes a word of it
        print(f"slmexp: error: {secrets.redact_text(bad)}", file=sys.stderr)
        sys.exit(2)

    secrets.install_record_factory(sys.argv)  # before Hydra logs the overrides of a multirun's jobs

    sys.argv = worker_argv(sys.argv)  # under accelerate launch: one run dir, rank 0's
    run_app(_app)  # config errors in one line; a failed sweep report fails the exit status


if __name__ == "__main__":
    main()
