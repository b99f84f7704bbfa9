"""swarm_sim dispatch end to end: the trace it writes, the table, bad input, determinism, signals.

usage: test_dispatch_study.py SWARM_SIM WORKDIR
"""
import os
import re
import signal
import subprocess
import sys

import h5py
import numpy as np

# Small but complete: two classes with changing speeds, server churn during the batch, all 13
# policies. Runs in well under a second.
JOB = """
[run]
seed = 5
horizon = 600
[model]
blocks = 24
hidden_size = 4096
[swarm]
min_route_speed = 20
[churn]
initial_servers = 40
arrival_rate = 0.05
mean_lifetime = 300
[workload]
sessions = 400
prompt_tokens_min = 64
prompt_tokens_max = 512
new_tokens_min = 16
new_tokens_max = 128
prompt_weight = 0.5
[engine]
rebuild_fraction = 0.5
[class.big]
share = 1
span = 8
block_rps = 20000
bandwidth_mbps = 1000
speed_sigma = 0.4
speed_interval_s = 20
[class.small]
share = 2
span = 4
block_rps = 6000
bandwidth_mbps = 1000
speed_sigma = 0.6
speed_interval_s = 20
"""

POLICIES = ["static", "round_robin", "consistent_hash", "bounded_hash", "self_fixed", "self_gss",
            "self_factoring", "self_weighted_factoring", "self_tapering", "work_stealing",
            "diffusion1", "diffusion2", "power_of_two"]

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL", what)


def run(binary, *args, timeout=120):
    return subprocess.run([binary, "dispatch", *args], capture_output=True, text=True, timeout=timeout)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def nearest_rank(values, q):
    v = np.sort(values)
    k = max(1, int(np.ceil(q * len(v))))
    return v[k - 1]


def check_trace(trace, table):
    with h5py.File(trace, "r") as h:
        check(h.attrs["complete"] == 1, "trace marked complete")
        check(h.attrs["policies_complete"] == len(POLICIES), "every policy recorded")
        check(h.attrs["stopped_early"] == 0, "not stopped early")
        check("[class.big]" in h.attrs["job_text"], "job text stored")
        check("dispatch.self.chunk = 4" in h.attrs["effective_config"], "effective config stored")
        check(h.attrs["seed"] == 5, "seed stored")
        n = int(h.attrs["sessions"])
        check(n == 400, "400 sessions")
        work = h["sessions/work"][:]
        arrival = h["sessions/arrival"][:]
        check(np.allclose(work, 0.5 * h["sessions/prompt_tokens"][:] + h["sessions/new_tokens"][:]),
              "work = prompt_weight * prompt + new")
        check(h["sessions/work"].attrs["units"] == "tokens", "units attribute")

        # The routes: chains covering every block, speeds positive.
        w = h["workers"]
        nw = len(w["name"])
        check(nw == h.attrs["workers"], "workers attribute")
        span_start, span_end = h["servers/span_start"][:], h["servers/span_end"][:]
        for i in range(nw):
            pos = 0
            for hop in (int(x) for x in w["hops"][i].decode().split()):
                check(span_start[hop] <= pos < span_end[hop], f"route {i} hop {hop} holds block {pos}")
                pos = span_end[hop]
            check(pos == 24, f"route {i} covers all blocks")
        check(np.all(w["join_time"][:] < w["leave_time"][:]), "routes leave after they join")
        check(w.attrs["routes_broken"] > 0, "churn breaks routes")
        offset = w["profile_offset"][:]
        check(len(offset) == nw + 1 and offset[-1] == len(w["profile_time"]), "speed profile offsets")

        summary_policies = [p.decode() for p in h["summary/policy"][:]]
        check(summary_policies == POLICIES, "summary lists the policies in order")
        for row, name in enumerate(POLICIES):
            g = h[name]
            worker = g["worker"][:]
            finish = g["finish"][:]
            check(len(worker) == n and np.all(worker >= 0) and np.all(worker < nw),
                  f"{name}: every session completed on a real worker")
            check(np.all(np.isfinite(finish)), f"{name}: every session has a finish time")
            # Exactly once: the workers' completed sessions add up to the sessions.
            check(g["worker_tasks"][:].sum() == n, f"{name}: every session completed exactly once")
            check(np.all(g["start"][:] >= g["arrival"][:] - 1e-9), f"{name}: no start before arrival")
            check(np.all(finish >= g["start"][:]), f"{name}: finish after start")
            # Each session ran on a route alive at its finish.
            check(np.all(w["join_time"][:][worker] <= g["start"][:] + 1e-9) and
                  np.all(finish <= w["leave_time"][:][worker] + 1e-9),
                  f"{name}: sessions ran on routes alive at the time")
            makespan = finish.max() - arrival.min()
            a = g.attrs
            check(a["completed"] == n, f"{name}: completed attribute")
            check(np.isclose(a["makespan_s"], makespan, rtol=1e-12), f"{name}: makespan = max finish - min arrival")
            check(np.isclose(a["tokens_per_s"], work.sum() / makespan, rtol=1e-9), f"{name}: tokens/s = work / makespan")
            lat = g["latency"][:]
            check(np.allclose(lat, finish - arrival), f"{name}: latency = finish - arrival")
            check(np.isclose(a["latency_p50_s"], nearest_rank(lat, 0.50)), f"{name}: p50 is the nearest-rank median")
            check(np.isclose(a["latency_p99_s"], nearest_rank(lat, 0.99)), f"{name}: p99 nearest rank")
            check(a["migrations"] == g["migrations"][:].sum(), f"{name}: migrations = sum over sessions")
            check(a["migrations"] == a["migrations_join"] + a["migrations_leave"] + a["migrations_balance"],
                  f"{name}: migrations split by cause")
            check(a["sessions_migrated"] == (g["migrations"][:] > 0).sum(), f"{name}: sessions migrated")
            check(a["restarts"] == g["restarts"][:].sum(), f"{name}: restarts = sum over sessions")
            check(np.isclose(a["rebuild_tokens"], g["rebuild_tokens"][:].sum()), f"{name}: rebuild = sum over sessions")
            check(np.isclose(g["worker_tokens"][:].sum(), work.sum() + a["rebuild_tokens"], rtol=1e-9),
                  f"{name}: tokens processed = work + rebuild")
            busy = g["worker_busy_s"][:]
            alive = g["worker_alive_s"][:] > 0
            check(np.isclose(a["imbalance_busy"], busy[alive].max() / busy[alive].mean(), rtol=1e-9),
                  f"{name}: imbalance = max/mean busy over the routes alive")
            for col in ["makespan_s", "tokens_per_s", "latency_p99_s", "migrations", "rebuild_tokens",
                        "control_messages"]:
                check(h["summary"][col][row] == a[col], f"{name}: summary/{col} matches the attribute")
            # The table row shows the same numbers.
            cells = table.get(name)
            check(cells is not None, f"{name}: table row")
            if cells:
                check(int(cells[0]) == n, f"{name}: table done")
                check(abs(float(cells[1]) - a["makespan_s"]) < 1e-3, f"{name}: table makespan")
                check(abs(float(cells[5]) - a["latency_p50_s"]) < 1e-3, f"{name}: table p50")
                check(abs(float(cells[6]) - a["latency_p99_s"]) < 1e-3, f"{name}: table p99")
                check(int(cells[7]) == a["migrations"], f"{name}: table migrations")
                check(int(cells[9]) == a["control_messages"], f"{name}: table messages")
        # Policies that decide where the session enters spend no messages; bounded loads report
        # every finish.
        check(h["static"].attrs["control_messages"] == 0, "static sends no control message")
        check(h["bounded_hash"].attrs["control_messages"] >= n, "bounded_hash reports every finish")


def parse_table(stdout):
    rows = {}
    for line in stdout.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split()
        rows[parts[0]] = parts[1:]
    return rows


def datasets(path):
    out = {}
    with h5py.File(path, "r") as h:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
        h.visititems(visit)
    return out


def same(a, b):
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        if x.shape != y.shape:
            return False
        if x.dtype.kind == "f":
            if not np.array_equal(x, y, equal_nan=True):
                return False
        elif not np.array_equal(x, y):
            return False
    return True


def main():
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    job = os.path.join(work, "small.ini")
    write(job, JOB)

    # --help lists the keys with their defaults.
    p = run(binary, "--help")
    check(p.returncode == 0, "--help exits 0")
    for key in ["--dispatch.self.chunk arg (=4)", "--dispatch.hash.eps arg (=0.25)", "--run.horizon arg (=3600)",
                "--workload.sessions arg (=1000)", "speed_sigma (0)"]:
        check(key in p.stdout, f"--help shows {key}")

    # A good run.
    trace = os.path.join(work, "a.h5")
    p = run(binary, "--job", job, "--trace", trace)
    check(p.returncode == 0, f"good run exits 0 (rc={p.returncode}, {p.stderr})")
    check("(tokens/s)" in p.stdout and "(max/mean)" in p.stdout and "(count)" in p.stdout, "table header with units")
    check("# PASS" in p.stdout, "PASS footer")
    check("#   dispatch.policies = static,round_robin" in p.stdout, "effective config printed")
    table = parse_table(p.stdout)
    check(list(table) == POLICIES, f"one table row per policy, in order ({list(table)})")
    if p.returncode == 0:
        check_trace(trace, table)

    # Same seed: identical datasets (attributes such as `created` and `wall_s` may differ).
    again = os.path.join(work, "b.h5")
    p = run(binary, "--job", job, "--trace", again, "--quiet")
    check(p.returncode == 0, "second run exits 0")
    check("effective config" not in p.stdout and "policy" in p.stdout, "--quiet keeps only the table")
    if p.returncode == 0:
        check(same(datasets(trace), datasets(again)), "same seed gives identical trace datasets")
    other = os.path.join(work, "c.h5")
    p = run(binary, "--job", job, "--trace", other, "--quiet", "--run.seed", "6",
            "--dispatch.policies", "static,work_stealing", "--workload.sessions", "50")
    check(p.returncode == 0, "command-line overrides accepted")
    if p.returncode == 0:
        with h5py.File(other, "r") as h:
            check(h.attrs["seed"] == 6 and h.attrs["sessions"] == 50, "overrides reach the trace")
            check(sorted(k for k in h if k in POLICIES) == ["static", "work_stealing"], "only the listed policies")
            check(not np.array_equal(h["sessions/work"][:], datasets(trace)["sessions/work"][:50]),
                  "another seed draws other sessions")

    # Bad input: exit 2, the message names the file, the key and the value, and no trace.
    def bad(name, text, key, value, extra=(), where=None):
        path = os.path.join(work, f"bad_{name}.ini")
        write(path, text)
        out = os.path.join(work, f"bad_{name}.h5")
        if os.path.exists(out):
            os.remove(out)
        p = run(binary, "--job", path, "--trace", out, *extra)
        check(p.returncode == 2, f"{name}: exit 2 (rc={p.returncode}, {p.stderr.strip()})")
        where = where if where is not None else f"bad_{name}.ini"
        for part in [where, key, value]:
            check(part in p.stderr, f"{name}: message names '{part}' ({p.stderr.strip()})")
        check(not os.path.exists(out), f"{name}: no trace left behind")

    bad("policy", JOB + "[dispatch]\npolicies = static, fastest\n", "dispatch.policies", "fastest")
    bad("chunk", JOB + "[dispatch]\nself.chunk = 0\n", "dispatch.self.chunk", "'0'")
    bad("chunk_negative", JOB + "[dispatch]\nself.chunk = -3\n", "dispatch.self.chunk", "'-3'")
    bad("eps_zero", JOB + "[dispatch]\nhash.eps = 0\n", "dispatch.hash.eps", "'0'")
    bad("eps_negative", JOB + "[dispatch]\nhash.eps = -0.5\n", "dispatch.hash.eps", "'-0.5'")
    bad("unknown_key", JOB + "[dispatch]\nchunk_size = 8\n", "dispatch.chunk_size", "8")
    bad("class_key", JOB.replace("speed_sigma = 0.4", "speed_sigmaa = 0.4"), "class.big.speed_sigmaa", "0.4")
    bad("rebuild", JOB.replace("rebuild_fraction = 0.5", "rebuild_fraction = 1.5"), "engine.rebuild_fraction", "1.5")
    bad("graph", JOB + "[dispatch]\ndiffusion.graph = star\n", "dispatch.diffusion.graph", "star")
    bad("override", JOB, "dispatch.self.chunk", "0", extra=("--dispatch.self.chunk", "0"),
        where="command line")  # a bad override is blamed on the command line, not the file
    bad("unknown_override", JOB, "dispatch.chunk", "--dispatch.chunk", extra=("--dispatch.chunk", "3"), where="command line")
    # Amounts that only ran into the event guard (exit 1, a trace left) or exhausted memory.
    for name, key, value in [("rate", "workload.arrival_rate", "1e-300"), ("weight", "workload.prompt_weight", "1e+300"),
                             ("latency", "dispatch.message_latency_s", "1e+300"),
                             ("period", "dispatch.diffusion.period_s", "1e-300"),
                             ("vnodes", "dispatch.hash.virtual_nodes", "1000000"),
                             ("events", "engine.max_events", "-1"),
                             ("speeds", "class.big.speed_interval_s", "0.0001")]:
        bad("huge_" + name, JOB, key, value, extra=("--" + key, value), where="command line")
    bad("empty_class", JOB, "class..span", "", extra=("--class..span", "3"), where="command line")
    bad("twice_class", JOB, "class.big.span", "twice", extra=("--class.big.span", "3", "--class.big.span", "4"),
        where="command line")
    bad("no_route", JOB.replace("min_route_speed = 20", "min_route_speed = 1e9"), "churn.initial_servers", "40")

    # SIGTERM: the study stops after the running policy, with a complete trace, exit 3.
    slow = os.path.join(work, "slow.h5")
    proc = subprocess.Popen([binary, "dispatch", "--job", job, "--trace", slow, "--workload.sessions", "60000",
                             "--dispatch.policies", ",".join(POLICIES)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("# [ 1/13]"):
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=120)
    check(proc.returncode == 3, f"SIGTERM: exit 3 (rc={proc.returncode}, {err.strip()})")
    check("stopped early" in out, "SIGTERM: the table says so")
    with h5py.File(slow, "r") as h:
        done = int(h.attrs["policies_complete"])
        check(h.attrs["complete"] == 1 and h.attrs["stopped_early"] == 1, "SIGTERM: trace complete, stopped_early")
        check(1 <= done < len(POLICIES), f"SIGTERM: some policies recorded ({done})")
        check(len(h["summary/makespan_s"]) == done, "SIGTERM: summary rows = policies recorded")

    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
