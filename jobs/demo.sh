#!/usr/bin/env bash
# The demo: sets up (Debian packages), builds swarm_pipe, and runs the main job on a small
# default: 4 CPU ranks, a tiny Llama with random weights, 5 epochs of traffic with Petals' full
# balancing, one rank slower than the others (jobs/demo.ini says why). Prints the per-epoch
# progress, the summary table, where the trace is and how to plot it.
#   jobs/demo.sh                  # 4 ranks
#   RANKS=6 jobs/demo.sh --run.strategy upper_bound    # extra args go to swarm_pipe
# BUILD_DIR (default build), OUT_DIR (default out) can be set. From an installed tree
# (P/share/swarm_pipe/jobs/demo.sh after `cmake --install`) it builds nothing: it runs
# P/bin/swarm_pipe and writes to OUT_DIR (default ./out).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ranks=${RANKS:-4}
if [[ -f $root/CMakeLists.txt ]]; then  # the source tree
  build=${BUILD_DIR:-$root/build}
  out=${OUT_DIR:-$root/out}
  "$root/scripts/install-deps.sh"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release > "$build.configure.log" 2>&1 || {
    cat "$build.configure.log"; exit 1; }
  cmake --build "$build" -j "$(nproc)" --target swarm_pipe
  binary=$build/bin/swarm_pipe
else  # installed: P/share/swarm_pipe
  binary=$(cd "$root/../.." && pwd)/bin/swarm_pipe
  out=${OUT_DIR:-$PWD/out}
  [[ -x $binary ]] || { echo "demo.sh: $binary not found (an installed tree has it in P/bin)" >&2; exit 2; }
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
# Open MPI refuses root without these, and more ranks than cores without oversubscription;
# yielding when idle keeps oversubscribed ranks from starving each other.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
mpirun -n "$ranks" "$binary" --job "$root/jobs/demo.ini" --trace "$out/demo.h5" "$@"
echo "# plot:    /usr/bin/python3 $root/scripts/plot_job.py $out/demo.h5 $out/demo.png"
echo "# inspect: h5dump -H $out/demo.h5"
