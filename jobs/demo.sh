#!/usr/bin/env bash
# The demo: sets up (Debian packages), builds swarm_pipe, and runs the main job on a small
# default: 4 CPU ranks, a tiny Llama with random weights, 5 epochs of traffic with Petals' full
# balancing. Prints the per-epoch progress, the summary table and where the trace is.
#   jobs/demo.sh                  # 4 ranks
#   RANKS=6 jobs/demo.sh --run.strategy upper_bound    # extra args go to swarm_pipe
# BUILD_DIR (default build), OUT_DIR (default out) can be set.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build}
out=${OUT_DIR:-$root/out}
ranks=${RANKS:-4}
"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release > "$build.configure.log" 2>&1 || {
  cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target swarm_pipe
mkdir -p "$out"
# Open MPI refuses root without these, and more ranks than cores without oversubscription;
# yielding when idle keeps oversubscribed ranks from starving each other.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
cd "$root"
mpirun -n "$ranks" "$build/bin/swarm_pipe" --job jobs/demo.ini --trace "$out/demo.h5" "$@"
echo "# inspect: h5dump -H $out/demo.h5   or   /usr/bin/python3 -c \"import h5py; print(h5py.File('$out/demo.h5')['epochs/tokens_per_s'][:])\""
