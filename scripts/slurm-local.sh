#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (Debian's slurm-wlm 22.05 + munge), for `hydra/launcher=slurm` tests.
# Used by: make slurm-local | make slurm-stop | scripts/slurm-local.sh {up|down|status}
#
# up    (root) apt-get install slurm-wlm + munge if missing; write /etc/slurm/slurm.conf for this machine (one node
#       with its CPUs and memory as `slurmd -C` reports them, one partition `local`); start munged, slurmctld and
#       slurmd unless already running; wait until the node is idle. Idempotent: a second `up` changes nothing.
# down  stop slurmd, slurmctld and munged (the ones this script started: their pid files).
#
# Why no slurmdbd: job accounting (sacct) needs a database daemon; a one-node test cluster writes the finished jobs'
# ids and states to a text file instead (jobcomp/filetxt, $SLURM_LOCAL_JOBCOMP) and `scontrol show job` keeps them
# for MinJobAge seconds. submitit polls sacct and says "Bypassing sacct error" here: harmless, it reads results from
# files. A real cluster has slurmdbd; nothing in slmexp depends on it.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGS=/var/log/slurm
RUN=/run/slurm-local
JOBCOMP=${SLURM_LOCAL_JOBCOMP:-$LOGS/jobcomp.log}

need_root() { [ "$(id -u)" = 0 ] || { echo "slurm-local: $1 needs root (apt-get, /etc/slurm, daemons)" >&2; exit 2; }; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
     && command -v sbatch >/dev/null; then
    return
  fi
  command -v apt-get >/dev/null || { echo "slurm-local: no apt-get: install slurm-wlm and munge by hand" >&2; exit 3; }
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge
}

write_conf() {
  local host node
  host=$(hostname -s)
  # "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
  node=$(slurmd -C | head -1 | sed -E "s/^NodeName=[^ ]+/NodeName=$host NodeAddr=127.0.0.1/")
  mkdir -p /etc/slurm "$STATE" "$SPOOL" "$LOGS" "$RUN"
  local new
  new=$(cat <<EOF
# Written by slmexp scripts/slurm-local.sh: one node (this machine), one partition. Do not edit: rewritten on \`up\`.
ClusterName=slmexp-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# No cgroups (containers rarely delegate them): processes are tracked by parent pid, tasks are not pinned.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP
# Cores and memory are both consumable: two 1-CPU jobs run side by side, a job asking more memory than the node
# has is refused at submission.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=60
$node State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
)
  if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$new" ]; then
    printf '%s\n' "$new" > "$CONF"
    echo "slurm-local: wrote $CONF ($node)"
  fi
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then  # a munged that answers: keep it
    return
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  [ -f /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge /etc/munge/munge.key; }
  chmod 0400 /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged
}

up() {
  need_root up
  local t0=$SECONDS
  install
  write_conf
  start_munge
  if ! alive "$RUN/slurmctld.pid"; then
    slurmctld   # daemonizes; the pid file says which process it is
  fi
  if ! alive "$RUN/slurmd.pid"; then
    slurmd
  fi
  local host state
  host=$(hostname -s)
  for _ in $(seq 1 60); do
    state=$(sinfo -h -n "$host" -o %T 2>/dev/null | head -1 || true)
    case "$state" in
      idle|mixed|allocated|completing) echo "slurm-local: up in $((SECONDS - t0)) s: node $host $state"; return ;;
      down*|drain*) scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
  done
  echo "slurm-local: node $host did not come up (state '${state:-none}'); see $LOGS/slurmctld.log, $LOGS/slurmd.log" >&2
  exit 1
}

down() {
  need_root down
  for pid in "$RUN/slurmd.pid" "$RUN/slurmctld.pid"; do
    if alive "$pid"; then
      kill "$(cat "$pid")"
      for _ in $(seq 1 20); do alive "$pid" || break; sleep 0.5; done
    fi
    rm -f "$pid"
  done
  if [ -S /run/munge/munge.socket.2 ]; then
    runuser -u munge -- /usr/sbin/munged --stop >/dev/null 2>&1 || true
  fi
  echo "slurm-local: stopped"
}

status() {
  if alive "$RUN/slurmctld.pid" && alive "$RUN/slurmd.pid"; then
    sinfo -h -o "%P %a %D %T %c %m"
  else
    echo "slurm-local: not running"; exit 1
  fi
}

case "${1:-up}" in
  up) up ;;
  down|stop) down ;;
  status) status ;;
  *) echo "usage: $0 {up|down|status}" >&2; exit 2 ;;
esac
