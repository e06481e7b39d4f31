"""The SLURM preflight on sinfo's text, no cluster needed: a request no node of the partition can meet (CPUs,
memory, GPUs/GRES, nodes, time limit) gives one line per unmet resource naming its launcher key; one that fits, none.
And where a refused key was set: the launcher preset's file:line, the preset it extends, or the override."""

from __future__ import annotations

import pytest

from slmexp.launchers import Node, check, parse_gres, parse_sinfo, parse_time
from slmexp.origin import CONF_DIR

CONF_DIR_LAUNCHER = CONF_DIR / "hydra" / "launcher"

# `sinfo --noheader --Node --format=%P|%N|%c|%m|%G|%l` of a small site: a CPU partition (default), a GPU one
# with two kinds of node, a short debug partition sharing a CPU node.
SITE = """\
cpu*|c1|32|192000|(null)|1-00:00:00
cpu*|c2|32|192000|(null)|1-00:00:00
gpu|g1|16|64000|gpu:2|2-00:00:00
gpu|g2|64|512000|gpu:a100:4(S:0-1)|2-00:00:00
debug|c1|32|192000|(null)|30:00
"""
# scripts/slurm-local.sh's cluster (slurmd -C on a 2-core, 24 GB VM).
LOCAL = "local*|vm|2|24105|(null)|infinite\n"
# conf/hydra/launcher/slurm.yaml with the cluster-specific keys as a user of make slurm-local sets them.
SLURM_YAML = {"timeout_min": 240, "nodes": 1, "tasks_per_node": 1, "cpus_per_task": 8, "gpus_per_node": 1,
              "mem_gb": 64, "partition": None}


def lines(launcher: dict, sinfo: str = SITE, **over) -> list[str]:
    return check({**launcher, **over}, parse_sinfo(sinfo), lambda key: f"at {key}")


@pytest.mark.parametrize(("text", "minutes"), [
    ("infinite", None), ("UNLIMITED", None), ("n/a", None), ("30:00", 30), ("4:00:00", 240), ("1-00:00:00", 1440),
    ("2-12", 3600), ("1-02:03", 1563), ("90", 90), ("00:30", 0.5), ("7-00:00:30", 10080.5)])
def test_parse_time_reads_slurm_time_limits(text: str, minutes: float | None) -> None:
    assert parse_time(text) == minutes


def test_parse_gres_counts_by_name_and_type() -> None:
    assert parse_gres("(null)") == {}
    assert parse_gres("gpu:2") == {("gpu", ""): 2}
    assert parse_gres("gpu:a100:4(S:0-1),shard:8,gpu:1") == {("gpu", "a100"): 4, ("shard", ""): 8, ("gpu", ""): 1}
    assert parse_gres("gpu:v100") == {("gpu", "v100"): 1}


def test_parse_sinfo_reads_each_node_of_each_partition() -> None:
    nodes = parse_sinfo("sinfo: warning: something\nodd|x|2|100|(null)|soon\n" + SITE)  # both lines skipped
    assert [(n.partition, n.name) for n in nodes] == [("cpu", "c1"), ("cpu", "c2"), ("gpu", "g1"), ("gpu", "g2"),
                                                      ("debug", "c1")]
    assert nodes[0] == Node("cpu", "c1", 32, 192000, {}, 1440.0, True, "1-00:00:00")
    assert nodes[3].gres == {("gpu", "a100"): 4} and not nodes[3].default
    assert parse_sinfo(LOCAL)[0].time_limit_min is None


def test_a_request_that_fits_gives_no_line() -> None:
    assert lines(SLURM_YAML, partition="gpu") == []
    assert lines(SLURM_YAML, partition="cpu", gpus_per_node=None) == []
    assert lines(SLURM_YAML, sinfo=LOCAL, partition="local", gpus_per_node=None, cpus_per_task=1, mem_gb=3) == []


def test_the_slurm_preset_on_the_local_cluster_is_refused_one_line_per_resource() -> None:
    out = lines(SLURM_YAML, sinfo=LOCAL, partition="local", gpus_per_node=None)
    assert out == [
        "hydra.launcher.cpus_per_task: 8 CPUs per task, but no node of partition 'local' has more than 2 (sinfo) "
        "(at hydra.launcher.cpus_per_task)",
        "hydra.launcher.mem_gb: 64 GB per node, but no node of partition 'local' has more than 23.5 GB (sinfo) "
        "(at hydra.launcher.mem_gb)"]
    gpu = lines(SLURM_YAML, sinfo=LOCAL, partition="local", cpus_per_task=1, mem_gb=4)
    assert gpu == ["hydra.launcher.gpus_per_node: 1 GPU per node, but no node of partition 'local' has any GPUs "
                   "(sinfo); set it to null on a CPU partition (at hydra.launcher.gpus_per_node)"]


def test_cpus_count_every_task_of_the_node() -> None:
    out = lines(SLURM_YAML, partition="cpu", gpus_per_node=None, tasks_per_node=8, cpus_per_task=8)
    assert out == ["hydra.launcher.cpus_per_task: 8 CPUs per task x 8 tasks per node, but no node of partition "
                   "'cpu' has more than 32 (sinfo) (at hydra.launcher.cpus_per_task)"]


def test_gpus_against_gres_gpu_2_and_typed_gres() -> None:
    assert lines(SLURM_YAML, partition="gpu", gpus_per_node=4) == []  # g2 has 4 (a100): untyped counts any type
    out = lines(SLURM_YAML, partition="gpu", gpus_per_node=8)
    assert out == ["hydra.launcher.gpus_per_node: 8 GPUs per node, but no node of partition 'gpu' has more than "
                   "4 GPUs (sinfo) (at hydra.launcher.gpus_per_node)"]
    assert lines(SLURM_YAML, partition="gpu", gpus_per_node="a100:4") == []
    assert lines(SLURM_YAML, partition="gpu", gpus_per_node=None, gres="gpu:a100:2") == []
    out = lines(SLURM_YAML, partition="gpu", gpus_per_node=None, gres="gpu:h100:1")
    assert out == ["hydra.launcher.gres: gpu:h100:1 per node, but no node of partition 'gpu' has any GRES gpu:h100 "
                   "(sinfo) (at hydra.launcher.gres)"]
    out = lines(SLURM_YAML, partition="gpu", gpus_per_node=None, gpus_per_task=2, tasks_per_node=4, cpus_per_task=1)
    assert out == ["hydra.launcher.gpus_per_task: 2 GPUs per task x 4 tasks per node, but no node of partition "
                   "'gpu' has more than 4 GPUs (sinfo) (at hydra.launcher.gpus_per_task)"]


def test_time_limit_of_the_partition() -> None:
    assert lines(SLURM_YAML, partition="cpu", gpus_per_node=None, timeout_min=1440) == []  # 1-00:00:00
    out = lines(SLURM_YAML, partition="cpu", gpus_per_node=None, timeout_min=1441)
    assert out == ["hydra.launcher.timeout_min: 1441 min, but partition 'cpu' allows at most 1440 min "
                   "(sinfo time limit 1-00:00:00) (at hydra.launcher.timeout_min)"]
    out = lines(SLURM_YAML, partition="debug", gpus_per_node=None)
    assert out == ["hydra.launcher.timeout_min: 240 min, but partition 'debug' allows at most 30 min "
                   "(sinfo time limit 30:00) (at hydra.launcher.timeout_min)"]
    assert lines(SLURM_YAML, sinfo=LOCAL, partition="local", gpus_per_node=None, cpus_per_task=1, mem_gb=1,
                 timeout_min=10**6) == []  # infinite
    assert lines(SLURM_YAML, partition="debug,cpu", gpus_per_node=None) == []  # either partition: cpu allows it


def test_unknown_partition_names_the_key_and_lists_the_partitions() -> None:
    out = lines(SLURM_YAML, partition="gpus")
    assert out == ["hydra.launcher.partition: no partition 'gpus' on this cluster; sinfo lists: cpu (default), "
                   "debug, gpu (at hydra.launcher.partition)"]


def test_no_partition_means_the_default_one() -> None:
    out = lines(SLURM_YAML)  # the default partition (cpu) has no GPU
    assert len(out) == 1 and "no node of default partition 'cpu' has any GPUs" in out[0]


def test_more_nodes_than_the_partition_has() -> None:
    out = lines(SLURM_YAML, partition="gpu", nodes=3)
    assert out == ["hydra.launcher.nodes: 3 nodes, but partition 'gpu' has 2 (sinfo) (at hydra.launcher.nodes)"]


def test_memory_per_cpu_and_per_gpu() -> None:
    assert lines(SLURM_YAML, partition="cpu", gpus_per_node=None, mem_gb=None, mem_per_cpu="4G") == []
    out = lines(SLURM_YAML, partition="cpu", gpus_per_node=None, mem_gb=None, mem_per_cpu="32G")
    assert out == ["hydra.launcher.mem_per_cpu: 32G per CPU x 8 = 256 GB per node, but no node of partition 'cpu' "
                   "has more than 187.5 GB (sinfo) (at hydra.launcher.mem_per_cpu)"]
    assert len(lines(SLURM_YAML, partition="gpu", mem_gb=None, mem_per_gpu="600000")) == 1  # MB x 1 GPU > 500 GB


def test_each_resource_on_some_node_but_not_all_on_one() -> None:
    sinfo = "p*|wide|64|16000|(null)|infinite\np*|big|4|512000|(null)|infinite\n"
    out = lines(SLURM_YAML, sinfo=sinfo, gpus_per_node=None, cpus_per_task=32, mem_gb=100)
    assert out == ["hydra.launcher: 32 CPUs per task, 100 GB per node: each fits some node of default partition "
                   "'p', but no node has them all (sinfo) (at hydra.launcher)"]


def test_unreadable_memory_is_a_line_not_a_crash() -> None:
    out = lines(SLURM_YAML, partition="cpu", gpus_per_node=None, mem_gb=None, mem_per_cpu="lots")
    assert out == ["hydra.launcher: cannot read the resource request (not a SLURM memory size: 'lots') "
                   "(at hydra.launcher)"]


# --- where a refused key was set, and the callback (composed configs; sinfo faked) -------------------------------


def _hydra_cfg(overrides: list[str]):
    """The config `slmexp -m <overrides>` composes, hydra node included (what on_multirun_start receives)."""
    from hydra import compose, initialize_config_dir

    from slmexp.config import CONF_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="slmexp"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def test_origin_is_the_override_the_preset_or_the_preset_it_extends() -> None:
    from slmexp.slurm_preflight import launcher_origin

    cfg = _hydra_cfg(["hydra/launcher=slurm-local", "hydra.launcher.mem_gb=9"])
    where = {k: launcher_origin(cfg, f"hydra.launcher.{k}") for k in ("partition", "mem_gb", "nodes", "signal_delay_s")}
    assert where["partition"].startswith("slmexp/conf/hydra/launcher/slurm-local.yaml:")
    assert where["mem_gb"] == "command-line override 'hydra.launcher.mem_gb=9'"
    assert where["nodes"].startswith("slmexp/conf/hydra/launcher/slurm.yaml:")  # slurm-local extends slurm
    assert where["signal_delay_s"] == "the default of hydra/launcher=submitit_slurm"  # the plugin's, no file
    line = int(where["partition"].rsplit(":", 1)[1])
    assert "partition: local" in (CONF_DIR_LAUNCHER / "slurm-local.yaml").read_text().splitlines()[line - 1]


def test_origin_in_a_users_preset_and_sweep_file(tmp_path) -> None:
    from slmexp.slurm_preflight import launcher_origin

    (tmp_path / "hydra" / "launcher").mkdir(parents=True)
    (tmp_path / "sweep").mkdir()
    (tmp_path / "hydra" / "launcher" / "site.yaml").write_text("defaults:\n  - slurm\npartition: gpu\n")
    (tmp_path / "sweep" / "big.yaml").write_text("# @package _global_\nseed: 3\nhydra:\n  launcher:\n"
                                                 "    cpus_per_task: 32\n")
    cfg = _hydra_cfg(["hydra/launcher=site", "sweep=big", f"hydra.searchpath=[file://{tmp_path}]"])
    assert launcher_origin(cfg, "hydra.launcher.partition") == f"{tmp_path}/hydra/launcher/site.yaml:3"
    assert launcher_origin(cfg, "hydra.launcher.cpus_per_task") == f"{tmp_path}/sweep/big.yaml:5"


def test_callback_refuses_in_slmexp_error_lines_and_exits_2(monkeypatch, capsys) -> None:
    from slmexp import slurm_preflight

    monkeypatch.setattr(slurm_preflight, "sinfo_nodes", lambda: parse_sinfo(LOCAL))
    cfg = _hydra_cfg(["hydra/launcher=slurm", "hydra.launcher.partition=local", "hydra.launcher.gpus_per_node=null"])
    with pytest.raises(SystemExit) as e:  # not an Exception: Hydra turns those raised by callbacks into warnings
        slurm_preflight.SlurmPreflight().on_multirun_start(cfg)
    assert e.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert [ln.split(":", 3)[2].strip() for ln in err] == ["hydra.launcher.cpus_per_task", "hydra.launcher.mem_gb"]
    assert all(ln.startswith("slmexp: error: ") and "slurm.yaml:" in ln for ln in err)
    slurm_preflight.SlurmPreflight(enabled=False).on_multirun_start(cfg)  # turned off: nothing
    ok = _hydra_cfg(["hydra/launcher=slurm-local"])
    slurm_preflight.SlurmPreflight().on_multirun_start(ok)  # the preset fits the one-node cluster
    assert capsys.readouterr().err == ""


def test_no_sinfo_skips_with_a_warning_and_other_launchers_are_not_checked(monkeypatch, caplog) -> None:
    from slmexp import slurm_preflight

    monkeypatch.setattr(slurm_preflight.shutil, "which", lambda name: None)
    assert slurm_preflight.preflight(_hydra_cfg(["hydra/launcher=slurm"])) == []
    assert "no `sinfo` on this machine" in caplog.text
    monkeypatch.setattr(slurm_preflight, "sinfo_nodes", lambda: pytest.fail("sinfo read for a local launcher"))
    assert slurm_preflight.preflight(_hydra_cfg(["hydra/launcher=parallel"])) == []
