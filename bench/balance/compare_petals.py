"""Rule 2 in C++ against Petals' own Python on the same swarm (the issue's 100x goal).

Runs bench_balance for the C++ time of a full should_choose_other_blocks decision, and times
Petals' real petals/server/block_selection.py (downloaded from PyPI, not committed) on the same
swarm and the same servers. Without network, falls back to tests/reference/petals_reference.py
(a plain-Python transcription; slower than Petals' numpy code, so the ratio is then flattering
and is labelled as such).
usage: /usr/bin/python3 bench/balance/compare_petals.py BUILD_DIR [SERVERS BLOCKS]
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "tests", "reference"))


def petals_module():
    sys.path.insert(0, os.path.join(here, "..", "..", "tests", "reference"))
    import check_against_petals  # noqa: E402  (its loader shims hivemind and Petals types)
    return check_against_petals.load_petals_block_selection(), check_against_petals.Span


def main():
    build = sys.argv[1]
    n, blocks = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (64, 80)
    binary = os.path.join(build, "bin", "bench_balance")
    swarm_file = os.path.join(tempfile.mkdtemp(), "swarm.json")
    subprocess.run([binary, "--write-swarm", str(n), str(blocks), swarm_file], check=True)
    swarm = json.load(open(swarm_file))
    servers = swarm["servers"]

    out = subprocess.run([binary, f"--benchmark_filter=BM_RuleTwo/{n}/{blocks}/", "--benchmark_format=json"],
                         capture_output=True, text=True, check=True).stdout
    cpp = json.loads(out)["benchmarks"][0]
    cpp_s = cpp["real_time"] * {"us": 1e-6, "ms": 1e-3, "ns": 1e-9, "s": 1.0}[cpp["time_unit"]]

    try:
        bs, Span = petals_module()
        label = "petals 2.2.0 block_selection.py (numpy)"

        def decide(sid):
            bs.compute_spans = lambda infos, min_state: {s["id"]: Span(s) for s in servers}
            return bs.should_choose_other_blocks(sid, [None] * blocks, 0.99)
    except Exception as e:  # no network: our transcription, labelled
        import petals_reference as ref
        import random
        label = f"tests/reference/petals_reference.py (plain Python; Petals unavailable: {type(e).__name__})"

        def decide(sid):
            return ref.should_choose_other_blocks(blocks, servers, sid, 0.99, random.Random(1))

    np.random.seed(0)
    ids, i, count = [], 0, 0
    began = time.perf_counter()
    while time.perf_counter() - began < 5.0 or count < 5:
        decide(servers[i]["id"])
        i = (i + 7919) % len(servers)
        count += 1
    py_s = (time.perf_counter() - began) / count

    print(f"# rule 2 (should_choose_other_blocks), {len(servers)} servers x {blocks} blocks, balance_quality 0.99")
    print(f"# {'implementation':<60} {'time/decision':>14}")
    print(f"  {'swarm_pipe C++ (bench_balance)':<60} {cpp_s * 1e3:11.3f} ms")
    print(f"  {label:<60} {py_s * 1e3:11.3f} ms")
    ratio = py_s / cpp_s
    print(f"# speed-up: {ratio:.0f}x (goal >= 100x) -> {'PASS' if ratio >= 100 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
