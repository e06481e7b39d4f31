"""Run many `slmexp` command lines in ONE interpreter (the real CLI entry point, `slmexp.cli.main`), so a list of
bad inputs costs one Python start-up and one import of the stack, not one per case.

Usage: python tests/cli_driver.py CASES.json OUT.json, where CASES.json is [{"id", "argv", "env"}]; OUT.json gets
[{"id", "rc", "stdout", "stderr", "wall_s"}].
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import time

CASE_TIMEOUT_S = 30  # a case that is not refused would go on to load a model: stop it, it has failed


class CaseTimeout(BaseException):
    pass


def _alarm(*_args: object) -> None:
    raise CaseTimeout(f"not refused within {CASE_TIMEOUT_S} s")



def run(case: dict) -> dict:
    from hydra.core.global_hydra import GlobalHydra

    from slmexp.cli import main

    GlobalHydra.instance().clear()
    saved_env = dict(os.environ)
    os.environ.update(case.get("env") or {})
    for k in case.get("unset") or []:
        os.environ.pop(k, None)
    sys.argv = ["slmexp", *case["argv"]]
    out, err = io.StringIO(), io.StringIO()
    rc = 0
    t0 = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_TIMEOUT_S)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:  # a traceback is a failed case: keep it for the assertion message
            import traceback

            traceback.print_exc(file=err)
            rc = -1
    signal.alarm(0)
    os.environ.clear()
    os.environ.update(saved_env)
    return {"id": case["id"], "rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue(),
            "wall_s": round(time.perf_counter() - t0, 3)}


def main() -> None:
    cases_path, out_path = sys.argv[1], sys.argv[2]  # read now: each case replaces sys.argv
    with open(cases_path) as f:
        cases = json.load(f)
    results = []
    for c in cases:
        results.append(run(c))
        print(c["id"], results[-1]["rc"], results[-1]["wall_s"], results[-1]["stderr"].strip()[-300:], flush=True)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
