"""Every job file in jobs/ runs with the command its header documents, shortened.

Each jobs/*.ini names, in a comment, the command that runs it (mpirun ... swarm_pipe, swarm_sim,
swarm_sim dispatch, or scripts/pipe_dispatch_study.py). This runs that command from the
repository root with the test's binaries and a shorter horizon, and checks exit 0 and a trace
marked complete, so that a renamed key or a stale comment fails here rather than for a user.

usage: test_shipped_jobs.py --source SRC --build BUILD --mpiexec MPIEXEC --work DIR
"""
import argparse
import glob
import os
import re
import subprocess
import sys

import h5py

PATTERNS = [
    ("pipe", re.compile(r"mpirun -n (\d+) build/bin/swarm_pipe --job (\S+) --trace \S+(.*)")),
    ("dispatch", re.compile(r"swarm_sim dispatch --job (\S+) --trace \S+(.*)")),
    ("sim", re.compile(r"swarm_sim --job (\S+) --trace \S+(.*)")),
    ("study", re.compile(r"scripts/pipe_dispatch_study\.py (\S+) \S+ --ranks (\d+)(.*)")),
]

# Shorter runs of the same files: the point is that they are valid and run, not their results.
SHORTER = {
    "pipe": ["--quiet", "--run.epoch_seconds", "0.1"],
    "dispatch": ["--quiet", "--workload.sessions", "300"],
    "sim": ["--quiet", "--run.duration", "600"],
}


def documented(path):
    """(kind, ranks, extra args) of the first command in the file's comments that runs it."""
    for line in open(path):
        if not line.startswith("#"):
            continue
        for kind, pattern in PATTERNS:
            m = pattern.search(line)
            if not m:
                continue
            groups = m.groups()
            if kind in ("pipe", "study"):
                ranks, job, extra = (groups[0], groups[1], groups[2]) if kind == "pipe" else (groups[1], groups[0], groups[2])
            else:
                ranks, job, extra = None, groups[0], groups[1]
            return kind, job, ranks, extra.split()
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    parser.add_argument("--build", required=True)
    parser.add_argument("--mpiexec", required=True)
    parser.add_argument("--work", required=True)
    a = parser.parse_args()
    os.makedirs(a.work, exist_ok=True)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_mpi_yield_when_idle="1")
    pipe = os.path.join(a.build, "bin", "swarm_pipe")
    sim = os.path.join(a.build, "bin", "swarm_sim")
    failures = []
    jobs = sorted(glob.glob(os.path.join(a.source, "jobs", "*.ini")))
    if not jobs:
        failures.append("no job files under jobs/")
    for path in jobs:
        rel = os.path.relpath(path, a.source)
        found = documented(path)
        if found is None:
            failures.append(f"{rel}: its comments document no command that runs it")
            print("FAIL", failures[-1], flush=True)
            continue
        kind, job, ranks, extra = found
        if job != rel:
            failures.append(f"{rel}: its documented command runs {job}")
            print("FAIL", failures[-1], flush=True)
            continue
        trace = os.path.join(a.work, os.path.basename(path).replace(".ini", ".h5"))
        if kind == "pipe":
            cmd = [a.mpiexec, "-n", ranks, pipe, "--job", rel, "--trace", trace, *extra, *SHORTER[kind]]
        elif kind == "dispatch":
            cmd = [sim, "dispatch", "--job", rel, "--trace", trace, *extra, *SHORTER[kind]]
        elif kind == "sim":
            cmd = [sim, "--job", rel, "--trace", trace, *extra, *SHORTER[kind]]
        else:
            cmd = [sys.executable, "scripts/pipe_dispatch_study.py", rel, trace, "--ranks", ranks, *extra,
                   "--build", a.build, "--policies", "round_robin,self_gss", "--png", trace + ".png", "--",
                   "--run.epochs", "3", "--run.epoch_seconds", "0.1"]
        p = subprocess.run(cmd, cwd=a.source, env=env, capture_output=True, text=True, timeout=300)
        ok = p.returncode == 0 and os.path.isfile(trace)
        if ok:
            with h5py.File(trace, "r") as h:
                ok = int(h.attrs.get("complete", 0)) == 1
        print("ok  " if ok else "FAIL", f"{rel}: {' '.join(cmd[:2])} ... exit {p.returncode}", flush=True)
        if not ok:
            failures.append(f"{rel}: exit {p.returncode}, trace complete: no\n{p.stderr[-1500:]}")
            print(failures[-1], flush=True)
            continue
        if kind == "study":
            # A run that fails leaves neither the study nor its .partial behind.
            bad = os.path.join(a.work, "bad_study.h5")
            q = subprocess.run([sys.executable, "scripts/pipe_dispatch_study.py", rel, bad, "--ranks", ranks,
                                "--build", a.build, "--policies", "round_robin", "--", "--run.epochs", "0"],
                               cwd=a.source, env=env, capture_output=True, text=True, timeout=120)
            clean = q.returncode == 1 and "run.epochs" in q.stderr and not os.path.exists(bad) \
                and not os.path.exists(bad + ".partial")
            print("ok  " if clean else "FAIL", f"{rel}: a failed study exits 1 and leaves no file", flush=True)
            if not clean:
                failures.append(f"{rel}: failed study: exit {q.returncode}, {q.stderr[-500:]}")
        # The figure each kind of trace documents (README): a PNG of some substance.
        plot = {"sim": "scripts/plot_sim.py", "dispatch": "scripts/plot_dispatch.py"}.get(kind)
        png = trace + ".png"
        if plot:
            p = subprocess.run([sys.executable, plot, trace, png], cwd=a.source, capture_output=True, text=True,
                               timeout=120)
        if plot or kind == "study":
            drawn = p.returncode == 0 and os.path.isfile(png) and os.path.getsize(png) > 10000
            print("ok  " if drawn else "FAIL", f"{rel}: its figure {os.path.basename(png)}", flush=True)
            if not drawn:
                failures.append(f"{rel}: no figure (exit {p.returncode}): {p.stderr[-800:]}")
    print(f"{len(failures)} failures ({len(jobs)} job files)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
