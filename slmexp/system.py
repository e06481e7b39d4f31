"""Host facts, in one place: usable cores, peak memory, the machine a figure was measured on, the load on it while
a figure was measured, the git commit.

Every speed figure needs its machine beside it (and whether other processes were competing for it), and every job
of a multirun must report its own peak memory: these helpers are what the record, the runtimes and the benchmarks
read.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any


def available_cores() -> int:
    """CPU cores this process may use (llama.cpp's own default is half the machine's cores)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def git_sha() -> dict[str, Any]:
    """The checkout's commit and whether tracked files differ from it (None outside a git checkout)."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return {"sha": sha, "dirty": bool(dirty)}
    except Exception:
        return {"sha": None, "dirty": None}


def cpu_model() -> str:
    """The CPU's marketing name (/proc/cpuinfo), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """CPU model, cores, memory and GPU: the context every speed figure needs beside it."""
    import psutil

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": None,
    }
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            info["gpu"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


_STATUS = Path("/proc/self/status")


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS counter (VmHWM) so each job of a multirun, which all share one process,
    reports its own peak. Linux >= 4.0; elsewhere the figure stays the process's lifetime peak."""
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _status_mb(field: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    return None


def rss_mb() -> float | None:
    """Current resident memory (MiB, VmRSS): the floor a peak reset can go down to."""
    return _status_mb("VmRSS:")


def peak_rss_mb() -> float:
    """Peak resident memory (MiB) since the last reset_peak_rss (VmHWM), or the process's lifetime peak
    (ru_maxrss) where there is no /proc."""
    peak = _status_mb("VmHWM:")
    if peak is not None:
        return peak
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def release_freed_memory() -> None:
    """Hand memory that Python and the C heap hold but no longer use back to the OS, before a peak reset.

    VmHWM can be reset but never below the current RSS: after training or a GGUF export the process may still hold
    freed-but-not-returned memory (unreachable Python cycles; glibc arenas, whose free chunks are kept for reuse),
    which would then count as serving memory. gc.collect() frees the cycles, glibc's malloc_trim(0) returns free
    heap pages. What stays referenced (imported libraries, caches) is still counted: the reset is a floor, not a
    subtraction. No-op where there is no glibc (musl, macOS).
    """
    import ctypes
    import gc

    gc.collect()
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def reset_gpu_peak() -> None:
    """Reset torch's CUDA peak counter (the GPU analogue of reset_peak_rss), when torch and a GPU are in use."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def gpu_max_memory_mb() -> float | None:
    """torch's peak CUDA allocation since the last reset_gpu_peak, when torch is loaded and a GPU is in use; None
    on CPU."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


# Other processes' average CPU use, in cores, above which a speed figure is flagged `contended` (the default of
# eval.bench.contention_threshold). Why a count of cores, not a share of the machine: llama.cpp and torch run one
# thread per core and wait for the slowest thread at every layer, so one busy process costs a step the same
# whether the machine has 2 cores or 64. Why 0.25: an idle machine's background (kernel threads, agents) stays well
# under 0.05 core (0.03 measured on the 2-core reference machine); a process that takes a quarter of a core for a
# whole timed pass (a test suite, a pip install, a compile, an indexer) already moves latency beyond the ~±30%
# run-to-run spread the docs quote; one spinning process takes 1 core, four times the threshold.
CONTENTION_THRESHOLD_CORES = 0.25

_TICK_S = 0.01  # /proc/stat and /proc/PID/stat count in USER_HZ ticks (100 per second on Linux)
_BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq")  # guest time is already inside user on Linux


def _measured_cpus() -> list[int] | None:
    """The CPUs this job may run on, when that is a subset of the machine and per-CPU counters map onto CPU ids
    (all CPUs online); None = the whole machine. Processes on cores the job cannot use do not slow it."""
    import psutil

    try:
        allowed = sorted(os.sched_getaffinity(0))
        n_counters = len(psutil.cpu_times(percpu=True))
    except (AttributeError, OSError):
        return None
    if n_counters != os.cpu_count() or len(allowed) >= n_counters or max(allowed) >= n_counters:
        return None
    return allowed


def _cpu_seconds(cpus: list[int] | None) -> tuple[float, float]:
    """(busy, steal) CPU seconds of these CPUs (all when None) since boot."""
    import psutil

    times = [psutil.cpu_times()] if cpus is None else [psutil.cpu_times(percpu=True)[i] for i in cpus]
    busy = sum(getattr(t, f, 0.0) for t in times for f in _BUSY_FIELDS)
    return busy, sum(getattr(t, "steal", 0.0) for t in times)


def _tree_cpu_seconds(roots: Iterable[int]) -> tuple[float, int]:
    """CPU seconds of the processes `roots` and all their descendants (live ones, and reaped ones through their
    parent's children_user/children_system), and how many processes were read."""
    import psutil

    seen: dict[int, float] = {}
    for pid in roots:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            if proc.pid in seen:
                continue
            with suppress(psutil.Error):
                t = proc.cpu_times()
                seen[proc.pid] = t.user + t.system + t.children_user + t.children_system
    return sum(seen.values()), len(seen)


def local_server_pids(base_url: str) -> list[int]:
    """PIDs listening on `base_url`'s port when it is this machine (ollama, a vLLM or llama.cpp server): their CPU
    is the workload being measured, not contention. Empty when remote, or when the listener's owner cannot be read
    (another user's or a container's process: its CPU then counts as other processes')."""
    from urllib.parse import urlsplit

    import psutil

    url = urlsplit(base_url)
    if url.hostname not in ("127.0.0.1", "localhost", "::1", "0.0.0.0"):
        return []
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        conns = psutil.net_connections("tcp")
    except (psutil.Error, OSError):
        return []
    return sorted({c.pid for c in conns if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                   and c.pid})


class ContentionGuard:
    """`with ContentionGuard(threshold) as guard: <timed work>`; then `guard.result` says how much CPU other
    processes took from this job's cores while the work ran, and whether that makes the figures `contended`.

    Other processes' CPU = busy time of the job's CPUs (/proc/stat user+nice+system+irq+softirq) minus the CPU time
    of this process, its descendants and `workload_pids` (a local server the job sends its requests to) over the
    same window. Two snapshots suffice: the counters are cumulative, so nothing between them is missed, and no
    sampling thread competes with what is being timed. The counters tick in 1/100 s, so over a short window the
    figure is coarse: `resolution_cores` (about one tick per CPU and per process read, over the window) is added to
    the threshold before a window is flagged, so a 50 ms pass is not called contended on rounding alone.
    The 1-minute load average is recorded as context only: it counts this job's own threads and lags by a minute.
    Hypervisor steal (other VMs on the host) is recorded as `steal_share`, apart: it is not another process here.

    Threshold (`threshold_cores`, eval.bench.contention_threshold, default CONTENTION_THRESHOLD_CORES = 0.25): a
    count of cores, not a share of the machine, because llama.cpp and torch run one thread per core and wait for
    the slowest at every layer, so a busy process costs the same on 2 cores as on 64. 0.25 sits well above an idle
    machine's background (< 0.05 core: kernel threads, agents) and a quarter of what one busy process takes.
    """

    def __init__(self, threshold_cores: float = CONTENTION_THRESHOLD_CORES, workload_pids: Iterable[int] = ()):
        self.threshold_cores = float(threshold_cores)
        self.roots = [os.getpid(), *workload_pids]
        self.cpus = _measured_cpus()
        self.n_cores = len(self.cpus) if self.cpus is not None else (os.cpu_count() or 1)
        self.result: dict[str, Any] | None = None

    def __enter__(self) -> ContentionGuard:
        self._t0 = time.perf_counter()
        self._busy0, self._steal0 = _cpu_seconds(self.cpus)
        self._ours0, _ = _tree_cpu_seconds(self.roots)
        return self

    def __exit__(self, *exc: object) -> None:
        ours, n_procs = _tree_cpu_seconds(self.roots)
        busy, steal = _cpu_seconds(self.cpus)
        self.result = window_result(
            busy_s=busy - self._busy0, own_s=ours - self._ours0, steal_s=steal - self._steal0,
            wall_s=time.perf_counter() - self._t0, cores=self.n_cores, n_procs=n_procs,
            threshold_cores=self.threshold_cores,
            load_avg_1m=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        )


def window_result(*, busy_s: float, own_s: float, steal_s: float, wall_s: float, cores: int, n_procs: int,
                  threshold_cores: float, load_avg_1m: float | None) -> dict[str, Any]:
    """One window's figures from its counter differences (CPU seconds): the arithmetic of ContentionGuard, apart so
    that it can be checked on hand-made numbers."""
    wall = max(wall_s, 1e-6)
    other_cores = max(0.0, busy_s - own_s) / wall
    resolution = _TICK_S * (cores + n_procs) / wall
    return {
        "load_avg_1m": None if load_avg_1m is None else round(load_avg_1m, 2),
        "other_cpu_share": round(min(1.0, other_cores / cores), 4),
        "contended": other_cores > threshold_cores + resolution,
        "other_cores": round(other_cores, 3),
        "own_cores": round(own_s / wall, 3),
        "steal_share": round(max(0.0, steal_s) / wall / cores, 4),
        "cores": cores,
        "threshold_cores": threshold_cores,
        "resolution_cores": round(resolution, 3),
        "window_s": round(wall, 3),
    }


def contention_block(windows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The record's speed.contention from the windows measured (stage -> ContentionGuard.result): the worst window's
    figures on top (a row is contended when any of its timed passes was), every window under `windows`."""
    worst = max(windows.values(), key=lambda w: (w["contended"], w["other_cores"]))
    return {
        "load_avg_1m": max((w["load_avg_1m"] for w in windows.values() if w["load_avg_1m"] is not None), default=None),
        "other_cpu_share": worst["other_cpu_share"],
        "contended": any(w["contended"] for w in windows.values()),
        "other_cores": worst["other_cores"],
        "cores": worst["cores"],
        "threshold_cores": worst["threshold_cores"],
        "windows": windows,
    }
