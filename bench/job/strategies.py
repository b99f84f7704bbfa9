"""swarm_pipe's strategies side by side on the shipped heterogeneous and churn jobs: realised
tokens/s and moves of each strategy, runs interleaved (full, move_aware, full, ...) so that a
machine that slows down during the benchmark slows both alike. Prints per job and strategy the
mean and standard deviation over the repetitions, the moves, and the ratio of the means against
the first strategy listed.

On a machine with fewer cores than ranks (2 cores here, 4 and 6 ranks) the ranks are
oversubscribed and throughput varies by 10-20% from run to run: read the spread, not one run.

usage: /usr/bin/python3 bench/job/strategies.py [BUILD_DIR] [--repeat 5] [--strategies full,move_aware]
                                              [--args '--run.move_min_gain 0.1']
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

JOBS = [("jobs/heterogeneous.ini", 6), ("jobs/churn.ini", 4)]
TOTAL = re.compile(r"# total: (\d+) tokens in ([\d.]+) s of traffic \(([\d.]+) tokens/s")
ROW = re.compile(r"^\s+(\d+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+(\d+)\s")


def run(build, root, job, ranks, strategy, trace, env, extra):
    cmd = ["mpiexec", "-n", str(ranks), os.path.join(build, "bin", "swarm_pipe"), "--job", os.path.join(root, job),
           "--trace", trace, "--run.strategy", strategy] + extra
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-300:]}")
    total = TOTAL.search(p.stdout)
    if not total:
        raise RuntimeError(f"{' '.join(cmd)}: no '# total' line")
    moves = sum(int(m.group(2)) for m in map(ROW.match, p.stdout.splitlines()) if m)
    return float(total.group(3)), moves


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build", nargs="?", default="build")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--strategies", default="full,move_aware")
    parser.add_argument("--args", default="", help="more swarm_pipe options for every run, e.g. '--run.move_min_gain 0.1'")
    args = parser.parse_args()
    strategies = args.strategies.split(",")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_mpi_yield_when_idle="1")
    work = tempfile.mkdtemp()
    print(f"# cores: {os.cpu_count()}, {args.repeat} runs of each, interleaved")
    print(f"# {'job':<24} {'strategy':<12} {'tokens/s':>10} {'sd':>8} {'moves':>7} {'vs ' + strategies[0]:>10}")
    try:
        for job, ranks in JOBS:
            results = {s: [] for s in strategies}
            for i in range(args.repeat):
                for s in strategies:
                    results[s].append(run(args.build, root, job, ranks, s, os.path.join(work, f"{s}_{i}.h5"), env,
                                          args.args.split()))
            base = statistics.mean(t for t, _ in results[strategies[0]])
            for s in strategies:
                tps = [t for t, _ in results[s]]
                moves = statistics.mean(m for _, m in results[s])
                sd = statistics.stdev(tps) if len(tps) > 1 else 0.0
                print(f"  {job:<24} {s:<12} {statistics.mean(tps):>10.1f} {sd:>8.1f} {moves:>7.1f} "
                      f"{statistics.mean(tps) / base:>10.3f}")
            sys.stdout.flush()
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"strategies.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
