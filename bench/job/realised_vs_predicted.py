"""Realised tokens/s of swarm_pipe against what the job predicts, and the pipeline's efficiency.

Runs the MPI job on small swarms of 2 ranks (no oversubscription on a 2-core machine) with the
tiny model of jobs/demo.ini, each REPEATS times, and prints per swarm the median over the runs
of the mean over epochs 2.. (epoch 1 is predicted from the start-up benchmark) of:
  realised   tokens through the whole pipeline per second of traffic (trace tokens_per_s)
  predicted  what the job predicts it should realise (trace predicted_throughput; docs/job.md)
  ratio      realised / predicted (goal >= 0.90)
and the pipeline efficiency: 2 ranks holding half of the model each (a 2-hop pipeline) against
2 ranks holding all of it (2 replicas), same sessions, realised tokens/s (goal >= 0.90).

usage: /usr/bin/python3 bench/job/realised_vs_predicted.py BUILD_DIR [--repeats N] [--epochs N]
       [--concurrency C] [--goal 0.9]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

import h5py
import numpy as np

SWARMS = [  # (label, extra args)
    ("2 ranks, each the whole model (k=8)", ["--servers.span", "8"]),
    ("2 ranks, one half each (k=4)", ["--servers.span", "4"]),
    ("2 ranks, k=4, batch 4", ["--servers.span", "4", "--workload.batch", "4"]),
    ("2 ranks, k=4, 64-token prompts", ["--servers.span", "4", "--workload.prompt_tokens", "64"]),
]


def run(binary, root, work, extra, epochs, concurrency):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_mpi_yield_when_idle="1")
    trace = os.path.join(work, "t.h5")
    args = ["mpiexec", "-n", "2", binary, "--job", os.path.join(root, "jobs", "demo.ini"), "--trace", trace,
            "--quiet", "--servers.classes", "", "--run.epochs", str(epochs), "--run.strategy", "new_only", *extra]
    if concurrency:
        args += ["--workload.concurrency", str(concurrency)]
    p = subprocess.run(args, capture_output=True, text=True, env=env, cwd=root)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-400:])
    with h5py.File(trace, "r") as h:
        e = h["epochs"]
        return float(np.mean(e["tokens_per_s"][1:])), float(np.mean(e["predicted_throughput"][1:]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build", nargs="?", default="build")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=0, help="workload.concurrency (0: jobs/demo.ini's)")
    parser.add_argument("--goal", type=float, default=0.90)
    args = parser.parse_args()
    if args.repeats < 1 or args.epochs < 2:
        parser.error("need --repeats >= 1 and --epochs >= 2")
    binary = os.path.join(args.build, "bin", "swarm_pipe")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    work = tempfile.mkdtemp()
    print(f"# {'swarm':<36} {'realised':>11} {'predicted':>11} {'ratio':>7} {'ratios of the runs':>24}")
    print(f"# {'':<36} {'(tokens/s)':>11} {'(tokens/s)':>11} {'':>7}")
    realised = {}
    worst = 1e9
    for label, extra in SWARMS:
        try:
            runs = [run(binary, root, work, extra, args.epochs, args.concurrency) for _ in range(args.repeats)]
        except RuntimeError as e:
            print(f"  {label:<36} failed: {e}")
            worst = 0
            continue
        ratios = [r / p for r, p in runs]
        r = statistics.median(x for x, _ in runs)
        p = statistics.median(y for _, y in runs)
        ratio = statistics.median(ratios)
        realised[label] = r
        worst = min(worst, ratio)
        print(f"  {label:<36} {r:11.1f} {p:11.1f} {ratio:7.3f} {' '.join(f'{x:.3f}' for x in ratios):>24}")
    whole, halves = realised.get(SWARMS[0][0]), realised.get(SWARMS[1][0])
    efficiency = halves / whole if whole and halves else 0.0
    print(f"# pipeline efficiency (2 halves / 2 whole replicas, realised): {efficiency:.3f}")
    ok = worst >= args.goal and efficiency >= args.goal
    print(f"# realised / predicted, worst median: {worst:.3f}; goals >= {args.goal:.2f}: {'met' if ok else 'not met'}")
    print("# PASS" if ok else "# FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
