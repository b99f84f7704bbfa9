"""The epoch boundary of swarm_pipe at 2, 8 and 64 ranks: rank 0's allgather of the
measurements, its decision (churn and the strategy: Petals' rule 2 for every server), the
broadcast of the decision, and the whole boundary with reloads and the trace's I/O apart (both
printed beside it); medians over the
boundaries after the first, in milliseconds. The tiny model of jobs/demo.ini with one block per
rank pair (span 2 on 2 x ranks / 2 layers), so that the swarm has many servers to decide on.

On a machine with fewer cores than ranks the ranks are oversubscribed: an allgather then waits
for ranks that the scheduler has not run yet, so those figures are upper bounds (the core
count is printed).

usage: /usr/bin/python3 bench/job/boundary.py BUILD_DIR [--ranks 2,8,64] [--epochs 8]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build", nargs="?", default="build")
    parser.add_argument("--ranks", default="2,8,64")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    try:
        counts = [int(x) for x in args.ranks.split(",")]
        if any(n < 1 for n in counts) or args.epochs < 3:
            raise ValueError
    except ValueError:
        parser.error("--ranks must list positive integers and --epochs be >= 3")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_mpi_yield_when_idle="1")
    work = tempfile.mkdtemp()
    print(f"# cores: {os.cpu_count()}")
    print(f"# {'ranks':>6} {'gather':>9} {'decide':>9} {'broadcast':>9} {'boundary':>9} {'trace':>9} {'reload':>9}")
    print(f"# {'':>6} {'(ms)':>9} {'(ms)':>9} {'(ms)':>9} {'(ms)':>9} {'(ms)':>9} {'(ms)':>9}")
    failed = False
    for n in counts:
        trace = os.path.join(work, f"boundary_{n}.h5")
        layers = max(2, n)
        p = subprocess.run(["mpiexec", "-n", str(n), os.path.join(args.build, "bin", "swarm_pipe"), "--job",
                            os.path.join(root, "jobs", "demo.ini"), "--trace", trace, "--quiet", "--servers.classes", "",
                            "--model.layers", str(layers), "--servers.span", "2" if n > 1 else str(layers),
                            "--run.epochs", str(args.epochs), "--run.epoch_seconds", "0.05", "--run.strategy", "full"],
                           capture_output=True, text=True, env=env, cwd=root)
        if p.returncode != 0:
            print(f"  {n:6d} failed: {p.stderr[-300:]}")
            failed = True
            continue
        with h5py.File(trace, "r") as h:
            e = h["epochs"]
            med = lambda key: 1e3 * float(np.median(e[key][2:]))
            total = 1e3 * float(np.median(e["boundary_seconds"][2:] - e["boundary_reload_seconds"][2:] -
                                          e["boundary_trace_seconds"][2:]))
            print(f"  {n:6d} {med('boundary_gather_seconds'):9.3f} {med('boundary_decide_seconds'):9.3f} "
                  f"{med('boundary_broadcast_seconds'):9.3f} {total:9.3f} {med('boundary_trace_seconds'):9.3f} "
                  f"{med('boundary_reload_seconds'):9.3f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
