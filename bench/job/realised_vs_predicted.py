"""Realised tokens/s of swarm_pipe against the swarm throughput rank 0 predicts.

Runs the MPI job on a few small swarms (2 ranks, so the timing is not distorted by
oversubscription on a 2-core machine) and prints, per run, the mean realised throughput (tokens
through the whole pipeline per second), the mean announced swarm throughput (min over blocks of
Petals' announced throughputs) and their ratio.

Petals' announcement divides a server's one-block rate by (k+1)/2, the blocks a request is
expected to use when requests enter and leave a span anywhere. In this job every route runs a
server's whole span (k blocks) per hop, so the prediction is optimistic by about k / ((k+1)/2)
before any communication cost; the table shows that factor next to the ratio.
usage: /usr/bin/python3 bench/job/realised_vs_predicted.py BUILD_DIR
"""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

RUNS = [  # (label, ranks, extra args)
    ("2 ranks, each the whole model (k=8)", 2, ["--servers.span", "8"]),
    ("2 ranks, one half each (k=4)", 2, ["--servers.span", "4"]),
    ("2 ranks, k=4, batch 4", 2, ["--servers.span", "4", "--workload.batch", "4"]),
    ("2 ranks, k=4, 64-token prompts", 2, ["--servers.span", "4", "--workload.prompt_tokens", "64"]),
]


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    binary = os.path.join(build, "bin", "swarm_pipe")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_mpi_yield_when_idle="1")
    work = tempfile.mkdtemp()
    print(f"# {'swarm':<40} {'realised':>12} {'predicted':>12} {'ratio':>7} {'k/((k+1)/2)':>12}")
    print(f"# {'':<40} {'(tokens/s)':>12} {'(tokens/s)':>12} {'':>7} {'':>12}")
    for label, ranks, extra in RUNS:
        trace = os.path.join(work, "t.h5")
        p = subprocess.run(["mpiexec", "-n", str(ranks), binary, "--job", os.path.join(root, "jobs", "demo.ini"),
                            "--trace", trace, "--quiet", "--servers.classes", "", "--run.epochs", "4",
                            "--run.strategy", "new_only", *extra],
                           capture_output=True, text=True, env=env, cwd=root)
        if p.returncode != 0:
            print(f"  {label:<40} failed: {p.stderr[-300:]}")
            continue
        with h5py.File(trace, "r") as h:
            e = h["epochs"]
            realised = np.mean(e["tokens_per_s"][1:])  # epoch 1 measures with the start-up benchmark
            predicted = np.mean(e["swarm_throughput"][1:])
            k = int(np.median(e["span_end"][0] - e["span_start"][0]))
        print(f"  {label:<40} {realised:12.1f} {predicted:12.1f} {realised / predicted:7.3f} {k / ((k + 1) / 2):12.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
