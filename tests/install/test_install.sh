#!/usr/bin/env bash
# ctest install_tree: `cmake --install` into a temporary prefix, then the installed tree alone:
# its layout, the demo job run from it (outside the source tree), its plot script on the trace.
#   tests/install/test_install.sh BUILD_DIR WORK_DIR PYTHON
set -euo pipefail
build=$1 work=$2 py=${3:-/usr/bin/python3}
rm -rf "$work"
mkdir -p "$work/run"
prefix=$work/prefix
fail() { echo "FAIL: $*"; exit 1; }

cmake --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; fail "cmake --install"; }
for f in bin/swarm_pipe bin/swarm_sim share/swarm_pipe/jobs/demo.sh share/swarm_pipe/jobs/demo.ini \
  share/swarm_pipe/slurm/pipeline.sh share/swarm_pipe/scripts/plot_job.py share/swarm_pipe/docs/job.md \
  share/swarm_pipe/README.md libexec/swarm_pipe/bench_transport; do
  [[ -e $prefix/$f ]] || fail "installed tree lacks $f"
done
[[ -x $prefix/share/swarm_pipe/jobs/demo.sh && -x $prefix/share/swarm_pipe/slurm/pipeline.sh ]] ||
  fail "installed scripts are not executable"
"$prefix/bin/swarm_sim" --help >/dev/null || fail "installed swarm_sim --help"
echo "ok   layout: bin, libexec, share/swarm_pipe/{jobs,scripts,slurm,docs}"

# The demo from the installed tree, in a directory of its own: no build, outputs in ./out.
cd "$work/run"
RANKS=4 "$prefix/share/swarm_pipe/jobs/demo.sh" --run.epochs 2 --run.epoch_seconds 0.3 >demo.out 2>demo.err ||
  { cat demo.out demo.err; fail "installed demo.sh"; }
grep -q "^# total:" demo.out || fail "installed demo: no summary line"
grep -q "plot_job.py" demo.out || fail "installed demo: no plot command printed"
[[ -f out/demo.h5 ]] || fail "installed demo: no trace in ./out"
"$py" -c 'import sys, h5py; sys.exit(0 if int(h5py.File(sys.argv[1], "r").attrs["complete"]) == 1 else 1)' out/demo.h5 ||
  fail "installed demo: trace not complete"
echo "ok   installed demo.sh ran 4 ranks from $work/run: summary, complete trace in ./out"

"$py" "$prefix/share/swarm_pipe/scripts/plot_job.py" out/demo.h5 out/demo.png || fail "installed plot_job.py"
[[ -s out/demo.png ]] || fail "installed plot_job.py wrote no PNG"
echo "ok   installed plot_job.py drew the trace"
echo "install_tree: PASS"
