"""swarm_sim end to end: the trace it writes, bad input, signals.

usage: test_sim_cli.py SWARM_SIM WORKDIR
"""
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

JOB = """
[model]
blocks = 24
hidden_size = 4096
[run]
duration = 1800
period = 60
seed = 5
balance_quality = 0.95
placement_time_limit = 0.1
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

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL", what)


def run(binary, *args, **kw):
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)


def main():
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    job = os.path.join(work, "small.ini")
    with open(job, "w") as f:
        f.write(JOB)

    # A good run: schema, shapes, invariants.
    trace = os.path.join(work, "small.h5")
    p = run(binary, "--job", job, "--trace", trace, "--quiet")
    check(p.returncode == 0, f"good run exits 0 (rc={p.returncode}, {p.stderr})")
    check("upper_bound" in p.stdout and "(tokens/s)" in p.stdout, "end-of-run table printed")
    with h5py.File(trace, "r") as h:
        check(h.attrs["complete"] == 1, "trace marked complete")
        check("[class.big]" in h.attrs["job_text"], "job text stored")
        n = len(h["servers/id"])
        for name in ["none", "new_only", "full", "upper_bound"]:
            g = h[name]
            rows = len(g["time"])
            check(rows == 30, f"{name}: 30 periods")
            check(g["block_throughput"].shape == (rows, 24), f"{name}: block_throughput shape")
            check(g["span_start"].shape == (rows, n), f"{name}: span_start shape")
            check(np.all(g["upper_bound"][:] + 1e-9 >= g["swarm_throughput_sampled"][:]), f"{name}: bound above")
            check(np.allclose(g["block_throughput"][:].min(axis=1), g["swarm_throughput_sampled"][:]),
                  f"{name}: sampled swarm throughput is the minimum block throughput")
            check(np.all(g["disjoint_time"][:] <= 60 + 1e-9), f"{name}: disjoint time within the period")
            present = (g["state"][:] > 0).sum(axis=1)
            check(np.array_equal(present, g["present"][:]), f"{name}: presence agrees with counts")
            check(g.attrs["periods_complete"] == rows, f"{name}: periods_complete")
        check(np.all(h["none/moves"][:] == 0) and np.all(h["new_only/moves"][:] == 0), "only full/ub move")

    # The plot script: a PNG from the trace; a clean one-line error, not a traceback, otherwise.
    plot = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "plot_sim.py")
    png = os.path.join(work, "small.png")
    p = subprocess.run([sys.executable, plot, trace, png], capture_output=True, text=True, timeout=120)
    check(p.returncode == 0 and os.path.getsize(png) > 10000, f"plot_sim.py writes a PNG: {p.stderr!r}")
    for bad, target in ((job, png), (trace, os.path.join(work, "no-such-dir", "x.png"))):
        p = subprocess.run([sys.executable, plot, bad, target], capture_output=True, text=True, timeout=120)
        check(p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and bad in p.stderr,
              f"plot_sim.py {bad} {target}: exit 1, one line: rc={p.returncode} {p.stderr!r}")

    # A trace on a filesystem that fills up: one line naming the file and errno 28, a trace
    # marked incomplete whose flushed periods read back, no reserve file left (a small tmpfs;
    # skipped, saying so, where mounting is not allowed).
    mnt = os.path.join(work, "tfs")
    os.makedirs(mnt, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt], capture_output=True).returncode != 0:
        print("SKIP full disk: cannot mount a tmpfs here")
    else:
        try:
            full = os.path.join(mnt, "full.h5")
            p = run(binary, "--job", job, "--trace", full, "--quiet", "--run.duration", "400000",
                    "--churn.arrival_rate", "0.0005", "--run.placement_time_limit", "0.01", timeout=120)
            lines = p.stderr.strip().splitlines()
            check(p.returncode != 0 and len(lines) == 1 and full in lines[0] and "errno 28" in lines[0],
                  f"full disk: non-zero exit, one line naming the file and errno 28: rc={p.returncode} {lines}")
            with h5py.File(full, "r") as h:
                check(h.attrs["complete"] == 0, "full disk: trace not marked complete")
                for name in ["none", "new_only", "full", "upper_bound"]:
                    rows = int(h[name].attrs["periods_complete"])
                    ok = rows >= 1 and all(np.all(np.isfinite(d[:rows])) for d in h[name].values())
                    check(ok, f"full disk: {name}: {rows} flushed periods read back")
            check(not any(f.endswith(".reserve") for f in os.listdir(mnt)), "full disk: no reserve file left")
        finally:
            subprocess.run(["umount", mnt], capture_output=True)

    # A job of the other mode says which command runs it.
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    for args, other, hint in ((["--job"], "dispatch-churn.ini", "run swarm_sim dispatch --job"),
                              (["dispatch", "--job"], "petals-appendix-e.ini", "run swarm_sim --job")):
        other_trace = os.path.join(work, "other.h5")
        p = run(binary, *args, os.path.join(src, "jobs", other), "--trace", other_trace)
        check(p.returncode == 2 and "unknown key" in p.stderr and hint in p.stderr and not os.path.exists(other_trace),
              f"{' '.join(args)} {other}: exit 2 naming the command that runs it: {p.stderr.strip()!r}")

    # Bad input: message names file, key and value; exit 2; no trace left behind.
    bad_cases = [
        ("[run]\nperiod = 0\n", ["run.period", "'0'"]),
        ("[run]\nbogus = 1\n", ["run.bogus"]),
        ("[class.big]\nspan = 25\n", ["class.big.span", "25"]),
        ("[churn]\narrival_rate = -1\n", ["churn.arrival_rate", "-1"]),
    ]
    for i, (extra, words) in enumerate(bad_cases):
        bad_job = os.path.join(work, f"bad{i}.ini")
        text = JOB
        for line in extra.strip().splitlines()[1:]:
            key = line.split("=")[0].strip()
            section = extra.splitlines()[0]
            lines = text.splitlines()
            start = lines.index(section)
            replaced = False
            for j in range(start + 1, len(lines)):
                if lines[j].startswith("["):
                    break
                if lines[j].split("=")[0].strip() == key:
                    lines[j] = line
                    replaced = True
            if not replaced:
                lines.insert(start + 1, line)
            text = "\n".join(lines) + "\n"
        with open(bad_job, "w") as f:
            f.write(text)
        bad_trace = os.path.join(work, f"bad{i}.h5")
        p = run(binary, "--job", bad_job, "--trace", bad_trace)
        check(p.returncode == 2, f"bad case {i}: exit 2 (got {p.returncode})")
        check(all(w in p.stderr for w in words + [bad_job]), f"bad case {i}: message names {words}: {p.stderr!r}")
        check(not os.path.exists(bad_trace), f"bad case {i}: no trace file")
    for where in ("/nonexistent-dir/x.h5", work):
        p = run(binary, "--job", job, "--trace", where)
        check(p.returncode == 2 and where in p.stderr and len(p.stderr.strip().splitlines()) == 1,
              f"unusable trace {where}: exit 2, one line naming it: rc={p.returncode} {p.stderr!r}")
    # A device as the trace (--trace /dev/null): refused, and the device left in place.
    device = os.path.join(work, "null-device")
    if not os.path.exists(device) and subprocess.run(["mknod", device, "c", "1", "3"]).returncode != 0:
        print("SKIP device trace: cannot mknod here")
    else:
        p = run(binary, "--job", job, "--trace", device)
        check(p.returncode == 2 and "not a regular file" in p.stderr and os.path.exists(device),
              f"trace on a device: exit 2, refused, device still there: rc={p.returncode} {p.stderr!r}")
    p = run(binary, "--job", job)
    check(p.returncode == 2, "missing --trace rejected")
    # The trace must never overwrite the job file it was asked to read.
    p = run(binary, "--job", job, "--trace", os.path.join(work, ".", "small.ini"))
    with open(job) as f:
        check(p.returncode == 2 and "job file" in p.stderr and f.read() == JOB,
              f"trace = job file refused, job file intact: rc={p.returncode} {p.stderr!r}")
    # Command-line values: checked like the file's, blamed on the command line; amounts that would
    # exhaust memory or never end a period are refused before any work.
    cli_cases = [
        (["--churn.arrival_rate", "1e20"], ["command line", "churn.arrival_rate", "1e+20", "100000"]),
        (["--run.placement_time_limit", "1e20"], ["command line", "run.placement_time_limit"]),
        (["--churn.initial_servers", "60000", "--churn.flash_crowd", "60 60000 10"],
         ["churn.flash_crowd", "servers, more than 100000"]),
        (["--run.check", "random", "--run.mean_check_period", "1e-6"], ["run.mean_check_period", "1,000"]),
        (["--run.duration", "1e300"], ["command line", "run.duration", "1e+300", "million periods"]),
        (["--run.seed", "-1"], ["run.seed"]),
        (["--class.big.span", "25"], ["command line", "class.big.span", "25"]),
        (["run.duration", "600"], ["unexpected argument 'run.duration'"]),
    ]
    for i, (args, words) in enumerate(cli_cases):
        bad_trace = os.path.join(work, f"cli{i}.h5")
        p = run(binary, "--job", job, "--trace", bad_trace, *args, timeout=60)
        check(p.returncode == 2 and all(w in p.stderr for w in words),
              f"command line {args}: exit 2 naming {words}: rc={p.returncode} {p.stderr!r}")
        check(not os.path.exists(bad_trace), f"command line {args}: no trace file")
    t = os.path.join(work, "class_override.h5")
    p = run(binary, "--job", job, "--trace", t, "--quiet", "--run.duration", "120", "--class.big.span", "6")
    check(p.returncode == 0, f"--class.big.span 6 accepted: {p.stderr!r}")
    if p.returncode == 0:
        with h5py.File(t, "r") as h:
            spans = set(h["servers/span_length"][:][h["servers/device_class"].asstr()[:] == "big"].tolist())
            check(spans == {6}, f"--class.big.span 6 reaches the servers: {spans}")

    # Signals: a long run. SIGTERM ends at a boundary with a complete trace; SIGKILL leaves a
    # readable trace marked incomplete.
    # Few arrivals: the trace grows by periods, not by 20,000 servers' columns (1.7 GB).
    long_args = ["--job", job, "--quiet", "--run.duration", "2000000", "--run.period", "60",
                 "--run.placement_time_limit", "0.05", "--churn.arrival_rate", "0.0001"]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        t = os.path.join(work, f"signal{int(sig)}.h5")
        proc = subprocess.Popen([binary, *long_args, "--trace", t], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(3)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        with h5py.File(t, "r") as h:
            rows = len(h["full/time"])
            check(rows > 0, f"signal {sig}: periods written before the signal")
            check(h["full/span_start"].shape[0] >= h["full"].attrs["periods_complete"], f"signal {sig}: rows")
            if sig == signal.SIGTERM:
                check(proc.returncode == 3, f"SIGTERM: exit 3 (got {proc.returncode})")
                check(h.attrs["complete"] == 1 and h.attrs["stopped_early"] == 1, "SIGTERM: complete, stopped early")
            else:
                check(h.attrs["complete"] == 0, "SIGKILL: trace not marked complete")
        dump = subprocess.run(["h5dump", "-H", t], capture_output=True, text=True)
        check(dump.returncode == 0, f"signal {sig}: h5dump reads the trace")

    # A second signal ends the run at once, even in a period that would take minutes (50,000
    # servers checking rule 2): exit by the signal, trace readable and marked incomplete.
    t = os.path.join(work, "second_signal.h5")
    proc = subprocess.Popen([binary, "--job", job, "--quiet", "--trace", t, "--churn.initial_servers", "50000",
                             "--run.strategies", "full"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
        check(proc.returncode == -signal.SIGINT, f"second signal: ended by it (rc={proc.returncode})")
        with h5py.File(t, "r") as h:
            check(h.attrs["complete"] == 0, "second signal: trace not marked complete")
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        check(False, "second signal: the run went on for 10 s")
    # The room a trace holds on its filesystem has no name: killed runs leave nothing beside it.
    left = [f for f in os.listdir(work) if f.startswith(".")]
    check(not left, f"signals: no hidden file left beside the traces ({left})")

    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
