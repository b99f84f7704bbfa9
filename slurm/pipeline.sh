#!/usr/bin/env bash
#SBATCH --job-name=swarm_pipe
#SBATCH --ntasks-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
#SBATCH --signal=B:TERM@120
#SBATCH --output=swarm_pipe-%j.out
#
# swarm_pipe as a Slurm batch job: one MPI rank per GPU. docs/slurm.md has the full story.
#
# Two ways to use it:
#   sbatch [sbatch options] slurm/pipeline.sh [JOB.ini] [--key value ...]
#       e.g. sbatch -N 8 --ntasks-per-node=8 --gpus-per-task=1 slurm/pipeline.sh jobs/x.ini
#   slurm/pipeline.sh [JOB.ini] [--key value ...]          (outside an allocation)
#       submits itself: the sbatch options come from the SWARM_* variables below, and GPUs
#       are requested only where the cluster has them (SWARM_GPUS_PER_NODE=auto).
# Inside an allocation (a batch job, or salloc) it runs the job.
#
# Why no GPU line above: #SBATCH lines cannot be conditional, and a GPU request on a GPU-less
# cluster is refused or pends forever. Ask for GPUs on the command line (--gpus-per-task=1) or
# let the submit mode do it. The directives above are defaults for 8-GPU nodes: one task per
# GPU, 8 CPUs per task; every sbatch option given on the command line (or in SBATCH_*
# variables) overrides them.
#
# Arguments: the first argument, when it does not start with '-', is the job file (else
# SWARM_JOB); all the others are passed through to swarm_pipe unchanged (overrides).
#
# Variables (defaults in brackets):
#   SWARM_PIPE         the binary; a relative path is taken from the directory sbatch was
#                      called in ($SLURM_SUBMIT_DIR) [submit mode: the one beside this script,
#                      P/bin/swarm_pipe of an installed tree (P/share/swarm_pipe/slurm/) or
#                      build/bin/swarm_pipe of the source tree; under plain sbatch:
#                      build/bin/swarm_pipe in the submit directory, else swarm_pipe on PATH]
#   SWARM_JOB          the job file, when not given as the first argument [none: required];
#                      relative to the job's working directory (the submit directory unless
#                      sbatch --chdir)
#   SWARM_TRACE        the HDF5 trace, passed as --trace [swarm_pipe-<jobid>.h5 in the working
#                      directory]; "none" passes no --trace (the job file decides)
#   SWARM_LAUNCHER     auto | srun | mpirun [auto]: auto is `srun --mpi=pmix` when
#                      `srun --mpi=list` lists pmix, otherwise mpirun (with
#                      OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 when root)
#   SWARM_SRUN_ARGS    extra srun options, split on blanks [none]
#   SWARM_MPIRUN_ARGS  extra mpirun options, split on blanks [--bind-to none]
#   SWARM_GPUS_PER_NODE
#                      auto | 0 | N [auto]. Submit mode: N > 0 asks for
#                      --ntasks-per-node=N --gpus-per-task=1; 0 asks for no GPU; auto takes
#                      N from the GPUs (gres gpu) sinfo reports for the partition (0 if none).
#                      Run mode: N > 0 makes the job fail early if the allocation has no GPU.
#   SWARM_GPU_VISIBILITY
#                      node | task [node]: node = every rank sees all the job's GPUs on its
#                      node and swarm_pipe picks local rank % GPUs (what its NCCL transport
#                      needs), even when sbatch was given --gpus-per-task; task = Slurm's
#                      per-task binding (each rank sees one GPU; swarm_pipe then uses MPI)
#   OMP_NUM_THREADS    [--cpus-per-task of the job] set for the ranks when unset
# Submit mode only (running the script outside an allocation):
#   SWARM_NODES          --nodes [the #SBATCH default: 1]
#   SWARM_TASKS_PER_NODE --ntasks-per-node [N GPUs per node, else the #SBATCH default 8]
#   SWARM_CPUS_PER_TASK  --cpus-per-task [#SBATCH default 8]
#   SWARM_TIME           --time [#SBATCH default 02:00:00]
#   SWARM_WAIT           1: sbatch --wait, i.e. block and return the job's exit code [0]
#   SWARM_SBATCH_ARGS    more sbatch options, split on blanks (e.g. "-p gpu -A proj") [none]
#   SWARM_MODE           auto | submit | run [auto: run when SLURM_JOB_ID is set]
#
# Signals: Slurm sends SIGTERM to this script (only: B:) 120 s (up to 180 s, Slurm's timer
# resolution is 60 s) before the time limit. The script passes SIGTERM to the ranks, never to
# the launcher (srun turns a SIGTERM of its own into SIGKILL of the tasks; mpirun kills the
# ranks a second later and exits 1): under srun with `scancel --signal=TERM $SLURM_JOB_ID`
# (the job steps, not this script), under mpirun to mpirun's children (and, on several nodes,
# the steps). Then it waits: swarm_pipe ends at the next epoch boundary with a complete trace.
# By hand: `scancel --batch --signal=TERM JOB` takes the same path; `scancel --signal=TERM JOB`
# signals the ranks directly (srun only). Not `scancel --full --signal=TERM`: it hits the
# launcher too. At the time limit itself Slurm signals everything and kills it KillWait later.
# Exit code: the launcher's (srun: the highest exit code of the ranks; mpirun: the first
# non-zero one), so `sbatch --wait` and the job's ExitCode show swarm_pipe's: 0 done, 2 bad
# input, 3 stopped early by SIGTERM with a complete trace (stopped_early=1), other = failure
# (docs/job.md). This script exits 2 itself when it refuses to start (missing binary or job
# file, GPUs asked for and absent, a bad SWARM_* value).
set -euo pipefail

say() { echo "pipeline: $*"; }
fail() { echo "pipeline: error: $*" >&2; exit 2; }

# ------------------------------------------------------------------------------------------
# Submit mode
# ------------------------------------------------------------------------------------------
cluster_gpus_per_node() {  # PARTITION: the most GPUs (gres gpu) one of its nodes has, 0 if none
  local partition=$1 line part gres item n max=0
  while read -r part gres; do
    [[ -z $part ]] && continue
    if [[ -n $partition ]]; then
      [[ ${part%\*} == "$partition" ]] || continue
    else
      [[ $part == *\* ]] || continue  # the default partition
    fi
    IFS=, read -r -a line <<<"$gres"
    for item in "${line[@]}"; do
      [[ $item == gpu:* ]] || continue
      item=${item%%(*}
      n=${item##*:}
      [[ $n =~ ^[0-9]+$ ]] && ((n > max)) && max=$n
    done
  done < <(sinfo -h -o '%P %G' 2>/dev/null || true)
  echo "$max"
}

submit() {
  command -v sbatch >/dev/null || fail "sbatch not found: not on a Slurm cluster?"
  local gpus=${SWARM_GPUS_PER_NODE:-auto} args=() extra=() partition=${SBATCH_PARTITION:-} i
  read -r -a extra <<<"${SWARM_SBATCH_ARGS:-}"
  for ((i = 0; i < ${#extra[@]}; i++)); do  # the partition the job goes to decides "auto"
    case ${extra[i]} in
      -p | --partition) partition=${extra[i + 1]:-} ;;
      -p?*) partition=${extra[i]#-p} ;;
      --partition=*) partition=${extra[i]#--partition=} ;;
    esac
  done
  [[ $gpus == auto ]] && gpus=$(cluster_gpus_per_node "$partition")
  [[ $gpus =~ ^[0-9]+$ ]] || fail "SWARM_GPUS_PER_NODE must be auto or a number, not '$gpus'"
  [[ -n ${SWARM_NODES:-} ]] && args+=(--nodes="$SWARM_NODES")
  if [[ -n ${SWARM_TASKS_PER_NODE:-} ]]; then
    args+=(--ntasks-per-node="$SWARM_TASKS_PER_NODE")
  elif ((gpus > 0)); then
    args+=(--ntasks-per-node="$gpus")
  fi
  ((gpus > 0)) && args+=(--gpus-per-task=1)
  [[ -n ${SWARM_CPUS_PER_TASK:-} ]] && args+=(--cpus-per-task="$SWARM_CPUS_PER_TASK")
  [[ -n ${SWARM_TIME:-} ]] && args+=(--time="$SWARM_TIME")
  [[ ${SWARM_WAIT:-0} == 1 ]] && args+=(--wait)
  if [[ -z ${SWARM_PIPE:-} ]]; then  # the binary beside this script (sbatch runs a copy of it)
    local here candidate
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    for candidate in "$here/../../../bin/swarm_pipe" "$here/../build/bin/swarm_pipe"; do
      if [[ -x $candidate ]]; then
        SWARM_PIPE=$(cd "$(dirname "$candidate")" && pwd)/swarm_pipe
        export SWARM_PIPE
        break
      fi
    done
  fi
  export SWARM_GPUS_PER_NODE=$gpus  # the job checks that it got them
  export SWARM_MODE=run             # and runs, whatever mode this call was asked for
  say "submitting: sbatch ${args[*]} ${extra[*]} $0 $*"
  exec sbatch "${args[@]}" "${extra[@]}" "$0" "$@"
}

mode=${SWARM_MODE:-auto}
case $mode in
  auto) [[ -n ${SLURM_JOB_ID:-} ]] || submit "$@" ;;
  submit) submit "$@" ;;
  run) [[ -n ${SLURM_JOB_ID:-} ]] || fail "SWARM_MODE=run needs a Slurm allocation" ;;
  *) fail "SWARM_MODE must be auto, submit or run, not '$mode'" ;;
esac

# ------------------------------------------------------------------------------------------
# Run mode: inside the allocation
# ------------------------------------------------------------------------------------------
# Until the ranks are started a signal simply ends the job.
trap 'say "signal before the launch: giving up"; exit 143' TERM
trap 'say "signal before the launch: giving up"; exit 130' INT

submit_dir=${SLURM_SUBMIT_DIR:-$PWD}
job=${SWARM_JOB:-}
if (($#)) && [[ $1 != -* ]]; then
  job=$1
  shift
fi
overrides=("$@")

binary=${SWARM_PIPE:-build/bin/swarm_pipe}
[[ $binary == /* ]] || binary=$submit_dir/$binary
if [[ -z ${SWARM_PIPE:-} && ! -x $binary ]] && command -v swarm_pipe >/dev/null; then
  binary=$(command -v swarm_pipe)  # an installed tree on PATH (a module, Spack)
fi
[[ -n $job ]] || fail "no job file: pass it as the first argument or set SWARM_JOB"
[[ $job == /* ]] || job=$PWD/$job
trace=${SWARM_TRACE:-swarm_pipe-${SLURM_JOB_ID}.h5}
[[ $trace == none || $trace == /* ]] || trace=$PWD/$trace
[[ -x $binary ]] || fail "binary $binary not found or not executable (SWARM_PIPE)"
[[ -r $job ]] || fail "job file $job not readable"

gpus_on_node=${SLURM_GPUS_ON_NODE:-0}
[[ $gpus_on_node =~ ^[0-9]+$ ]] || gpus_on_node=0
want_gpus=${SWARM_GPUS_PER_NODE:-auto}
if [[ $want_gpus =~ ^[0-9]+$ ]] && ((want_gpus > 0 && gpus_on_node == 0)) &&
  [[ -z ${CUDA_VISIBLE_DEVICES:-} ]]; then
  fail "SWARM_GPUS_PER_NODE=$want_gpus but this allocation has no GPU (ask sbatch for --gpus-per-task=1)"
fi
# Which GPUs a rank sees. swarm_pipe picks its GPU itself (local rank % visible GPUs) and uses
# NCCL only when a node has no more ranks than visible GPUs (docs/comm.md): with Slurm's
# per-task binding (--gpus-per-task) every rank would see one GPU, count as sharing it and fall
# back to MPI transfers. "node" (default) gives the job step all the job's GPUs of the node
# without per-task binding: the per-task request is dropped from the launcher's environment
# (srun, and the srun mpirun starts its daemons with). "task" keeps Slurm's binding.
gpu_visibility=${SWARM_GPU_VISIBILITY:-node}
case $gpu_visibility in
  node)
    unset SLURM_GPUS_PER_TASK
    if [[ -n ${SLURM_TRES_PER_TASK:-} ]]; then  # Slurm >= 23.11 passes --gpus-per-task here
      tres=()
      IFS=, read -r -a items <<<"$SLURM_TRES_PER_TASK"
      for item in "${items[@]}"; do [[ $item == gres/gpu* ]] || tres+=("$item"); done
      if ((${#tres[@]})); then
        SLURM_TRES_PER_TASK=$(IFS=,; echo "${tres[*]}")
      else
        unset SLURM_TRES_PER_TASK
      fi
    fi
    ;;
  task) ;;
  *) fail "SWARM_GPU_VISIBILITY must be node or task, not '$gpu_visibility'" ;;
esac

launcher=${SWARM_LAUNCHER:-auto}
if [[ $launcher == auto ]]; then
  mpi_list=$(srun --mpi=list 2>&1 || true)
  if [[ $mpi_list =~ (^|[[:space:]])pmix($|[[:space:]]) ]]; then
    launcher=srun
  else
    launcher=mpirun
  fi
fi
cmd=()
case $launcher in
  srun)
    read -r -a extra <<<"${SWARM_SRUN_ARGS:-}"
    # srun does not take --cpus-per-task over from the job (Slurm >= 22.05): pass it.
    cmd=(srun --mpi=pmix --kill-on-bad-exit=1)
    [[ -n ${SLURM_CPUS_PER_TASK:-} ]] && cmd+=(--cpus-per-task="$SLURM_CPUS_PER_TASK")
    cmd+=("${extra[@]}")
    ;;
  mpirun)
    command -v mpirun >/dev/null || fail "mpirun not found"
    read -r -a extra <<<"${SWARM_MPIRUN_ARGS:---bind-to none}"
    if [[ $(id -u) == 0 ]]; then
      export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    fi
    cmd=(mpirun -np "${SLURM_NTASKS:?SLURM_NTASKS not set}" "${extra[@]}")
    ;;
  *) fail "SWARM_LAUNCHER must be auto, srun or mpirun, not '$launcher'" ;;
esac
cmd+=("$binary" --job "$job")
[[ $trace == none ]] || cmd+=(--trace "$trace")
cmd+=("${overrides[@]}")

if [[ -z ${OMP_NUM_THREADS:-} && -n ${SLURM_CPUS_PER_TASK:-} ]]; then
  export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK
fi

time_limit=$(squeue -h -j "$SLURM_JOB_ID" -o %l 2>/dev/null || true)
say "job ${SLURM_JOB_ID} (${SLURM_JOB_NAME:-?}) on ${SLURM_JOB_NUM_NODES:-?} node(s) ${SLURM_JOB_NODELIST:-?}, time limit ${time_limit:-?}"
say "tasks ${SLURM_NTASKS:-?} (per node ${SLURM_TASKS_PER_NODE:-?}), CPUs per task ${SLURM_CPUS_PER_TASK:-?}, OMP_NUM_THREADS ${OMP_NUM_THREADS:-unset}"
if ((gpus_on_node > 0)) || [[ -n ${CUDA_VISIBLE_DEVICES:-} ]]; then
  sees="all of its node's"
  [[ $gpu_visibility == node ]] || sees="its own only (Slurm's per-task binding)"
  say "GPUs on this node ${gpus_on_node} (CUDA_VISIBLE_DEVICES ${CUDA_VISIBLE_DEVICES:-unset}); a rank sees ${sees} (SWARM_GPU_VISIBILITY=${gpu_visibility})"
else
  say "GPUs: none in this allocation (SWARM_GPUS_PER_NODE=${want_gpus})"
fi
say "binary ${binary}"
say "job file ${job}"
say "trace ${trace}"
say "overrides ${overrides[*]:-(none)}"
say "launcher ${launcher}: ${cmd[*]}"
say "working directory ${PWD}, submit directory ${submit_dir}"

# ------------------------------------------------------------------------------------------
# Launch, pass SIGTERM on, wait, hand the exit code back
# ------------------------------------------------------------------------------------------
signals=0
child=
# shellcheck disable=SC2317  # called from the traps below
forward() {
  signals=$((signals + 1))
  if ((signals > 1)); then
    say "SIG$1 again: already passed on, still waiting for the ranks"
    return 0
  fi
  say "SIG$1 received at $(date '+%F %T'): passing SIGTERM to the ranks (they end at the next epoch boundary)"
  case $launcher in
    # srun would turn its own SIGTERM into SIGKILL of the tasks: signal the steps instead.
    srun) scancel --signal=TERM "$SLURM_JOB_ID" || say "scancel failed" ;;
    # mpirun, signalled, sends SIGTERM then SIGKILL a second later and exits 1 whatever the
    # ranks do: signal the ranks themselves. Here they are mpirun's children; on the other
    # nodes they run in the job step of the orted daemons, which scancel signals.
    mpirun)
      pkill -TERM -P "$child" || say "no rank of mpirun to signal on this node"
      if ((${SLURM_JOB_NUM_NODES:-1} > 1)); then
        scancel --signal=TERM "$SLURM_JOB_ID" || say "scancel failed"
      fi
      ;;
  esac
}

start=$SECONDS
"${cmd[@]}" &
child=$!
trap 'forward TERM' TERM
trap 'forward INT' INT

rc=0
while :; do
  seen=$signals
  wait "$child" && rc=0 || rc=$?
  # A trapped signal interrupts `wait` (status > 128) while the child runs on: wait again.
  # bash keeps the status of a finished child, so a second wait also returns the right one.
  ((signals == seen)) && break
done
trap - TERM INT
after_signal=""
((signals == 0)) || after_signal=", after SIGTERM"
say "${launcher} exited with ${rc} after $((SECONDS - start)) s${after_signal}"
exit "$rc"
