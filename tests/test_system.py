"""Host measurements a thesis table leans on: the serving memory apart from training, and the machine's load while
requests were timed (a row measured while other processes were busy is flagged `contended`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from slmexp.system import ContentionGuard, contention_block, local_server_pids, window_result

# A process that spins on one core and ends by itself (bounded even if a test dies before stopping it).
_SPIN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
# Started through a launcher that exits at once, so the spinner is NOT a descendant of the test process: to the
# guard it is another process, as a user's compile or a second benchmark would be.
_LAUNCH = ("import subprocess, sys\n"
           "p = subprocess.Popen([sys.executable, '-c', {code!r}], start_new_session=True,\n"
           "                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
           "print(p.pid)\n")


def _wait_spinning(proc, timeout: float = 10.0) -> None:
    t_end = time.monotonic() + timeout
    while proc.cpu_times().user < 0.1:  # python started and is in the loop
        assert time.monotonic() < t_end, "the spinner never ran"
        time.sleep(0.05)


@contextmanager
def busy_other_process(seconds: float) -> Iterator[int]:
    """An unrelated process keeping one core busy for at most `seconds`; stopped (by its pid) on exit."""
    import psutil

    out = subprocess.run([sys.executable, "-c", _LAUNCH.format(code=_SPIN.format(seconds=seconds))],
                         capture_output=True, text=True, timeout=30, check=True)
    proc = psutil.Process(int(out.stdout))
    assert os.getpid() not in {p.pid for p in proc.parents()}
    try:
        _wait_spinning(proc)
        yield proc.pid
    finally:
        if proc.is_running():  # psutil checks the pid still names the process it started
            proc.terminate()


@contextmanager
def busy_own_child(seconds: float) -> Iterator[None]:
    """A child of this process keeping one core busy: the job's own work (like vLLM's engine subprocess)."""
    import psutil

    child = subprocess.Popen([sys.executable, "-c", _SPIN.format(seconds=seconds)])
    try:
        _wait_spinning(psutil.Process(child.pid))
        yield
    finally:
        child.kill()
        child.wait(timeout=10)


# --- the arithmetic, on hand-made counter differences -------------------------------------------------------------

def _window(busy: float, own: float, wall: float = 2.0, cores: int = 2, **kw):
    return window_result(busy_s=busy, own_s=own, steal_s=0.0, wall_s=wall, cores=cores, n_procs=1,
                         threshold_cores=kw.pop("threshold", 0.25), load_avg_1m=kw.pop("load", 0.4))


def test_idle_machine_and_own_work_are_not_contention() -> None:
    idle = _window(busy=0.06, own=0.0)  # 0.03 core of background: kernel threads, agents
    assert not idle["contended"] and idle["other_cores"] == pytest.approx(0.03)
    own = _window(busy=3.8, own=3.8)  # the job itself used both cores: that is the workload
    assert not own["contended"] and own["other_cores"] == 0 and own["own_cores"] == pytest.approx(1.9)
    assert set(own) >= {"load_avg_1m", "other_cpu_share", "contended"}


def test_another_busy_process_is_contention() -> None:
    busy = _window(busy=2.0 + 1.5, own=1.5)  # one other core-second per second, besides the job's own
    assert busy["contended"] and busy["other_cpu_share"] == pytest.approx(0.5) and busy["other_cores"] == 1.0
    assert not _window(busy=2.0 + 1.5, own=1.5, threshold=1.5)["contended"]  # the threshold is a config key
    # A 50 ms window cannot tell 0.4 core from rounding (counters tick in 10 ms): not flagged on noise alone.
    short = _window(busy=0.02, own=0.0, wall=0.05)
    assert short["other_cores"] == pytest.approx(0.4) and not short["contended"]


def test_block_keeps_the_worst_window_and_every_window() -> None:
    quiet, busy = _window(busy=0.1, own=0.0, load=0.3), _window(busy=3.5, own=1.5, load=1.7)
    block = contention_block({"evaluate": quiet, "benchmark": busy})
    assert block["contended"] and block["other_cpu_share"] == busy["other_cpu_share"] and block["load_avg_1m"] == 1.7
    assert block["windows"] == {"evaluate": quiet, "benchmark": busy}
    assert not contention_block({"evaluate": quiet})["contended"]


# --- real processes, bounded in time ------------------------------------------------------------------------------

def test_a_real_busy_process_is_flagged() -> None:
    with busy_other_process(seconds=20), ContentionGuard(0.25) as guard:
        time.sleep(1.0)
    res = guard.result
    assert res["contended"] and res["other_cores"] > 0.5, res
    assert 0 < res["other_cpu_share"] <= 1 and res["window_s"] >= 1.0


def test_own_child_is_workload_and_an_idle_machine_is_not_flagged() -> None:
    """The job's own subprocesses are its workload, not contention. Whether the rest of the machine is idle is not
    the test's to decide (other jobs may share it): it retries a few windows and skips, saying so, if none was."""
    res: dict = {}
    for _ in range(5):
        with busy_own_child(seconds=20), ContentionGuard(0.25) as guard:
            time.sleep(1.0)
        res = guard.result
        assert res["own_cores"] > 0.3, res  # the child's CPU time is counted as the job's own
        if not res["contended"]:
            return
        time.sleep(1.0)
    pytest.skip(f"other processes kept this machine busy in every window ({res['other_cores']} cores)")


def test_a_local_server_is_the_workload_a_remote_one_is_not() -> None:
    import socket

    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        assert os.getpid() in local_server_pids(f"http://127.0.0.1:{port}/v1")
        assert local_server_pids(f"http://localhost:{port}") == local_server_pids(f"http://127.0.0.1:{port}/v1")
    assert local_server_pids(f"http://api.example.com:{port}/v1") == []


# --- the job: serving memory apart from training, contention in the record and the summary ------------------------

@pytest.mark.slow
def test_serving_peak_excludes_a_spike_in_training(tiny_overrides, tmp_path, monkeypatch) -> None:
    """Training allocates (and frees) 300 MB: the train stage's peak shows it, the serving peak does not."""
    import numpy as np

    from slmexp import train
    from slmexp.pipeline import run_job
    from slmexp.system import peak_rss_mb
    from tests.conftest import compose

    real = train.cached_or_train
    spike: dict[str, float] = {}

    def train_with_spike(*args, **kwargs):
        result = real(*args, **kwargs)
        big = np.ones(300 * 2**20 // 8)  # 300 MiB on top of what training holds, every page touched
        spike["peak"] = peak_rss_mb()
        del big
        return result

    monkeypatch.setattr(train, "cached_or_train", train_with_spike)
    cfg = compose([*tiny_overrides, "adapter=lora", "train.max_steps=1", "train.train_limit=4",
                   "train.eval_limit=2", "train.logging_steps=1", "eval.limit=2", "eval.bench.n=1",
                   "eval.bench.warmup=0"])
    speed = run_job(cfg, run_dir=tmp_path / "run")["speed"]
    by_stage = speed["peak_rss_by_stage_mb"]
    assert {"resolve", "train", "load", "evaluate", "benchmark"} <= set(by_stage)
    assert by_stage["train"] >= spike["peak"] - 5  # (the kernel's RSS counters lag by a few per-thread pages)
    assert speed["peak_rss_mb"] < spike["peak"] - 150, (speed["peak_rss_mb"], spike, by_stage)
    assert speed["peak_rss_mb"] == max(by_stage[s] for s in ("load", "evaluate", "benchmark"))
    assert "malloc_trim" in speed["memory_note"] and speed["rss_before_load_mb"] <= speed["peak_rss_mb"]


@pytest.mark.slow
def test_job_run_beside_a_busy_process_is_flagged_contended(tiny_overrides, tmp_path, capsys) -> None:
    from slmexp.pipeline import run_job
    from slmexp.summary import print_summary
    from tests.conftest import compose

    with busy_other_process(seconds=120):
        rec = run_job(compose(tiny_overrides), run_dir=tmp_path / "run")
    speed = rec["speed"]
    load = speed["contention"]
    assert speed["contended"] is True and load["contended"] is True
    assert set(load["windows"]) == {"evaluate", "benchmark"} and 0 < load["other_cpu_share"] <= 1
    assert isinstance(load["load_avg_1m"], float)
    print_summary(rec)
    assert "CONTENDED" in capsys.readouterr().err


def test_summary_says_contended_only_when_flagged(capsys) -> None:
    from slmexp.summary import print_summary

    def record(contended: bool) -> dict:
        window = _window(busy=3.5 if contended else 0.1, own=1.5 if contended else 0.0)
        return {"run": {"name": "x", "status": "finished", "run_dir": "/tmp/x", "stages_s": {}},
                "speed": {"load_s": 1.0, "peak_rss_mb": 812.0, "eval_wall_s": 2.0, "eval_examples_per_s": 3.0,
                          "peak_rss_by_stage_mb": {"train": 2900.0, "load": 812.0},
                          "contention": contention_block({"benchmark": window}), "contended": contended}}

    print_summary(record(False))
    quiet = capsys.readouterr().err
    assert "CONTENDED" not in quiet and "train 2900" in quiet and "serving peak RSS 812 MiB" in quiet
    print_summary(record(True))
    assert "CONTENDED" in capsys.readouterr().err
