#!/usr/bin/python3
"""Request dispatch with real timings: runs swarm_pipe once per dispatch policy on the same job
(same seed, same batch of sessions) and merges the traces into one HDF5 file with one group per
policy (each a copy of that run's /epochs), then prints the end-of-run table.

usage: /usr/bin/python3 scripts/pipe_dispatch_study.py JOB.ini OUT.h5 [--ranks N] [--policies a,b,...]
                                                       [--build build] [--png OUT.png] [-- extra swarm_pipe args]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

ALL = ["shortest", "static", "round_robin", "consistent_hash", "bounded_hash", "self_fixed", "self_gss",
       "self_factoring", "self_weighted_factoring", "self_tapering", "work_stealing", "diffusion1", "diffusion2",
       "power_of_two"]


def run_policies(a, binary, env, work, rows):
    """Runs swarm_pipe once per policy into WORK and merges the traces into OUT.partial."""
    with h5py.File(a.out + ".partial", "w") as out:
        out.attrs["complete"] = 0
        out.attrs["program"] = "scripts/pipe_dispatch_study.py"
        out.attrs["job_text"] = open(a.job).read()
        out.attrs["ranks"] = a.ranks
        for policy in a.policies.split(","):
            trace = os.path.join(work, f"{policy}.h5")
            r = subprocess.run(["mpiexec", "-n", str(a.ranks), binary, "--job", a.job, "--trace", trace, "--quiet",
                                "--dispatch.policy", policy, *a.extra], capture_output=True, text=True, env=env)
            if r.returncode != 0:
                print(f"{policy}: swarm_pipe failed:\n{r.stderr[-2000:]}", file=sys.stderr)
                return 1
            with h5py.File(trace, "r") as t:
                g = out.create_group(policy)
                t.copy("epochs", g)
                for k, v in t.attrs.items():
                    g.attrs[k] = v
                e = t["epochs"]
                makespan = e["makespan"][:].max()  # -1: the batch did not finish within the run
                tokens = (e["tokens_per_s"][:] * e["traffic_seconds"][:]).sum()
                seconds = e["traffic_seconds"][:].sum()
                imb = e["route_imbalance"][:]
                rows.append((policy, makespan, tokens / seconds if seconds else 0,
                             float(np.mean(imb[imb > 0])) if np.any(imb > 0) else 0.0,
                             float(np.median(e["step_latency_p50"][:])) * 1e3, float(e["step_latency_p99"][:].max()) * 1e3,
                             int(e["migrations"][:].sum()), int(e["replay_tokens"][:].sum()),
                             int(e["dispatch_messages"][:].sum()), int(e["sessions_completed"][:].sum())))
                g.attrs["makespan"] = makespan
            out.flush()
        out.attrs["complete"] = 1
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("job")
    p.add_argument("out")
    p.add_argument("--ranks", type=int, default=4)
    p.add_argument("--policies", default=",".join(ALL))
    p.add_argument("--build", default="build")
    p.add_argument("--png", help="also plot the comparison (makespan, tokens/s, step p99, messages)")
    # Everything after "--" goes to swarm_pipe unparsed (argparse's own "--" handling drops
    # options that follow it once the positionals are filled).
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    a = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    a.extra = extra
    # Checked before any run, so that a typo costs no mpiexec and leaves no .partial file.
    if not os.path.isfile(a.job):
        p.error(f"job file {a.job!r} is not a readable file")
    out_dir = os.path.dirname(os.path.abspath(a.out))
    if not os.path.isdir(out_dir):
        p.error(f"OUT {a.out!r}: no directory {out_dir!r}")
    if a.ranks < 1:
        p.error(f"--ranks {a.ranks}: must be >= 1")
    unknown = [x for x in a.policies.split(",") if x not in ALL]
    if unknown:
        p.error(f"--policies: unknown {', '.join(unknown)} (one of {', '.join(ALL)})")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_mpi_yield_when_idle="1")
    binary = os.path.join(a.build, "bin", "swarm_pipe")
    rows = []
    with tempfile.TemporaryDirectory() as work:  # the per-policy traces, merged into OUT
        status = run_policies(a, binary, env, work, rows)
    if status != 0:
        os.remove(a.out + ".partial")  # half a study is not passed off as one
        return status
    os.replace(a.out + ".partial", a.out)
    print(f"# {'policy':<24} {'makespan':>9} {'tokens/s':>10} {'imbalance':>10} {'step_p50':>9} {'step_p99':>9} "
          f"{'migrations':>10} {'rebuild':>8} {'messages':>9} {'sessions':>9}")
    print(f"# {'':<24} {'(s)':>9} {'':>10} {'(max/mean)':>10} {'(ms)':>9} {'(ms)':>9} {'':>10} {'(tokens)':>8} "
          f"{'':>9} {'(done)':>9}")
    for r in rows:
        span = f"{r[1]:9.3f}" if r[1] >= 0 else f"{'not done':>9}"
        print(f"  {r[0]:<24} {span} {r[2]:10.1f} {r[3]:10.2f} {r[4]:9.2f} {r[5]:9.2f} {r[6]:10d} {r[7]:8d} "
              f"{r[8]:9d} {r[9]:9d}")
    print(f"# trace: {os.path.abspath(a.out)} (one group per policy)")
    if a.png:
        plot(rows, a.png, a.ranks)
    return 0


def plot(rows, path, ranks):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [r[0] for r in rows]
    panels = [("makespan (s)", [r[1] for r in rows]), ("tokens/s", [r[2] for r in rows]),
              ("step latency p99 (ms)", [r[5] for r in rows]), ("control messages", [r[8] for r in rows])]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, (title, values) in zip(axes.flat, panels):
        # A makespan of -1 means the batch did not finish: no bar, a word instead.
        unfinished = [title.startswith("makespan") and v < 0 for v in values]
        ax.barh(names, [0 if u else v for u, v in zip(unfinished, values)], color="tab:blue")
        for i, u in enumerate(unfinished):
            if u:
                ax.text(0, i, " batch unfinished", va="center", color="tab:red")
        ax.set_title(title)
        ax.set_xlim(left=0)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Request dispatch in swarm_pipe ({ranks} ranks, real timings)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"# plot: {os.path.abspath(path)}")


if __name__ == "__main__":
    sys.exit(main())
