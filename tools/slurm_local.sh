#!/usr/bin/env bash
# A one-node Slurm cluster on localhost, with real accounting (slurmdbd on its own MariaDB), for `make test-slurm`.
#
#   bash tools/slurm_local.sh start    install (Debian packages, once) and start munged, MariaDB, slurmdbd,
#                                      slurmctld and slurmd; waits until the node is idle; prints `export SLURM_CONF=...`
#   bash tools/slurm_local.sh status   which daemons run, and sinfo
#   bash tools/slurm_local.sh stop     cancel the cluster's jobs, stop the daemons this script started
#
# Runs without systemd (containers, CI). Everything it writes lives under ${MIXBENCH_SLURM_DIR:-/tmp/mixbench-slurm}
# except /run/munge; delete that folder for a cluster with an empty queue and job ids from 1. Starting needs root
# (the daemons run as root, munge and mysql); once it runs, `start` as any user only checks that it is up.
set -euo pipefail

DIR=${MIXBENCH_SLURM_DIR:-/tmp/mixbench-slurm}
CONF=$DIR/slurm.conf
DB_PORT=${MIXBENCH_SLURM_DB_PORT:-3316}   # not 3306, so a system MariaDB/MySQL on this machine is left alone
WAIT_S=${MIXBENCH_SLURM_WAIT_S:-60}
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server mariadb-client)

say() { echo "[slurm_local] $*"; }
die() { echo "[slurm_local] error: $*" >&2; exit 1; }

alive() {  # alive PIDFILE: the process it names still runs
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for() {  # wait_for WHAT COMMAND...: retry COMMAND for WAIT_S seconds
    local what=$1; shift
    for _ in $(seq "$((WAIT_S * 2))"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "$what not ready after ${WAIT_S} s; see the logs in $DIR/log"
}

cluster_up() {  # the controller answers and the node takes jobs
    local state
    SLURM_CONF=$CONF scontrol ping 2>/dev/null | grep -q UP || return 1
    state=$(SLURM_CONF=$CONF sinfo -h -N -o %T 2>/dev/null)
    [[ $state == idle* || $state == mix* || $state == alloc* ]]
}

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $(id -u) -eq 0 ]] || die "missing packages (${missing[*]}); run this script as root to install them"
    command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get: this script installs \
Debian's packages (Debian 12 or a derivative)"
    say "installing ${missing[*]}"
    apt-get update -qq
    # policy-rc.d-less containers try to start the services; they are started below instead, so that is harmless
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

write_if_changed() {  # write_if_changed FILE MODE < content: keeps FILE (and running daemons' view) if equal
    local tmp; tmp=$(mktemp "$1.XXXX")
    cat > "$tmp"
    chmod "$2" "$tmp"
    if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

write_configs() {
    local cpus mem_mb
    cpus=$(nproc)
    # slurmd drains a node that reports less memory than configured; leave 10 % for the system
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    write_if_changed "$CONF" 644 <<EOF
# Written by tools/slurm_local.sh: one node on localhost.
ClusterName=mixbench
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups in a container: processes are tracked through /proc, tasks are not bound
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# A request the partition can never satisfy is refused at submit instead of pending forever
EnforcePartLimits=ALL
ReturnToService=2
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
# Short grace between SIGTERM and SIGKILL, so cancels and time limits end within seconds
KillWait=5
MinJobAge=300
InactiveLimit=0
NodeName=localhost CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    write_if_changed "$DIR/slurmdbd.conf" 600 <<EOF
# Written by tools/slurm_local.sh: accounting in the MariaDB instance under $DIR/mysql.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=mixbench
StorageLoc=slurm_acct_db
EOF
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    [[ -s /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
    runuser -u munge -- munged
    touch "$DIR/munged.started"  # `stop` ends only a munged this script started
    wait_for munged bash -c 'munge -n | unmunge'
}

start_mariadb() {  # its own instance; the server runs as mysql, so its files live in a folder mysql owns
    local db=$DIR/db
    alive "$db/mysqld.pid" && return 0
    install -d -o mysql -g mysql "$db"
    if [[ ! -d $db/data/mysql ]]; then
        mariadb-install-db --no-defaults --user=mysql --datadir="$db/data" --skip-test-db \
            --auth-root-authentication-method=socket > "$DIR/log/mariadb-install.log" 2>&1 \
            || die "mariadb-install-db failed; see $DIR/log/mariadb-install.log"
    fi
    setsid mariadbd --no-defaults --user=mysql --datadir="$db/data" --socket="$db/mysqld.sock" --port="$DB_PORT" \
        --bind-address=127.0.0.1 --pid-file="$db/mysqld.pid" --log-error="$db/mysqld.log" \
        --skip-name-resolve --innodb-buffer-pool-size=64M < /dev/null > /dev/null 2>&1 &
    wait_for "MariaDB (log $db/mysqld.log)" mariadb --no-defaults -S "$db/mysqld.sock" -u root -e 'SELECT 1'
    mariadb --no-defaults -S "$db/mysqld.sock" -u root -e "
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'mixbench';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

start_slurm() {
    export SLURM_CONF=$CONF
    if ! alive "$DIR/slurmdbd.pid"; then
        slurmdbd
        wait_for slurmdbd sacctmgr -n list cluster
    fi
    # The cluster must be known to slurmdbd before slurmctld registers, or sacct shows no jobs
    sacctmgr -n -P list cluster format=cluster | grep -qx mixbench || sacctmgr -i -Q add cluster mixbench >/dev/null
    alive "$DIR/slurmctld.pid" || slurmctld -f "$CONF"
    wait_for slurmctld scontrol ping
    alive "$DIR/slurmd.pid" || slurmd -f "$CONF" -N localhost
    wait_for "the node (idle)" bash -c '[[ $(sinfo -h -N -o %T) == idle* || $(sinfo -h -N -o %T) == mix* ||
                                           $(sinfo -h -N -o %T) == alloc* ]]'
}

start() {
    if [[ $(id -u) -ne 0 ]]; then
        cluster_up || die "no cluster running at $CONF, and starting one needs root (it installs packages and \
runs munged, MariaDB and the Slurm daemons): run \`sudo bash tools/slurm_local.sh start\` once"
        say "one-node cluster up: $(SLURM_CONF=$CONF sinfo -h -N -o '%N %T cpus=%c mem=%m')"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    install_packages
    install -d "$DIR" "$DIR/state" "$DIR/spool" "$DIR/log"
    write_configs
    start_munge
    start_mariadb
    start_slurm
    say "one-node cluster up: $(SLURM_CONF=$CONF sinfo -h -N -o '%N %T cpus=%c mem=%m')"
    echo "export SLURM_CONF=$CONF"
}

stop_pidfile() {  # stop_pidfile NAME PIDFILE: SIGTERM, then SIGKILL after 15 s
    alive "$2" || return 0
    local pid; pid=$(cat "$2")
    kill "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || { say "stopped $1"; return 0; }; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    say "killed $1 (did not stop within 15 s)"
}

cancel_jobs() {  # scancel every job of the cluster and wait (30 s at most) for them to end: nothing is left running
    local ids
    SLURM_CONF=$CONF scontrol ping 2>/dev/null | grep -q UP || return 0
    ids=$(SLURM_CONF=$CONF squeue -h -o %i)
    [[ -n $ids ]] || return 0
    say "cancelling job(s) $(echo $ids)"
    # shellcheck disable=SC2086
    SLURM_CONF=$CONF scancel $ids || true
    for _ in $(seq 60); do [[ -z $(SLURM_CONF=$CONF squeue -h -o %i) ]] && return 0; sleep 0.5; done
    say "job(s) $(SLURM_CONF=$CONF squeue -h -o %i | tr '\n' ' ')still listed after 30 s"
}

stop() {
    cancel_jobs
    stop_pidfile slurmd "$DIR/slurmd.pid"
    stop_pidfile slurmctld "$DIR/slurmctld.pid"
    stop_pidfile slurmdbd "$DIR/slurmdbd.pid"
    stop_pidfile MariaDB "$DIR/db/mysqld.pid"
    if [[ -f $DIR/munged.started ]]; then stop_pidfile munged /run/munge/munged.pid; rm -f "$DIR/munged.started"; fi
}

status() {
    local name
    for name in slurmd slurmctld slurmdbd db/mysqld; do
        if alive "$DIR/$name.pid"; then say "$name: running (pid $(cat "$DIR/$name.pid"))"
        else say "$name: not running"; fi
    done
    if alive /run/munge/munged.pid; then say "munged: running"; else say "munged: not running"; fi
    [[ -f $CONF ]] && SLURM_CONF=$CONF sinfo 2>&1 || true
    echo "export SLURM_CONF=$CONF"
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status   (state folder: $DIR)" >&2; exit 2 ;;
esac
