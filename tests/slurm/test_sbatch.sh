#!/usr/bin/env bash
# ctest slurm_sbatch: slurm/pipeline.sh under a real Slurm on localhost.
#
#   tests/slurm/test_sbatch.sh BUILD_DIR [HELLO]
#
# Starts a private cluster (slurm_cluster.sh, in BUILD_DIR/slurm-test/cluster), submits
# `sbatch --wait slurm/pipeline.sh` jobs and checks what comes back:
#   with HELLO (tests/slurm/slurm_hello, an MPI stand-in for swarm_pipe; default
#   BUILD_DIR/tests/slurm/slurm_hello or BUILD_DIR/slurm_hello):
#     - success under srun and under mpirun: exit 0, the job's output file (settings, the
#       program's own line), the overrides reaching every rank, the trace with complete=1
#     - a failing rank: its exit code (7) comes back through sbatch --wait, srun and mpirun
#     - the submit mode (the script run outside Slurm, SWARM_GPUS_PER_NODE=auto finds no GPU)
#     - with 2 pretend GPUs (the cluster restarted with SWARM_CLUSTER_GPUS=2): auto asks for
#       one GPU per rank and every rank sees both (SWARM_GPU_VISIBILITY=node), or only its own
#       (=task); SWARM_GPUS_PER_NODE=2 without a GPU request fails early with exit code 2
#     - a missing binary: exit code 2 and the message
#     - SIGTERM: `scancel --batch --signal=TERM` (what --signal=B:TERM@120 does before the time
#       limit) reaches every rank through the script, srun and mpirun; `scancel --signal=TERM`
#       reaches them directly; the job then ends at its epoch boundary with swarm_pipe's exit
#       code 3 (stopped early) and a complete trace
#   with BUILD_DIR/bin/swarm_pipe, once it exists: the real job (SWARM_TEST_JOB, default
#   jobs/demo.ini) on SWARM_TEST_NTASKS (4) ranks: exit 0 and a trace with complete=1; then
#   the same job made long (--run.epochs 60) and sent SIGTERM through the batch script after
#   its first epoch, under srun and under mpirun: exit 3 (stopped early) and a complete trace
#   with stopped_early=1. A missing job file is a failure. SWARM_TEST_REAL=0 skips them.
# The cluster is stopped on every exit path (trap), and by its watchdog if this script is
# killed outright. Needs the packages slurm-wlm munge (scripts/install-deps.sh; missing ones
# fail the test) and root (without it the test is skipped: exit 77).
set -euo pipefail

BUILD=$(cd "${1:?usage: test_sbatch.sh BUILD_DIR [HELLO]}" && pwd -P)
if [[ $(id -u) != 0 ]]; then  # ctest reports it as skipped (SKIP_RETURN_CODE 77)
  echo "SKIP: a private Slurm needs root (slurmd, munged as user munge)"
  exit 77
fi
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
HELLO=${2:-}
if [[ -z $HELLO ]]; then
  for h in "$BUILD/tests/slurm/slurm_hello" "$BUILD/slurm_hello"; do
    [[ -x $h ]] && HELLO=$h && break
  done
fi
[[ -n $HELLO && -x $HELLO ]] || { echo "FAIL: slurm_hello not built (pass it as the 2nd argument)"; exit 1; }
HELLO=$(readlink -f "$HELLO")
PY=${SWARM_PYTHON:-/usr/bin/python3}
[[ -n $PY ]] || PY=/usr/bin/python3
CLUSTER_SH=$SRC/tests/slurm/slurm_cluster.sh
PIPELINE=slurm/pipeline.sh  # relative: the jobs are submitted from $SRC
T0=$SECONDS

ROOT=$BUILD/slurm-test
mkdir -p "$ROOT/cluster"
CLUSTER=$(cd "$ROOT/cluster" && pwd -P)
OUT=$ROOT/jobs
rm -rf "$OUT"
mkdir -p "$OUT"

# ---------------------------------------------------------------------------------------------
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  "$CLUSTER_SH" stop "$CLUSTER" || true
  if ((rc == 0)); then
    echo "slurm_sbatch: PASS in $((SECONDS - T0)) s"
  else
    echo "slurm_sbatch: FAIL (exit $rc) after $((SECONDS - T0)) s; cluster logs in $CLUSTER/log"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "FAIL: $*"
  local f
  for f in "${LAST_OUT:-}" "$CLUSTER/log/slurmctld.log" "$CLUSTER/log/slurmd.log"; do
    [[ -n $f && -f $f ]] && { echo "---- tail $f"; tail -n 30 "$f"; }
  done
  exit 1
}
pass() { echo "ok   $* ($((SECONDS - CASE_T0)) s)"; }

# Every job and daemon carries the marker, so `stop` can end them even if slurmstepd is gone.
export SWARM_SLURM_CLUSTER=$CLUSTER
start_cluster() {  # GPUS
  SWARM_CLUSTER_GPUS=$1 "$CLUSTER_SH" start "$CLUSTER" --owner $$ || fail "cluster did not start"
  eval "$("$CLUSTER_SH" env "$CLUSTER")"
  export SLURM_CONF
}
start_cluster 0
cd "$SRC"

JOBFILE=$OUT/hello.ini
echo "# slurm_hello does not read its job file" >"$JOBFILE"
# 2 ranks of 1 CPU; the node declares 64 CPUs, so nothing pends. --time keeps a stuck job short.
SB=(-n 2 --ntasks-per-node=2 --cpus-per-task=1 --time=2)

trace_complete() {  # FILE: root attribute complete == 1
  [[ -f $1 ]] || return 1
  if "$PY" -c 'import h5py' 2>/dev/null; then
    "$PY" - "$1" <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    c = f.attrs.get("complete")
    print(f"  trace {sys.argv[1]}: complete={c}")
    sys.exit(0 if c is not None and int(c) == 1 else 1)
EOF
  else  # no h5py: h5dump prints the attribute's value
    h5dump -a /complete "$1" | grep -Eq '\(0\): 1$'
  fi
}

expect_in() {  # FILE PATTERN...
  local f=$1 p
  shift
  for p in "$@"; do grep -qF -- "$p" "$f" || fail "'$p' missing from $f"; done
}

markers_say() {  # PREFIX LINE: every rank's marker has LINE
  local r
  for r in 0 1; do
    grep -qxF -- "$2" "$1.$r" 2>/dev/null || fail "rank $r marker $1.$r lacks '$2': $(tr '\n' ' ' <"$1.$r" 2>/dev/null)"
  done
}

run_wait() {  # NAME EXPECTED_RC [sbatch options --] [pipeline args]; env comes from the caller
  local name=$1 expected=$2 rc=0
  shift 2
  local opts=()
  while (($#)) && [[ $1 != -- ]]; do opts+=("$1"); shift; done
  (($#)) && shift
  LAST_OUT=$OUT/$name.out
  timeout 90 sbatch --wait -J "$name" "${SB[@]}" "${opts[@]}" --output="$LAST_OUT" \
    "$PIPELINE" "$@" >/dev/null || rc=$?
  ((rc != 124)) || fail "$name: sbatch --wait did not return within 90 s"
  [[ -f $LAST_OUT ]] || fail "$name: no output file $LAST_OUT"
  ((rc == expected)) || fail "$name: sbatch --wait returned $rc, expected $expected"
}

# ---------------------------------------------------------------------------------------------
# 1. success, srun and mpirun: exit code, output file, overrides, trace
for launcher in srun mpirun; do
  CASE_T0=$SECONDS
  name=ok-$launcher
  SWARM_PIPE=$HELLO SWARM_LAUNCHER=$launcher SWARM_TRACE=$OUT/$name.h5 \
    run_wait "$name" 0 -- "$JOBFILE" --marker "$OUT/$name.m" --some.key "two words"
  expect_in "$LAST_OUT" "pipeline: launcher $launcher" "pipeline: tasks 2" "GPUs: none" \
    "slurm_hello: 2 ranks, job $JOBFILE, trace $OUT/$name.h5, 2 override words" \
    "pipeline: $launcher exited with 0"
  markers_say "$OUT/$name.m" "arg=two words"
  markers_say "$OUT/$name.m" "exit=0"
  trace_complete "$OUT/$name.h5" || fail "$name: trace incomplete"
  pass "$name: exit 0, output, overrides, trace complete=1"
done

# 2. a failing rank: its code comes back through sbatch --wait
for launcher in srun mpirun; do
  CASE_T0=$SECONDS
  name=fail-$launcher
  SWARM_PIPE=$HELLO SWARM_LAUNCHER=$launcher SWARM_TRACE=none \
    run_wait "$name" 7 -- "$JOBFILE" --exit-code 7 --fail-rank 1
  expect_in "$LAST_OUT" "pipeline: $launcher exited with 7"
  pass "$name: exit code 7 came back"
done

# 3. submit mode: the script run outside Slurm submits itself; no GPU here, so none asked for
CASE_T0=$SECONDS
name=submit-mode
LAST_OUT=$OUT/$name.out
rc=0
SWARM_PIPE=$HELLO SWARM_TRACE=none SWARM_WAIT=1 SWARM_TASKS_PER_NODE=2 SWARM_CPUS_PER_TASK=1 \
  SWARM_TIME=2 SWARM_SBATCH_ARGS="-J $name -n 2 --output=$LAST_OUT" \
  timeout 90 "$PIPELINE" "$JOBFILE" --exit-code 5 >"$OUT/$name.submit" || rc=$?
((rc == 5)) || fail "$name: returned $rc, expected 5 ($(cat "$OUT/$name.submit"))"
expect_in "$OUT/$name.submit" "sbatch --ntasks-per-node=2 --cpus-per-task=1 --time=2 --wait"
if grep -q -- --gpus "$OUT/$name.submit"; then fail "$name: asked for GPUs on a cluster without any"; fi
expect_in "$LAST_OUT" "GPUs: none in this allocation (SWARM_GPUS_PER_NODE=0)"
pass "$name: exit code 5 came back, no GPU requested"

# 4. the script refuses to start: missing binary -> 2
CASE_T0=$SECONDS
name=no-binary
SWARM_PIPE=$OUT/does-not-exist run_wait "$name" 2 -- "$JOBFILE"
expect_in "$LAST_OUT" "pipeline: error: binary $OUT/does-not-exist not found"
pass "$name: exit code 2 and the message"

# 5. SIGTERM while running: through the script (--batch, as --signal=B:TERM does) for both
#    launchers, and straight to the step (srun)
signal_case() {  # NAME LAUNCHER [SCANCEL_OPTION]
  local name=$1 launcher=$2 how=(${3:+"$3"}) rc=0 bg id deadline
  CASE_T0=$SECONDS
  LAST_OUT=$OUT/$name.out
  SWARM_PIPE=$HELLO SWARM_LAUNCHER=$launcher SWARM_TRACE=$OUT/$name.h5 \
    timeout 90 sbatch --wait -J "$name" "${SB[@]}" --output="$LAST_OUT" "$PIPELINE" \
    "$JOBFILE" --marker "$OUT/$name.m" --wait-signal 40 >/dev/null &
  bg=$!
  deadline=$((SECONDS + 40))
  until grep -qsx ready "$OUT/$name.m.0" && grep -qsx ready "$OUT/$name.m.1"; do
    ((SECONDS < deadline)) || fail "$name: ranks not ready after 40 s"
    sleep 0.2
  done
  id=$(squeue -h -n "$name" -o %i)
  [[ -n $id ]] || fail "$name: job not in squeue"
  scancel "${how[@]}" --signal=TERM "$id"
  wait "$bg" || rc=$?
  # 3 = stopped early by a signal, trace complete (swarm_pipe's code, docs/job.md)
  ((rc == 3)) || fail "$name: sbatch --wait returned $rc after SIGTERM, expected 3"
  markers_say "$OUT/$name.m" "signal=15"
  markers_say "$OUT/$name.m" "exit=3"
  expect_in "$LAST_OUT" "slurm_hello: signal 15 seen" "pipeline: $launcher exited with 3"
  if ((${#how[@]})); then
    expect_in "$LAST_OUT" "pipeline: SIGTERM received"
  else  # straight to the step: the script is not involved
    if grep -q "pipeline: SIGTERM received" "$LAST_OUT"; then fail "$name: the batch script was signalled too"; fi
  fi
  trace_complete "$OUT/$name.h5" || fail "$name: trace incomplete after SIGTERM"
  pass "$name: scancel ${how[*]:+${how[*]} }--signal=TERM reached both ranks, exit 3 (stopped early), trace complete=1"
}
signal_case term-batch-srun srun --batch
signal_case term-batch-mpirun mpirun --batch
signal_case term-step-srun srun

# 6. the real swarm_pipe, once it is built (on the cluster without GPUs): a run to the end, then
#    SIGTERM through the batch script (srun and mpirun) after the first epoch
REAL=$BUILD/bin/swarm_pipe
real_term_case() {  # LAUNCHER
  local launcher=$1 name=swarm-pipe-term-$1 rc=0 bg id deadline
  CASE_T0=$SECONDS
  LAST_OUT=$OUT/$name.out
  OMPI_MCA_mpi_yield_when_idle=1 SWARM_PIPE=$REAL SWARM_LAUNCHER=$launcher SWARM_TRACE=$OUT/$name.h5 \
    timeout 90 sbatch --wait -J "$name" "${SB[@]}" -n "$ntasks" --ntasks-per-node="$ntasks" \
    --output="$LAST_OUT" "$PIPELINE" "$job" --run.epochs 60 >/dev/null &
  bg=$!
  deadline=$((SECONDS + 60))
  until grep -qsE '^epoch +1/' "$LAST_OUT"; do
    ((SECONDS < deadline)) || fail "$name: no epoch finished within 60 s"
    sleep 0.2
  done
  id=$(squeue -h -n "$name" -o %i)
  [[ -n $id ]] || fail "$name: job not in squeue"
  scancel --batch --signal=TERM "$id"
  wait "$bg" || rc=$?
  ((rc == 3)) || fail "$name: sbatch --wait returned $rc after SIGTERM, expected 3 (stopped early)"
  expect_in "$LAST_OUT" "pipeline: SIGTERM received" "pipeline: $launcher exited with 3"
  trace_complete "$OUT/$name.h5" || fail "$name: trace incomplete after SIGTERM"
  "$PY" -c 'import sys, h5py; sys.exit(0 if int(h5py.File(sys.argv[1], "r").attrs["stopped_early"]) == 1 else 1)' \
    "$OUT/$name.h5" || fail "$name: trace lacks stopped_early=1"
  pass "$name: SIGTERM after epoch 1 of 60: exit 3, trace complete=1, stopped_early=1"
}
if [[ ${SWARM_TEST_REAL:-1} == 0 ]]; then
  echo "skip real swarm_pipe runs (SWARM_TEST_REAL=0)"
elif [[ -x $REAL ]]; then
  CASE_T0=$SECONDS
  LAST_OUT=""
  job=${SWARM_TEST_JOB:-$SRC/jobs/demo.ini}
  [[ -f $job ]] || fail "swarm_pipe is built but its test job $job is missing (SWARM_TEST_JOB)"
  name=swarm-pipe
  ntasks=${SWARM_TEST_NTASKS:-4}  # jobs/demo.ini describes 4 servers
  # More ranks than cores here: ranks yield the core while they wait.
  OMPI_MCA_mpi_yield_when_idle=1 SWARM_PIPE=$REAL SWARM_TRACE=$OUT/$name.h5 \
    run_wait "$name" 0 -n "$ntasks" --ntasks-per-node="$ntasks" -- "$job"
  expect_in "$LAST_OUT" "pipeline: binary $REAL" "pipeline: srun exited with 0"
  trace_complete "$OUT/$name.h5" || fail "$name: trace incomplete"
  pass "$name: real job $job on $ntasks ranks, exit 0, trace complete=1"
  real_term_case srun
  real_term_case mpirun
else
  echo "skip real swarm_pipe runs: $REAL not built yet"
fi

# 6b. a seed study of swarm_sim through the same script: 2 ranks share 4 seeds, rank 0 writes
#     the one trace (docs/simulator.md, "Seeds"); both launchers
SIM=$BUILD/bin/swarm_sim
if [[ ${SWARM_TEST_REAL:-1} != 0 && -x $SIM ]]; then
  for launcher in srun mpirun; do
    CASE_T0=$SECONDS
    name=swarm-sim-seeds-$launcher
    OMPI_MCA_mpi_yield_when_idle=1 SWARM_PIPE=$SIM SWARM_LAUNCHER=$launcher SWARM_TRACE=$OUT/$name.h5 \
      run_wait "$name" 0 -n 2 --ntasks-per-node=2 -- "$SRC/jobs/petals-appendix-e.ini" \
      --run.duration 300 --run.placement_time_limit 0.02 --run.seeds 1-4 --quiet
    expect_in "$LAST_OUT" "over 4 seeds" "pipeline: $launcher exited with 0"
    trace_complete "$OUT/$name.h5" || fail "$name: trace incomplete"
    "$PY" -c 'import sys, h5py; f = h5py.File(sys.argv[1], "r"); sys.exit(0 if sorted(f) == ["seed_1", "seed_2", "seed_3", "seed_4", "summary"] and len(f["summary/move_aware/moves"]) == 4 else 1)' \
      "$OUT/$name.h5" || fail "$name: trace lacks /seed_1..4 and a 4-seed /summary"
    pass "$name: swarm_sim --run.seeds 1-4 on 2 ranks under sbatch, exit 0, one trace with 4 seeds and the summary"
  done
fi

# 6c. an installed tree (cmake --install into a prefix): its slurm/pipeline.sh, submitted from
#     elsewhere with no SWARM_PIPE, finds P/bin/swarm_pipe and runs P/share's demo job
if [[ ${SWARM_TEST_REAL:-1} != 0 && -x $REAL ]]; then
  CASE_T0=$SECONDS
  name=installed-tree
  prefix=$ROOT/prefix
  rm -rf "$prefix"
  cmake --install "$BUILD" --prefix "$prefix" >"$OUT/$name.install" || fail "$name: cmake --install ($(tail -3 "$OUT/$name.install"))"
  LAST_OUT=$OUT/$name.out
  rc=0
  (cd "$OUT" && env -u SWARM_PIPE OMPI_MCA_mpi_yield_when_idle=1 SWARM_TRACE=$OUT/$name.h5 SWARM_WAIT=1 \
    SWARM_GPUS_PER_NODE=0 SWARM_TASKS_PER_NODE=4 SWARM_CPUS_PER_TASK=1 SWARM_TIME=2 \
    SWARM_SBATCH_ARGS="-J $name --output=$LAST_OUT" \
    timeout 120 "$prefix/share/swarm_pipe/slurm/pipeline.sh" "$prefix/share/swarm_pipe/jobs/demo.ini" \
    --run.epochs 2 --run.epoch_seconds 0.3 >"$OUT/$name.submit") || rc=$?
  ((rc == 0)) || fail "$name: returned $rc ($(cat "$OUT/$name.submit"))"
  expect_in "$LAST_OUT" "pipeline: binary $prefix/bin/swarm_pipe" "exited with 0"
  trace_complete "$OUT/$name.h5" || fail "$name: trace incomplete"
  pass "$name: the installed slurm/pipeline.sh found $prefix/bin/swarm_pipe and ran the installed demo job"
fi

# 7. GPUs (pretend ones: the cluster restarted with 2 gres gpu backed by /dev/null copies)
CASE_T0=$SECONDS
start_cluster 2
name=gpu-auto
LAST_OUT=$OUT/$name.out
rc=0
SWARM_PIPE=$HELLO SWARM_TRACE=none SWARM_WAIT=1 SWARM_CPUS_PER_TASK=1 SWARM_TIME=2 \
  SWARM_SBATCH_ARGS="-J $name --output=$LAST_OUT" \
  timeout 90 "$PIPELINE" "$JOBFILE" --marker "$OUT/$name.m" >"$OUT/$name.submit" || rc=$?
((rc == 0)) || fail "$name: returned $rc ($(cat "$OUT/$name.submit"))"
expect_in "$OUT/$name.submit" "sbatch --ntasks-per-node=2 --gpus-per-task=1 --cpus-per-task=1"
expect_in "$LAST_OUT" "pipeline: tasks 2" "GPUs on this node 2" "SWARM_GPU_VISIBILITY=node"
markers_say "$OUT/$name.m" "cuda_visible_devices=0,1"
pass "$name: auto found 2 GPUs per node, asked for one per rank; each rank sees both (it picks local rank % 2)"

CASE_T0=$SECONDS
name=gpu-task-binding
SWARM_PIPE=$HELLO SWARM_TRACE=none SWARM_GPU_VISIBILITY=task \
  run_wait "$name" 0 --gpus-per-task=1 -- "$JOBFILE" --marker "$OUT/$name.m"
gpu0=$(sed -n 's/^cuda_visible_devices=//p' "$OUT/$name.m.0")
gpu1=$(sed -n 's/^cuda_visible_devices=//p' "$OUT/$name.m.1")
[[ $gpu0 =~ ^[0-9]+$ && $gpu1 =~ ^[0-9]+$ && $gpu0 != "$gpu1" ]] ||
  fail "$name: ranks should see one GPU each, saw '$gpu0' and '$gpu1'"
pass "$name: SWARM_GPU_VISIBILITY=task keeps Slurm's binding (CUDA_VISIBLE_DEVICES $gpu0 and $gpu1)"

CASE_T0=$SECONDS
name=gpu-missing
SWARM_PIPE=$HELLO SWARM_GPUS_PER_NODE=2 run_wait "$name" 2 -- "$JOBFILE"
expect_in "$LAST_OUT" "SWARM_GPUS_PER_NODE=2 but this allocation has no GPU"
pass "$name: GPUs expected but not requested: exit code 2 and the message"
