"""SLURM preflight: a sweep's resource request that no node of its partition can meet is refused before sbatch.

Why: SLURM accepts such a job array and leaves it pending (a job asking 8 CPUs of a partition whose nodes have 2,
or 240 minutes of a partition capped at 30); submitit then polls it, and `slmexp -m ... hydra/launcher=slurm`
waits forever with nothing in its output saying why. The cluster's nodes (CPUs, memory, GRES) and the partition's
time limit are one `sinfo` call away, so the request is checked against them first and each unmet resource becomes
one `slmexp: error: hydra.launcher.<key>: <what> (<where>)` line, like every other bad input.

This module is pure (launcher values + sinfo's text in, error lines out), so it is tested without a cluster;
slmexp.slurm_preflight runs `sinfo` and calls `check` from a Hydra callback before the launcher submits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slmexp.errors import ConfigError

# One line per (partition, node): partition (`*` marks the default), node, CPUs, memory (MB), GRES, time limit.
SINFO_CMD = ["sinfo", "--noheader", "--Node", "--format=%P|%N|%c|%m|%G|%l"]
PREFIX = "hydra.launcher."


@dataclass(frozen=True)
class Node:
    """One node of one partition as sinfo reports it; `time_limit_min` None = no limit (`infinite`)."""

    partition: str
    name: str
    cpus: int
    mem_mb: int
    gres: dict[tuple[str, str], int] = field(default_factory=dict)  # (name, type or "") -> count
    time_limit_min: float | None = None
    default: bool = False
    time_text: str = "infinite"


def parse_time(text: str) -> float | None:
    """Minutes in a SLURM time limit (`30:00`, `4:00:00`, `1-00:00:00`, `2-12`, `90`); None for no limit."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited", "n/a", "none", ""):
        return None
    days, sep, rest = text.partition("-") if "-" in text else ("0", "", text)
    parts = [int(p) for p in rest.split(":")]
    if sep:  # days-hours[:minutes[:seconds]]
        h, m, s = [*parts, 0, 0][:3]
    elif len(parts) == 3:  # hours:minutes:seconds
        h, m, s = parts
    else:  # minutes[:seconds]
        h, (m, s) = 0, [*parts, 0][:2]
    return int(days) * 1440 + h * 60 + m + s / 60


def parse_gres(text: str) -> dict[tuple[str, str], int]:
    """`gpu:a100:2(S:0-1),gpu:1,shard:4` -> {("gpu", "a100"): 2, ("gpu", ""): 1, ("shard", ""): 4}; `(null)` -> {}."""
    out: dict[tuple[str, str], int] = {}
    for item in re.sub(r"\([^)]*\)", "", text).split(","):
        bits = [b for b in item.strip().split(":") if b]
        if not bits or bits[0] == "null":
            continue
        count = int(bits[-1]) if len(bits) > 1 and bits[-1].isdigit() else 1
        kind = bits[1] if len(bits) > 2 or (len(bits) == 2 and not bits[1].isdigit()) else ""
        out[(bits[0], kind)] = out.get((bits[0], kind), 0) + count
    return out


def parse_sinfo(text: str) -> list[Node]:
    """The nodes of `SINFO_CMD`'s output (lines it cannot read are skipped: sinfo's own warnings)."""
    nodes = []
    for line in text.splitlines():
        f = line.strip().split("|")
        if len(f) != 6 or not f[2].rstrip("+").isdigit():
            continue
        part, name, cpus, mem, gres, limit = f
        try:
            nodes.append(Node(part.rstrip("*"), name, int(cpus.rstrip("+")), int(mem.rstrip("+") or 0),
                              parse_gres(gres), parse_time(limit), part.endswith("*"), limit.strip()))
        except ValueError:  # a field this parser does not know: that node is left out, not the check
            continue
    return nodes


def gres_count(gres: Mapping[tuple[str, str], int], name: str, kind: str = "") -> int:
    """How many of GRES `name` (of type `kind`, or of any type when it is "") a node has."""
    return sum(n for (g, t), n in gres.items() if g == name and (not kind or t == kind))


def _mem_mb(value: Any) -> float:
    """SLURM memory (`4G`, `4000`, `500M`, `1T`; no unit = MB) in MB."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)B?\s*", str(value), re.I)
    if not m:
        raise ValueError(f"not a SLURM memory size: {value!r}")
    return float(m.group(1)) * {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2}[m.group(2).upper()]


def _fmt(x: float) -> str:
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


@dataclass(frozen=True)
class Need:
    """One resource the request asks of a node: `amount` of what `have(node)` measures, asked by `key`."""

    key: str  # the launcher key that asked for it (without hydra.launcher.)
    what: str  # "8 CPUs per task"
    amount: float
    have: Callable[[Node], float]
    unit: str  # how `have` is printed: "", " GB", " GPUs"
    hint: str = ""  # added when no node has any

    def short(self, best: float) -> str:
        """What the best node of the partition has, as the end of "no node of <partition> ..."."""
        return f"has more than {_fmt(best)}{self.unit}" if best > 0 else f"has any{self.unit}"


def _gres_needs(key: str, spec: Any, times: int = 1, hint: str = "") -> list[Need]:
    """A GPU or GRES request as Needs per node: gpus_per_node/gpus_per_task are `N` or `type:N` of GRES gpu
    (submitit's --gpus-per-node/--gpus-per-task), gres is SLURM's list (`gpu:a100:2,nvme:1`)."""
    if key == "gres":
        asked = list(parse_gres(str(spec)).items())
    else:
        kind, _, count = str(spec).rpartition(":")
        asked = [(("gpu", kind), int(count))]
    per = f" per task x {times} tasks per node" if times > 1 else " per node"
    out = []
    for (name, kind), count in asked:
        label = " GPUs" if name == "gpu" and not kind else f" GRES {name}" + (f":{kind}" if kind else "")
        what = (f"{name}{':' + kind if kind else ''}:{count}" if key == "gres"
                else f"{count}{' ' + kind if kind else ''} GPU{'s' * (count != 1)}")
        out.append(Need(key, what + per, count * times,
                        lambda n, name=name, kind=kind: gres_count(n.gres, name, kind), label, hint))
    return out


def needs(launcher: Mapping[str, Any]) -> list[Need]:
    """What one node must have for the request: CPUs, memory, GPUs/GRES (submitit's flags per node)."""
    tasks = int(launcher.get("tasks_per_node") or 1)
    cpt = int(launcher.get("cpus_per_task") or 1)
    per = f" x {tasks} tasks per node" if tasks > 1 else ""
    out = [Need("cpus_per_task", f"{cpt} CPU{'s' * (cpt != 1)} per task{per}", cpt * tasks, lambda n: n.cpus, "")]
    gpus = 0
    if launcher.get("gpus_per_node"):
        out += _gres_needs("gpus_per_node", launcher["gpus_per_node"], hint="; set it to null on a CPU partition")
        gpus = int(out[-1].amount)
    if launcher.get("gpus_per_task"):
        out += _gres_needs("gpus_per_task", launcher["gpus_per_task"], tasks)
        gpus = max(gpus, int(out[-1].amount))
    if launcher.get("gres"):
        out += _gres_needs("gres", launcher["gres"])
    mem = _mem_need(launcher, cpt * tasks, gpus)
    return out + ([mem] if mem else [])


def _mem_need(launcher: Mapping[str, Any], cpus: int, gpus: int) -> Need | None:
    """Memory per node: mem_gb (submitit's --mem=<N>GB), else mem_per_cpu x CPUs, else mem_per_gpu x GPUs."""
    def have(n: Node) -> float:
        return n.mem_mb / 1024

    if launcher.get("mem_gb"):
        gb = float(launcher["mem_gb"])
        return Need("mem_gb", f"{_fmt(gb)} GB per node", gb, have, " GB")
    for key, times, what in (("mem_per_cpu", cpus, "CPU"), ("mem_per_gpu", gpus, "GPU")):
        if launcher.get(key) and times:
            gb = _mem_mb(launcher[key]) * times / 1024
            return Need(key, f"{launcher[key]} per {what} x {times} = {_fmt(gb)} GB per node", gb, have, " GB")
    return None


def _partition(name: Any, nodes: list[Node]) -> tuple[str, list[Node], str | None]:
    """The partition(s) the job goes to (`a,b` = any of them; null = the default), their nodes, or why none."""
    known = sorted({n.partition for n in nodes})
    if name in (None, ""):
        default = next((n.partition for n in nodes if n.default), None)
        return f"default partition '{default}'", [n for n in nodes if n.partition == default], None
    wanted = [p.strip() for p in str(name).split(",") if p.strip()]
    unknown = [p for p in wanted if p not in known]
    if unknown:
        listed = ", ".join(p + " (default)" * any(n.default for n in nodes if n.partition == p) for p in known)
        return "", [], f"no partition '{','.join(unknown)}' on this cluster; sinfo lists: {listed or 'none'}"
    label = f"partition '{wanted[0]}'" if len(wanted) == 1 else f"partitions '{','.join(wanted)}'"
    return label, [n for n in nodes if n.partition in wanted], None


def _time_line(launcher: Mapping[str, Any], part: str, nodes: list[Node]) -> str | None:
    """timeout_min against the partition's time limit (SLURM keeps such a job pending: PartitionTimeLimit)."""
    minutes = launcher.get("timeout_min")
    if minutes is None or any(n.time_limit_min is None for n in nodes):
        return None
    most = max(nodes, key=lambda n: n.time_limit_min or 0)
    limit = most.time_limit_min or 0
    if float(minutes) <= limit:
        return None
    return (f"{_fmt(float(minutes))} min, but {part} allows at most {_fmt(limit)} min "
            f"(sinfo time limit {most.time_text})")


def check(launcher: Mapping[str, Any], nodes: list[Node],
          where: Callable[[str], str | None] = lambda key: None) -> list[str]:
    """Error lines `hydra.launcher.<key>: <what> (<where>)`, one per resource that no node of the job's partition
    has (CPUs, memory, GPUs/GRES, node count, time limit); [] when the request fits. `where(key)` says where the
    key was set (a file:line or a command-line override)."""
    def line(key: str, msg: str) -> str:
        full = PREFIX + key if key else PREFIX.rstrip(".")
        return str(ConfigError(full, msg, where(full)))

    part, pnodes, why = _partition(launcher.get("partition"), nodes)
    if why or not pnodes:
        return [line("partition", why)] if why else []
    try:
        wanted = needs(launcher)
    except ValueError as e:
        return [line("", f"cannot read the resource request ({e})")]
    out = []
    for need in wanted:
        best = max(need.have(n) for n in pnodes)
        if best < need.amount:
            hint = need.hint if best == 0 else ""
            out.append(line(need.key, f"{need.what}, but no node of {part} {need.short(best)} (sinfo){hint}"))
    count = len({n.name for n in pnodes})
    if int(launcher.get("nodes") or 1) > count:
        out.append(line("nodes", f"{launcher.get('nodes')} nodes, but {part} has {count} (sinfo)"))
    if (t := _time_line(launcher, part, pnodes)) is not None:
        out.append(line("timeout_min", t))
    if not out and not any(all(nd.have(n) >= nd.amount for nd in wanted) for n in pnodes):
        asked = ", ".join(nd.what for nd in wanted)
        out.append(line("", f"{asked}: each fits some node of {part}, but no node has them all (sinfo)"))
    return out
