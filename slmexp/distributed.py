"""Data-parallel training under `accelerate launch` (or torchrun): every process trains, rank 0 alone owns the run.

`accelerate launch --config_file configs/accelerate/<cpu-ddp|multi-gpu-ddp|fsdp>.yaml -m slmexp adapter=lora ...`
(or torchrun) starts the same command N times with RANK / WORLD_SIZE / LOCAL_RANK set. Each process trains on its
shard of every global batch (TRL's trainer joins the process group: gloo on CPU, NCCL on GPUs), so the loss curve is
that of one process with the same global batch (`per_device_train_batch_size * processes * grad. accumulation`).

What is not split: the run directory, run.json, the adapter, the merged model and the evaluation. Rank 0 does them,
as a single process: after training it leaves the process group, so the evaluation (and lm-eval, which would
otherwise shard its requests across the ranks) runs unsharded on rank 0. The other ranks write nothing: Hydra
gets a throw-away run dir for them (removed at exit), and they exit once training ends (slmexp.dp_worker). Why
not shard evaluation: the test splits here are a few hundred examples, and one process keeps speed figures
comparable to every other run's (a sharded evaluation's latency would be per-rank). No torch import at import time.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

# What a launcher sets; TRL/accelerate read the same variables.
_RANK_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "ROLE_WORLD_SIZE")


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE") or os.environ.get("OMPI_COMM_WORLD_SIZE") or os.environ.get("PMI_SIZE")
               or 1)


def rank() -> int:
    return int(os.environ.get("RANK") or os.environ.get("OMPI_COMM_WORLD_RANK") or os.environ.get("PMI_RANK") or 0)


CPU_DDP = "accelerate launch --config_file configs/accelerate/cpu-ddp.yaml -m slmexp ..."


def check_launch(parent_argv: list[str] | None = None) -> None:
    """Refuse `accelerate launch --cpu --num_processes N` (N > 1) without MPI: accelerate 1.15 then starts ONE
    process (with OMP_NUM_THREADS=1), silently. The launcher's own argv is the only place the N survives."""
    if world_size() > 1 or not os.environ.get("ACCELERATE_USE_CPU"):
        return
    if parent_argv is None:
        try:
            raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
        except OSError:
            return
        parent_argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    if "launch" not in parent_argv or any(a.startswith("--mpirun_hostfile") for a in parent_argv):
        return
    n = 1
    for i, a in enumerate(parent_argv):
        if a in ("--num_processes", "--num-processes") and i + 1 < len(parent_argv):
            n = int(parent_argv[i + 1]) if parent_argv[i + 1].isdigit() else 1
        elif a.startswith(("--num_processes=", "--num-processes=")):
            value = a.split("=", 1)[1]
            n = int(value) if value.isdigit() else 1
    if n > 1:
        raise SystemExit(f"slmexp: error: `accelerate launch --cpu --num_processes {n}` starts one process, not {n} "
                         f"(accelerate runs multi-CPU through mpirun only); for {n} processes on CPU cores use: "
                         f"{CPU_DDP} (or --multi_gpu --num_processes {n}: torchrun, gloo without a GPU)")


def is_worker() -> bool:
    """True in a data-parallel process other than rank 0: it trains its shard and writes nothing."""
    return world_size() > 1 and rank() != 0


def worker_argv(argv: list[str]) -> list[str]:
    """argv for Hydra on a rank > 0: a private run dir (deleted at exit) and no .hydra/ copy, so the run has one
    directory, rank 0's. A multirun under a launcher of processes is refused: each rank would run the whole sweep."""
    check_launch()
    if world_size() <= 1:
        return argv
    if any(a in ("-m", "--multirun") for a in argv[1:]):
        raise SystemExit("slmexp: error: accelerate launch / torchrun run one job in N processes; a multirun (-m) "
                         "would run the whole sweep N times: launch each job separately (or use hydra/launcher=slurm "
                         "with `accelerate launch` in the job)")
    if not is_worker():
        return argv
    tmp = tempfile.mkdtemp(prefix=f"slmexp-rank{rank()}-")
    atexit.register(shutil.rmtree, tmp, True)
    return [*argv, f"hydra.run.dir={tmp}", "hydra.output_subdir=null"]


def validate(cfg: DictConfig) -> None:
    """Refuse what cannot be split across processes, before any model loads (all ranks refuse alike)."""
    if world_size() <= 1:
        return
    from slmexp.origin import fail

    if str(cfg.adapter.name) == "none":
        raise fail("adapter.name", f"{world_size()} processes but adapter=none: nothing to train data-parallel "
                   "(evaluation runs on rank 0 alone); run without accelerate launch, or choose an adapter")
    from slmexp import distill

    if distill.enabled(cfg):
        raise fail("distill.name", "distillation under accelerate launch is not supported (the teacher's labels "
                   "are made on rank 0 only); label first with one process, then train with N")


def train_block() -> dict[str, Any]:
    """What the record says about the processes that trained: empty for one process, or when rank 0 reused a cached
    training and no process group formed. Read from accelerate's state, which outlives the process group (the
    trainer leaves the group at the end of train())."""
    if world_size() <= 1:
        return {}
    try:
        from accelerate.state import PartialState
    except ImportError:
        return {}
    state = PartialState._shared_state
    if int(state.get("num_processes") or 1) <= 1:
        return {}
    return {"data_parallel": {"processes": int(state["num_processes"]), "backend": state.get("backend"),
                              "evaluation": "rank 0 alone, unsharded, after the process group was left"}}


def leave() -> None:
    """On rank 0 after training: leave the process group and forget the ranks, so what follows (merge, evaluation,
    lm-eval's own Accelerator) sees one process."""
    if world_size() <= 1:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    try:
        from accelerate.state import AcceleratorState, PartialState

        AcceleratorState._reset_state(reset_partial_state=True)
        PartialState._reset_state()
    except ImportError:
        pass
    for var in _RANK_VARS:
        os.environ.pop(var, None)
    os.environ["WORLD_SIZE"], os.environ["RANK"] = "1", "0"


def device_map_device(device: str) -> Any:
    """The device a quantized base is placed on: this process's GPU under data parallel, not every rank's cuda:0."""
    return int(os.environ.get("LOCAL_RANK") or 0) if device == "cuda" else device
