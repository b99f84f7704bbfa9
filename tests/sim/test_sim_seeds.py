"""swarm_sim --run.seeds end to end: the trace layout, the summary, the same trace on 1, 2 and 3
MPI ranks, and failures that end every rank without a trace.

usage: test_sim_seeds.py SWARM_SIM MPIRUN WORKDIR
"""
import os
import subprocess
import sys

import h5py
import numpy as np

# Small enough that a run takes a fraction of a second; churn so that strategies differ by seed.
JOB = """
[model]
blocks = 24
hidden_size = 4096
[run]
duration = 1800
period = 60
seed = 5
balance_quality = 0.95
placement_time_limit = 0
placement_reproducible = true
[churn]
initial_servers = 16
arrival_rate = 0.01
mean_lifetime = 900
[class.big]
share = 1
span = 8
block_rps = 20000
bandwidth_mbps = 1000
load_seconds_per_block = 2
[class.small]
share = 2
span = 4
block_rps = 8000
bandwidth_mbps = 100
relay_fraction = 0.3
"""

# Student's t quantiles (two-sided 95%) for the seed counts used here.
T95 = {3: 4.302653, 4: 3.182446}
FIGURES = ["mean_throughput", "ratio_to_upper_bound", "moves", "reload_hours", "disjoint_time_fraction"]
MPI_ENV = dict(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_mpi_yield_when_idle="1")

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL", what)


def run(cmd, env=None, timeout=300):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **MPI_ENV, **(env or {})))


def contents(path, root="/"):
    """Every dataset and attribute under `root`, keyed by path relative to it; `created` left out."""
    out = {}
    with h5py.File(path, "r") as f:
        base = f[root]
        for k, v in base.attrs.items():
            if k == "effective_config":  # names the trace file, which differs
                v = "\n".join(line for line in v.splitlines() if not line.startswith("trace ="))
            if k != "created":
                out["@" + k] = v
        def visit(name, obj):
            for k, v in obj.attrs.items():
                out[name + "@" + k] = v
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
        base.visititems(visit)
    return out


def same(a, b):
    if set(a) != set(b):
        return "keys differ: " + str(sorted(set(a) ^ set(b))[:5])
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        if x.shape != y.shape or not (np.array_equal(x, y) or (x.dtype.kind == "f" and np.array_equal(x, y, equal_nan=True))):
            return "differs at " + k
    return None


def main():
    binary, mpirun, work = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(work, exist_ok=True)
    job = os.path.join(work, "seeds.ini")
    with open(job, "w") as f:
        f.write(JOB)
    seeds = [3, 5, 6, 9]

    # 1. One rank: the layout, the summary and the table.
    serial = os.path.join(work, "serial.h5")
    r = run([binary, "--job", job, "--trace", serial, "--run.seeds", "3,5-6,9"])
    check(r.returncode == 0, f"serial study exits 0 (got {r.returncode}: {r.stderr.strip()})")
    check("over 4 seeds" in r.stdout and "±" in r.stdout, "the table prints mean ± CI over 4 seeds")
    with h5py.File(serial, "r") as f:
        check(sorted(f.keys()) == sorted([f"seed_{s}" for s in seeds] + ["summary"]),
              f"seed groups and summary at the root (got {sorted(f.keys())})")
        check(f.attrs["seeds"] == "3,5-6,9" and f.attrs["seeds_run"] == 4, "root attributes name the seeds")
        strategies = sorted(f["summary"].keys())
        check("move_aware" in strategies and "full" in strategies, f"summary per strategy (got {strategies})")
        for s in strategies:
            g = f["summary"][s]
            check(list(g["seed"][()]) == seeds, f"summary/{s}/seed lists the seeds in order")
            for fig in FIGURES:
                v = np.asarray(g[fig][()], dtype=float)
                check(v.shape == (4,), f"summary/{s}/{fig} has one value per seed")
                check(abs(g.attrs[fig + "_mean"] - v.mean()) <= 1e-9 * max(1.0, abs(v.mean())), f"{s} {fig}_mean is the mean")
                ci = T95[4] * v.std(ddof=1) / 2.0
                check(abs(g.attrs[fig + "_ci95"] - ci) <= 1e-6 * max(1.0, ci), f"{s} {fig}_ci95 is t*sd/sqrt(n) ({g.attrs[fig + '_ci95']} vs {ci})")
            # The summary's values are those of each seed's own group.
            for i, seed in enumerate(seeds):
                run_group = f[f"seed_{seed}/{s}"]
                check(g["moves"][i] == run_group.attrs["moves_total"], f"summary/{s}/moves[{i}] is seed_{seed}'s moves_total")
                check(abs(g["mean_throughput"][i] - run_group.attrs["mean_throughput"]) < 1e-9 * max(1.0, g["mean_throughput"][i]),
                      f"summary/{s}/mean_throughput[{i}] is seed_{seed}'s")
        check(np.var(f["summary/full/mean_throughput"][()]) > 0, "seeds differ (the study is not one run repeated)")

    # 2. A seed's group holds what a single run with that seed writes at the root.
    single = os.path.join(work, "single.h5")
    r = run([binary, "--job", job, "--trace", single, "--run.seed", "6", "--quiet"])
    check(r.returncode == 0, "single run exits 0")
    a, b = contents(single), contents(serial, "/seed_6")
    for k in list(a):
        if k.startswith("@"):
            del a[k]  # root attributes: run info, at the study's root instead
    b = {k: v for k, v in b.items() if not k.startswith("@")}
    diff = same(a, b)
    check(diff is None, f"/seed_6 equals a single run with --run.seed 6 ({diff})")
    with h5py.File(single, "r") as f:
        check("summary" not in f and "seed_6" not in f, "without --run.seeds the trace keeps its single-run layout")

    # 3. The same trace on 2 and 3 ranks (seeds spread round-robin; 3 ranks: uneven shares).
    for n in (2, 3):
        path = os.path.join(work, f"ranks{n}.h5")
        r = run([mpirun, "-n", str(n), binary, "--job", job, "--trace", path, "--run.seeds", "3,5-6,9"])
        check(r.returncode == 0, f"mpirun -n {n} exits 0 (got {r.returncode}: {r.stderr.strip()[-300:]})")
        check(r.stdout.count("over 4 seeds") == 1, f"mpirun -n {n}: one table, printed by rank 0")
        check(any(f"on rank {n - 1}" in line for line in r.stdout.splitlines()), f"mpirun -n {n}: rank {n - 1} ran a seed")
        if r.returncode == 0:
            diff = same(contents(serial), contents(path))
            check(diff is None, f"mpirun -n {n} writes the serial trace ({diff})")

    # 4. Bad lists: a clear message naming the key and value, exit 2, no trace.
    for bad in ["5-3", "1,,2", "x", "-4", "3,3"]:
        path = os.path.join(work, "bad.h5")
        r = run([binary, "--job", job, "--trace", path, "--run.seeds", bad])
        check(r.returncode == 2, f"--run.seeds {bad!r} exits 2 (got {r.returncode})")
        check("run.seeds" in r.stderr and bad in r.stderr, f"--run.seeds {bad!r}: the message names key and value ({r.stderr.strip()})")
        check(not os.path.exists(path), f"--run.seeds {bad!r}: no trace")

    # 5. Several ranks without seeds: one message, every rank out.
    path = os.path.join(work, "noseeds.h5")
    r = run([mpirun, "-n", "2", binary, "--job", job, "--trace", path], timeout=120)
    check(r.returncode != 0, "mpirun -n 2 without --run.seeds fails")
    check(sum(line.startswith("swarm_sim:") for line in r.stderr.splitlines()) == 1, f"... with one message (got {r.stderr.strip()})")
    check(not os.path.exists(path), "... and no trace")

    # 6. A run that fails on one rank: one message naming the seed, no hang, no trace.
    for n, seed in ((1, 6), (2, 5), (3, 9)):
        path = os.path.join(work, f"fail{n}.h5")
        r = run([mpirun, "-n", str(n), binary, "--job", job, "--trace", path, "--run.seeds", "3,5-6,9"],
                env={"SWARM_SIM_FAIL_SEED": str(seed)}, timeout=120)
        check(r.returncode == 1, f"mpirun -n {n}, seed {seed} failing: exit 1 (got {r.returncode})")
        check(r.stderr.count("swarm_sim: error") == 1 and f"seed {seed}" in r.stderr,
              f"mpirun -n {n}: one message naming seed {seed} (got {r.stderr.strip()})")
        check(not os.path.exists(path), f"mpirun -n {n}: no trace left behind")

    # 7. The plot script draws a study's mean with a band; the study script prints the goals.
    scripts = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts")
    png = os.path.join(work, "seeds.png")
    r = subprocess.run([sys.executable, os.path.join(scripts, "plot_sim.py"), serial, png],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 0 and os.path.getsize(png) > 10000, f"plot_sim.py draws a seeds trace: {r.stderr.strip()}")
    r = subprocess.run([sys.executable, os.path.join(scripts, "sim_study.py"), "--seeds", "1-2", "--ranks", "2",
                        "--binary", binary, "--mpirun", mpirun, "--out", os.path.join(work, "study"), job],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, **MPI_ENV))
    check(r.returncode == 0 and "2 seeds (1-2), 2 rank(s)" in r.stdout and "move_aware holds" in r.stdout,
          f"sim_study.py runs a scenario over seeds and prints the goals: {r.stdout[-400:]} {r.stderr[-400:]}")

    if failures:
        print(f"{len(failures)} checks failed")
        return 1
    print("all seed-study checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
