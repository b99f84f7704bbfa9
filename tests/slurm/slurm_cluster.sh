#!/usr/bin/env bash
# A private, real Slurm on localhost for the tests.
#
#   tests/slurm/slurm_cluster.sh start  WORKDIR [--owner PID]
#   tests/slurm/slurm_cluster.sh stop   WORKDIR
#   tests/slurm/slurm_cluster.sh status WORKDIR
#   tests/slurm/slurm_cluster.sh env    WORKDIR     # prints "export SLURM_CONF=..." for eval
#
# start: stops whatever an earlier run with the same WORKDIR left behind (crashed or killed
#   test), then starts from a fresh private state: its own munge key and munged (run as user
#   munge, its socket in a private directory), a generated slurm.conf with free TCP ports,
#   slurmctld and `slurmd -N localhost`, all pointed at that slurm.conf with -f. The system's
#   /etc/slurm, /etc/munge and /run/munge are neither read nor written. It waits until sinfo
#   shows the node idle (SWARM_CLUSTER_TIMEOUT seconds, default 30) or fails with the daemons'
#   log tails and everything it started stopped again.
#   --owner PID (or SWARM_CLUSTER_OWNER=PID): a detached watchdog stops the cluster when PID
#   exits, even if PID is killed with SIGKILL and its own traps never run.
# stop: cancels the jobs, then ends exactly the processes this script started: the daemons by
#   their pid files (checked against the marker below, so a recycled pid is never hit), then any
#   slurmstepd or job process that still carries the marker. Safe to call twice, or with no
#   cluster at all.
# status: exit 0 when the cluster answers and the node is up; prints sinfo.
#
# Client commands must use the private config: after start, `export SLURM_CONF=WORKDIR/etc/slurm.conf`
# (that is what `eval "$(slurm_cluster.sh env WORKDIR)"` does). Jobs submitted with the default
# --export=ALL inherit it, so srun inside a batch job finds the cluster too.
#
# Marker: every daemon is started with SWARM_SLURM_CLUSTER=WORKDIR in its environment, and
# slurmstepd inherits it from slurmd. A caller that exports the same variable before sbatch marks
# its jobs as well, so stop can end them even when slurmstepd died first.
#
# Knobs: SWARM_CLUSTER_CPUS (CPUs the node declares, default 64: slurmd overrides what it
# detects, so jobs as large as the defaults of slurm/pipeline.sh - 8 tasks x 8 CPUs - start
# instead of pending forever), SWARM_CLUSTER_GPUS (default 0: no GPU; N > 0 declares N pretend
# GPUs - gres gpu backed by copies of /dev/null - to test how jobs ask for and get GPUs, not
# to run GPU code), SWARM_CLUSTER_TIMEOUT (default 30 s).
#
# Files: WORKDIR/etc/slurm.conf, WORKDIR/log/*.log (kept after stop, for post-mortems),
# WORKDIR/run/*.pid; the sockets, spool and state live in a short private directory
# /tmp/swarm-slurm-<hash of WORKDIR> (unix socket paths are limited to 107 bytes, and user
# munge must be able to reach its directory even when WORKDIR sits under a private home).
set -euo pipefail

die() { echo "slurm_cluster: error: $*" >&2; exit 1; }
log() { echo "slurm_cluster: $*" >&2; }

usage() { sed -n '2,8p' "$0" >&2; exit 2; }
(($# >= 2)) || usage
action=$1
workdir_arg=$2
shift 2
owner=${SWARM_CLUSTER_OWNER:-}
while (($#)); do
  case $1 in
    --owner) owner=${2:?--owner needs a PID}; shift 2 ;;
    *) usage ;;
  esac
done

# Our own children must not carry the marker (stop would take them for leftovers): only the
# daemons get it, explicitly. The marker stays in /proc/PID/environ of a process started with it.
unset SWARM_SLURM_CLUSTER

mkdir -p "$workdir_arg"
WORKDIR=$(cd "$workdir_arg" && pwd -P)
ETC=$WORKDIR/etc
LOGDIR=$WORKDIR/log
PIDDIR=$WORKDIR/run
CONF=$ETC/slurm.conf
RT=/tmp/swarm-slurm-$(printf '%s' "$WORKDIR" | sha1sum | cut -c1-12)
MUNGEDIR=$RT/munge
MARKER="SWARM_SLURM_CLUSTER=$WORKDIR"
CPUS=${SWARM_CLUSTER_CPUS:-64}
GPUS=${SWARM_CLUSTER_GPUS:-0}
TIMEOUT=${SWARM_CLUSTER_TIMEOUT:-30}
SELF=$(readlink -f "$0")

# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------
has_marker() {  # PID: does the process carry our marker in its environment?
  grep -qzxF -- "$MARKER" "/proc/$1/environ" 2>/dev/null
}

pid_from_file() {  # FILE -> the pid if the process is alive and ours
  local f=$1 pid
  [[ -s $f ]] || return 1
  pid=$(tr -dc '0-9' <"$f")
  [[ -n $pid ]] && alive "$pid" && has_marker "$pid" && echo "$pid"
}

stat_field() {  # PID N: field N of /proc/PID/stat counted after the "(comm)" field (state is 1)
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  read -r -a st <<<"$st"
  echo "${st[$2 - 1]}"
}

alive() {  # PID: running (a zombie waiting for a reaper does not count)
  local state
  state=$(stat_field "$1" 1) || return 1
  [[ -n $state && $state != Z ]]
}

ancestors() {  # this shell and its ancestors: never signalled by the sweep
  local pid=$BASHPID
  while [[ -n $pid && $pid != 0 ]]; do
    echo "$pid"
    pid=$(stat_field "$pid" 2 || true)
  done
}

is_ancestor() {  # PID (no `ancestors | grep -q`: with pipefail, SIGPIPE would make it true)
  local all
  all=" $(ancestors | tr '\n' ' ') "
  [[ $all == *" $1 "* ]]
}

marked_pids() {  # every live process with the marker, except us and our ancestors
  local p self
  self=" $(ancestors | tr '\n' ' ') "
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [[ $self == *" $p "* ]] && continue
    has_marker "$p" && echo "$p"
  done
  return 0
}

stepd_pids() {  # slurmstepd processes of this cluster: they listen on sockets in our spool dir
  # (slurmstepd rewrites its argv/environ area for its title, so the marker cannot be read)
  ss -xlpH 2>/dev/null | grep -F " $RT/spool/" | grep -o '("slurmstepd",pid=[0-9]*' |
    grep -o '[0-9]*$' | sort -u
  return 0
}

descendants() {  # PID...: every descendant of these processes, except us and our ancestors
  local -A kids=()
  local p pp c self queue=("$@")
  self=" $(ancestors | tr '\n' ' ') "
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    pp=$(stat_field "$p" 2) || continue
    kids[$pp]+=" $p"
  done
  while ((${#queue[@]})); do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    for c in ${kids[$p]:-}; do
      [[ $self == *" $c "* ]] || echo "$c"
      queue+=("$c")
    done
  done
}

wait_gone() {  # SECONDS PID... : wait until none of the pids is alive
  local deadline=$((SECONDS + $1)) p alive
  shift
  while :; do
    alive=0
    for p in "$@"; do alive "$p" && alive=1; done
    ((alive)) || return 0
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

end_pids() {  # WHAT PID... : TERM, wait up to END_WAIT (10) s, then KILL
  local what=$1
  shift
  (($#)) || return 0
  log "stopping $what (pid $*)"
  kill -TERM "$@" 2>/dev/null || true
  if ! wait_gone "${END_WAIT:-10}" "$@"; then
    log "$what did not end after SIGTERM; sending SIGKILL"
    kill -KILL "$@" 2>/dev/null || true
    wait_gone 5 "$@" || log "warning: $what still alive: $*"
  fi
}

# ---------------------------------------------------------------------------------------------
# stop
# ---------------------------------------------------------------------------------------------
do_stop() {
  local ctld slurmd munged pids jobs wd
  # The watchdog stands down first (unless it is the one stopping the cluster).
  wd=$(pid_from_file "$PIDDIR/watchdog.pid" || true)
  if [[ -n $wd ]] && ! is_ancestor "$wd"; then
    kill -TERM "$wd" 2>/dev/null || true
    wait_gone 3 "$wd" || true
  fi
  ctld=$(pid_from_file "$PIDDIR/slurmctld.pid" || true)
  slurmd=$(pid_from_file "$PIDDIR/slurmd.pid" || true)
  munged=$(pid_from_file "$MUNGEDIR/munged.pid" || true)

  # Cancel the jobs while the controller still answers, so slurmstepd ends the tasks itself.
  if [[ -n $ctld && -n $slurmd && -f $CONF ]]; then
    jobs=$(SLURM_CONF=$CONF timeout 5 squeue -h -o %i 2>/dev/null || true)
    if [[ -n $jobs ]]; then
      log "cancelling jobs: $(echo "$jobs" | tr '\n' ' ')"
      # shellcheck disable=SC2086
      SLURM_CONF=$CONF timeout 5 scancel $jobs 2>/dev/null || true
      local deadline=$((SECONDS + 10))
      while ((SECONDS < deadline)) &&
        [[ -n $(SLURM_CONF=$CONF timeout 5 squeue -h -o %i 2>/dev/null || true) ]]; do
        sleep 0.3
      done
    fi
  fi

  [[ -n $slurmd ]] && end_pids slurmd "$slurmd"
  [[ -n $ctld ]] && end_pids slurmctld "$ctld"
  # Left over when slurmd died before its jobs ended: the job processes (marked, or below a
  # slurmstepd of ours), then the slurmstepd themselves; munged goes last.
  local stepds
  mapfile -t stepds < <(stepd_pids)
  mapfile -t pids < <({ marked_pids; ((${#stepds[@]} == 0)) || descendants "${stepds[@]}"; } |
    sort -u | grep -vxF -e "${munged:-none}" "${stepds[@]/#/-e}" || true)
  ((${#pids[@]})) && END_WAIT=5 end_pids "leftover job processes" "${pids[@]}"
  if ((${#stepds[@]})); then
    log "killing leftover slurmstepd (pid ${stepds[*]})"
    kill -KILL "${stepds[@]}" 2>/dev/null || true
    wait_gone 5 "${stepds[@]}" || log "warning: slurmstepd still alive: ${stepds[*]}"
  fi
  [[ -n $munged ]] && end_pids munged "$munged"
  # Nothing marked may survive, whatever its pid file said.
  mapfile -t pids < <(marked_pids)
  ((${#pids[@]})) && end_pids "remaining marked processes" "${pids[@]}"

  rm -f "$PIDDIR"/*.pid
  rm -rf "$RT"
  return 0
}

# ---------------------------------------------------------------------------------------------
# start
# ---------------------------------------------------------------------------------------------
free_port() {
  local port
  for _ in $(seq 200); do
    port=$((20000 + RANDOM % 40000))
    if [[ -z $(ss -Htan "( sport = :$port )" 2>/dev/null) ]]; then
      echo "$port"
      return 0
    fi
  done
  die "no free TCP port found"
}

write_conf() {
  local ctld_port slurmd_port first_job_id=$((1000 + RANDOM * 1000 + RANDOM % 1000))
  ctld_port=$(free_port)
  slurmd_port=$(free_port)
  while [[ $slurmd_port == "$ctld_port" ]]; do slurmd_port=$(free_port); done
  : >"$ETC/plugstack.conf"
  local gres_types="" node_gres=""
  if ((GPUS > 0)); then
    # Pretend GPUs for the scheduler: slurmd wants a character device per GPU, so each is a
    # copy of /dev/null (c 1 3) named like a GPU; Slurm then sets CUDA_VISIBLE_DEVICES.
    local i
    mkdir -p "$RT/dev"
    for ((i = 0; i < GPUS; i++)); do mknod "$RT/dev/nvidia$i" c 1 3 || fail_start "mknod failed"; done
    gres_types="GresTypes=gpu"
    node_gres="Gres=gpu:$GPUS "
    echo "Name=gpu File=$RT/dev/nvidia[0-$((GPUS - 1))]" >"$ETC/gres.conf"
  fi
  cat >"$CONF" <<EOF
# Generated by tests/slurm/slurm_cluster.sh for $WORKDIR; private test cluster, no GPUs.
ClusterName=swarmtest
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGEDIR/munge.socket.2
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerType=sched/builtin
# Job ids start at a random number and TmpFS is private, so two clusters on one machine never
# share a path such as TmpFS/spmix_appdir_<uid>_<jobid>.<step> (mpi/pmix).
FirstJobId=$first_job_id
TmpFS=$RT/tmp
KillWait=5
# Finished jobs leave squeue after 4 s; it keeps sbatch --wait polling every 2 s (it slows down
# to 8 s and 32 s when MinJobAge allows).
MinJobAge=4
InactiveLimit=0
PlugStackConfig=$ETC/plugstack.conf
SlurmctldPidFile=$PIDDIR/slurmctld.pid
SlurmdPidFile=$PIDDIR/slurmd.pid
StateSaveLocation=$RT/state
SlurmdSpoolDir=$RT/spool
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
${gres_types}
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS Sockets=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=16000 ${node_gres}State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
}

fail_start() {
  log "error: $*"
  local f
  for f in "$MUNGEDIR/munged.log" "$LOGDIR/slurmctld.log" "$LOGDIR/slurmd.log"; do
    [[ -f $f ]] && { echo "---- tail $f" >&2; tail -n 20 "$f" >&2; }
  done
  do_stop
  exit 1
}

start_watchdog() {  # stop the cluster when the owner process ends, however it ends
  local owner=$1
  alive "$owner" || die "--owner $owner: no such process"
  setsid env "$MARKER" "$SELF" _watch "$WORKDIR" --owner "$owner" \
    </dev/null >>"$LOGDIR/watchdog.log" 2>&1 &
  echo $! >"$PIDDIR/watchdog.pid"
}

do_watch() {
  trap 'exit 0' TERM
  while alive "$owner"; do sleep 1; done
  echo "$(date '+%F %T') owner $owner gone: stopping the cluster"
  do_stop
}

do_start() {
  local t0=$SECONDS munge_user=munge state
  for cmd in munged mungekey slurmctld slurmd sinfo ss sha1sum runuser setsid; do
    command -v "$cmd" >/dev/null || [[ -x /usr/sbin/$cmd ]] ||
      die "$cmd not found (install slurm-wlm munge: scripts/install-deps.sh)"
  done
  [[ $(id -u) == 0 ]] || die "must run as root (slurmd and munged need it)"
  id "$munge_user" >/dev/null 2>&1 || die "user $munge_user missing (package munge)"

  # Whatever an earlier run with this WORKDIR left behind goes first.
  do_stop
  rm -rf "$ETC" "$PIDDIR" "$RT"
  mkdir -p "$ETC" "$LOGDIR" "$PIDDIR" "$RT/state" "$RT/spool" "$RT/tmp" "$MUNGEDIR"
  rm -f "$LOGDIR"/*.log
  chmod 0755 "$RT"
  chown "$munge_user:" "$MUNGEDIR"
  chmod 0755 "$MUNGEDIR"   # munged insists: clients of every user must reach the socket

  # munge: a fresh private key, daemon as user munge on a private socket.
  runuser -u "$munge_user" -- /usr/sbin/mungekey --create --keyfile="$MUNGEDIR/munge.key" ||
    fail_start "mungekey failed"
  runuser -u "$munge_user" -- env "$MARKER" /usr/sbin/munged \
    --socket="$MUNGEDIR/munge.socket.2" --key-file="$MUNGEDIR/munge.key" \
    --pid-file="$MUNGEDIR/munged.pid" --log-file="$MUNGEDIR/munged.log" \
    --seed-file="$MUNGEDIR/munged.seed" </dev/null || fail_start "munged did not start"
  [[ -S $MUNGEDIR/munge.socket.2 ]] || fail_start "munged socket missing"

  write_conf
  [[ -n $owner ]] && start_watchdog "$owner"
  # SLURM_CONF too: the daemons find gres.conf and friends next to the slurm.conf it names.
  env "$MARKER" SLURM_CONF="$CONF" /usr/sbin/slurmctld -c -f "$CONF" </dev/null ||
    fail_start "slurmctld did not start"
  env "$MARKER" SLURM_CONF="$CONF" /usr/sbin/slurmd -N localhost -f "$CONF" </dev/null ||
    fail_start "slurmd did not start"

  local deadline=$((SECONDS + TIMEOUT))
  while :; do
    state=$(SLURM_CONF=$CONF timeout 5 sinfo -h -n localhost -o %T 2>/dev/null || true)
    [[ $state == idle ]] && break
    [[ $state =~ ^(inval|drain|drained|draining)$ ]] && fail_start "node state '$state' (see slurmctld.log)"
    ((SECONDS < deadline)) || fail_start "node not idle after ${TIMEOUT}s (state: '${state:-no answer}')"
    pid_from_file "$PIDDIR/slurmctld.pid" >/dev/null || [[ ! -s $PIDDIR/slurmctld.pid ]] ||
      fail_start "slurmctld died"
    sleep 0.2
  done
  pid_from_file "$PIDDIR/slurmctld.pid" >/dev/null || fail_start "slurmctld pid file missing"
  pid_from_file "$PIDDIR/slurmd.pid" >/dev/null || fail_start "slurmd pid file missing"
  log "up in $((SECONDS - t0))s: SLURM_CONF=$CONF ($(grep -E '^Slurm(ctld|d)Port' "$CONF" | tr '\n' ' '))"
}

do_status() {
  [[ -f $CONF ]] || { echo "no cluster in $WORKDIR"; return 1; }
  local p
  for p in slurmctld slurmd; do
    if pid=$(pid_from_file "$PIDDIR/$p.pid"); then echo "$p: pid $pid"; else echo "$p: not running"; fi
  done
  if pid=$(pid_from_file "$MUNGEDIR/munged.pid"); then echo "munged: pid $pid"; else echo "munged: not running"; fi
  SLURM_CONF=$CONF timeout 5 sinfo -N -o '%N %T %c' || return 1
  [[ $(SLURM_CONF=$CONF timeout 5 sinfo -h -n localhost -o %T 2>/dev/null) =~ ^(idle|mixed|allocated)$ ]]
}

case $action in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  _watch) do_watch ;;
  *) usage ;;
esac
