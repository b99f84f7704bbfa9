"""A seed study on 1 rank and on N ranks (mpirun): wall time, the ratio, and whether the traces
are the same (every dataset and attribute compared, `created` and the trace's own name apart).

usage: /usr/bin/python3 bench/balance/seed_scaling.py [BUILD_DIR] [--ranks 2] [--seeds 1-2]
           [--job jobs/petals-appendix-e.ini] [--duration 1800]
The goal in docs/simulator.md: 2 ranks run 2 seeds in at most 0.6 of the time of 1 rank.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np


def contents(path):
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            for k, v in obj.attrs.items():
                out[name + "@" + k] = v
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
        for k, v in f.attrs.items():
            if k == "effective_config":
                v = "\n".join(line for line in v.splitlines() if not line.startswith("trace ="))
            if k != "created":
                out["@" + k] = v
        f.visititems(visit)
    return out


def same(a, b):
    if set(a) != set(b):
        return False
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        if x.shape != y.shape or not (np.array_equal(x, y) or (x.dtype.kind == "f" and np.array_equal(x, y, equal_nan=True))):
            return False
    return True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("build", nargs="?", default="build")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--seeds", default="1-2")
    p.add_argument("--job", default="jobs/petals-appendix-e.ini")
    p.add_argument("--duration", type=float, default=1800)
    a = p.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    binary = os.path.join(a.build, "bin", "swarm_sim")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    work = tempfile.mkdtemp()
    args = ["--job", os.path.join(root, a.job), "--run.seeds", a.seeds, "--run.duration", str(a.duration), "--quiet"]
    times = {}
    for n in (1, a.ranks):
        trace = os.path.join(work, f"ranks{n}.h5")
        cmd = [binary, *args, "--trace", trace]
        if n > 1:
            cmd = ["mpirun", "-n", str(n), *cmd]
        began = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        times[n] = time.monotonic() - began
        if r.returncode != 0:
            print(f"seed_scaling.py: {' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()[-300:]}", file=sys.stderr)
            return 1
    identical = same(contents(os.path.join(work, "ranks1.h5")), contents(os.path.join(work, f"ranks{a.ranks}.h5")))
    print(f"# {a.job}, seeds {a.seeds}, {a.duration:.0f} simulated s, {os.cpu_count()} cores")
    print(f"  1 rank            {times[1]:8.1f} s")
    print(f"  {a.ranks} ranks (mpirun)  {times[a.ranks]:8.1f} s   ratio {times[a.ranks] / times[1]:.2f} (goal <= 0.6 for 2 ranks)")
    print(f"  traces identical: {'yes' if identical else 'NO'}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
