#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the workflow's cluster tests:
#   tests/slurm/cluster.sh up     # munged, MariaDB, slurmdbd, slurmctld, slurmd (a GPU GRES per CPU, on dummy files)
#   tests/slurm/cluster.sh env    # prints `export SLURM_CONF=...` for the shell that runs sbatch/snakemake
#   tests/slurm/cluster.sh down   # stops every daemon `up` started
# Needs root and Debian's slurm-wlm, slurmdbd, munge and mariadb-server (.ci/run installs them).
# The executor plugin needs accounting (sacct must answer), hence slurmdbd with MariaDB.
set -euo pipefail
STATE=${ABCL_SLURM_STATE:-/tmp/abcl-slurm}
NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
export SLURM_CONF=$STATE/etc/slurm.conf
# Also at SLURM's default path: the jobstep plugin strips SLURM_* (SLURM_CONF too) from the
# environment of the `srun` it runs inside each job, which then finds no configuration.
SYSTEM_CONF=/etc/slurm

log() { echo "[slurm-cluster] $*" >&2; }

wait_for() {  # wait_for WHAT LOG COMMAND...: poll until the command succeeds (daemons start in seconds)
  local what=$1 logfile=$2; shift 2
  for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  log "$what did not come up; the end of $logfile:"; tail -n 20 "$logfile" >&2 || true
  return 1
}

write_configs() {
  rm -rf "$STATE/spool"  # a fresh controller state: no drain reason or job left from an earlier run
  mkdir -p "$STATE"/{etc,log,run,spool/ctld,spool/d,mysql,mysql-run}
  chmod 755 "$STATE"
  cat > "$STATE/etc/slurm.conf" <<CONF
ClusterName=abcl
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
GresTypes=gpu
ReturnToService=2
MinJobAge=600
# a job whose request the node cannot meet is refused at submission, not left pending forever
EnforcePartLimits=ALL
NodeName=$NODE CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:$CPUS State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
CONF
  # GPU GRES on dummy device files, one per CPU: SLURM counts and grants them; jobs run on the CPU
  mkdir -p "$STATE/dev"
  for i in $(seq 0 $((CPUS - 1))); do touch "$STATE/dev/gpu$i"; done
  echo "NodeName=$NODE Name=gpu File=$STATE/dev/gpu[0-$((CPUS - 1))]" > "$STATE/etc/gres.conf"
  cat > "$STATE/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=abcl-ci
StorageLoc=slurm_acct_db
CONF
  chmod 600 "$STATE/etc/slurmdbd.conf"
  mkdir -p "$SYSTEM_CONF"
  for name in slurm.conf gres.conf; do
    if [ -e "$SYSTEM_CONF/$name" ] && [ ! -L "$SYSTEM_CONF/$name" ]; then
      log "$SYSTEM_CONF/$name exists and is not ours: not touching a real cluster's configuration"
      exit 2
    fi
    ln -sfn "$STATE/etc/$name" "$SYSTEM_CONF/$name"
  done
}

start_munge() {  # Debian's default paths: clients (sacctmgr, sbatch) look for the socket there
  [ -s /etc/munge/munge.key ] || mungekey --create
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge/munge.key
  chmod 755 /run/munge
  runuser -u munge -- munged
  wait_for munged /var/log/munge/munged.log munge -n
}

start_mariadb() {
  if [ ! -d "$STATE/mysql/mysql" ]; then
    mariadb-install-db --user=mysql --datadir="$STATE/mysql" --auth-root-authentication-method=socket >/dev/null
  fi
  chown -R mysql:mysql "$STATE/mysql" "$STATE/mysql-run"
  mariadbd --user=mysql --datadir="$STATE/mysql" --socket="$STATE/mysql-run/mysql.sock" --port=3306 \
    --bind-address=127.0.0.1 --pid-file="$STATE/mysql-run/mariadb.pid" --log-error="$STATE/mysql-run/mariadb.log" &
  wait_for mariadb "$STATE/mysql-run/mariadb.log" mariadb --socket="$STATE/mysql-run/mysql.sock" -e "select 1"
  mariadb --socket="$STATE/mysql-run/mysql.sock" <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'abcl-ci';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'abcl-ci';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
}

up() {
  command -v slurmctld >/dev/null || { log "slurm-wlm is not installed"; exit 2; }
  write_configs
  start_munge
  start_mariadb
  slurmdbd
  wait_for slurmdbd "$STATE/log/slurmdbd.log" sacctmgr -n list cluster
  sacctmgr -i add cluster abcl >/dev/null 2>&1 || true
  slurmctld
  wait_for slurmctld "$STATE/log/slurmctld.log" scontrol ping
  slurmd
  wait_for slurmd "$STATE/log/slurmd.log" bash -c "sinfo -h -N -o %t | grep -qE 'idle|mix|alloc'"
  sacct -n >/dev/null  # accounting answers
  log "up: node $NODE, $CPUS CPUs, $MEM_MB MB, gpu:$CPUS (no device); export SLURM_CONF=$SLURM_CONF"
}

down() {
  for pidfile in run/slurmd run/slurmctld run/slurmdbd mysql-run/mariadb; do
    [ -f "$STATE/$pidfile.pid" ] && kill "$(cat "$STATE/$pidfile.pid")" 2>/dev/null || true
  done
  [ -f /run/munge/munged.pid ] && kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
  sleep 2
  for name in slurm.conf gres.conf; do
    [ "$(readlink "$SYSTEM_CONF/$name" 2>/dev/null)" = "$STATE/etc/$name" ] && rm -f "$SYSTEM_CONF/$name"
  done
  log "down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) echo "export SLURM_CONF=$SLURM_CONF" ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
