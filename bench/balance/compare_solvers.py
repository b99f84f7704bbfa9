#!/usr/bin/env python3
"""The exact search against two general solvers on the same hard questions.

  /usr/bin/python3 bench/balance/compare_solvers.py BUILD_DIR [--time-limit 20] [--threads 2]
                   [--venv DIR] [--only SUBSTRING]

Each question is one target of docs/placement.md: can 64 servers cycling through the classes
(t:k) lift every one of 80 blocks to the target? It is asked of
  - ours:   `bench_placement --decide` (the exact search alone, as optimal_placement asks it;
            without the projections and the probes around it),
  - HiGHS:  its MIP solver on the class-aggregated integer programme
            (y[c][s] servers of class c starting at s, sum_s y[c][s] = n_c, one row a block),
  - CP-SAT: OR-Tools' CP-SAT on the same programme,
each with the same time limit and threads. Neither solver is in Debian 12, so they come from
PyPI (`highspy`, `ortools`, pinned below) into a virtual environment of their own (default
BUILD_DIR/solvers-venv, made on first use); the project itself does not depend on them.

Prints one row a question, then how many each decided and, where two decided, the ratio of
their seconds. Exit status 1 if two decisions contradict each other or the answer the docs
report (an independent check of the search's refutations), 0 otherwise, 2 for bad arguments.
"""
import argparse
import os
import subprocess
import sys
import time

PINNED = ["highspy==1.16.0", "ortools==9.15.6755"]

# (classes, target, known answer: True reached, False refuted, None open). The answers are the
# search's, or HiGHS's where the docs say so (docs/placement.md, "What is exact").
QUESTIONS = [
    ("1000:13,700:11,350:7", 6150, False),
    ("2100:40,1300:20,700:11,350:7", 24000, False),
    ("1900:12,400:17,2900:5,2900:28", 24800, False),
    ("3000:33,2500:5,1200:36,2800:31", 42400, False),
    ("300:32,1000:5,300:12,2800:19", 14100, False),
    ("500:24,900:24,600:23,2600:6", 12000, False),
    ("1200:24,900:29,1000:9,400:29", 14700, False),
    ("2800:31,1200:38,1800:15,1200:19,600:31", 31400, False),
    ("2500:22,2400:40,3000:33,2500:5,1200:36", 47600, False),
    ("1900:12,400:17,2900:5,2900:28,2900:31", 32600, True),
    ("1900:12,400:17,2900:5,2900:28,2900:31", 32700, False),
    ("2800:19,1200:24,900:29,1000:9,400:29", 20200, False),
    ("1400:36,2400:13,2600:21,1200:10,1900:34", 33200, False),
    ("500:7,800:16,2200:5,2200:6,2600:23", 15400, None),
    ("1800:19,1400:36,2400:13,2600:21,1200:10,1900:34", 32800, False),
    ("2000:30,1600:39,3000:14,800:22,2600:6,2200:21", 32600, True),
    ("1900:12,400:17,2900:5,2900:28,2900:31,700:38", 31000, False),
    ("2500:22,2400:40,3000:33,2500:5,1200:36,2800:31", 50000, True),
    ("2500:22,2400:40,3000:33,2500:5,1200:36,2800:31", 50100, False),
]
SERVERS, BLOCKS = 64, 80


def parse(classes):
    out = [tuple(int(v) for v in item.split(":")) for item in classes.split(",")]
    n = len(out)
    return [(t, k, SERVERS // n + (1 if c < SERVERS % n else 0)) for c, (t, k) in enumerate(out)]


def programme(classes):
    """Columns (c, s) and, per block, the columns covering it: the model both solvers get."""
    cols = [(c, s) for c, (_, k, _) in enumerate(classes) for s in range(BLOCKS - k + 1)]
    covering = [[j for j, (c, s) in enumerate(cols) if s <= b < s + classes[c][1]] for b in range(BLOCKS)]
    return cols, covering


_highs = []  # one instance for every question: each new one prints HiGHS's banner


def ask_highs(classes, target, limit, threads):
    import highspy
    import numpy as np
    cols, covering = programme(classes)
    if not _highs:
        _highs.append(highspy.Highs())
    h = _highs[0]
    h.clearModel()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(limit))
    h.setOptionValue("threads", threads)
    for c, _ in cols:
        h.addVar(0, classes[c][2])
    h.changeColsIntegrality(len(cols), np.arange(len(cols), dtype=np.int32),
                            np.array([highspy.HighsVarType.kInteger] * len(cols)))
    for c, (_, _, n) in enumerate(classes):
        idx = np.array([j for j, (cc, _) in enumerate(cols) if cc == c], dtype=np.int32)
        h.addRow(n, n, len(idx), idx, np.ones(len(idx)))
    for b in range(BLOCKS):
        idx = np.array(covering[b], dtype=np.int32)
        h.addRow(target, highspy.kHighsInf, len(idx), idx, np.array([float(classes[cols[j][0]][0]) for j in idx]))
    began = time.monotonic()
    h.run()
    seconds = time.monotonic() - began
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        return "reached", seconds
    if status == highspy.HighsModelStatus.kInfeasible:
        return "refuted", seconds
    return "out_of_time", seconds


def ask_cpsat(classes, target, limit, threads):
    from ortools.sat.python import cp_model
    cols, covering = programme(classes)
    m = cp_model.CpModel()
    y = [m.NewIntVar(0, classes[c][2], f"y{c}_{s}") for c, s in cols]
    for c, (_, _, n) in enumerate(classes):
        m.Add(sum(y[j] for j, (cc, _) in enumerate(cols) if cc == c) == n)
    for b in range(BLOCKS):
        m.Add(sum(classes[cols[j][0]][0] * y[j] for j in covering[b]) >= target)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(limit)
    solver.parameters.num_workers = threads
    began = time.monotonic()
    status = solver.Solve(m)
    seconds = time.monotonic() - began
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return "reached", seconds
    if status == cp_model.INFEASIBLE:
        return "refuted", seconds
    return "out_of_time", seconds


def ask_ours(build, classes, target, limit, threads):
    out = subprocess.run([os.path.join(build, "bin", "bench_placement"), "--decide", classes, "--target",
                          str(target), "--time-limit", str(limit), "--threads", str(threads)],
                         capture_output=True, text=True, timeout=limit * 3 + 60)
    if out.returncode != 0:
        sys.exit(f"compare_solvers: bench_placement --decide failed: {out.stderr.strip()}")
    outcome, _, seconds = out.stdout.split()
    return outcome, float(seconds)


def ensure_solvers(venv):
    """Re-runs this script inside a virtual environment that has the pinned solvers."""
    python = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    if not os.path.exists(python):
        print(f"compare_solvers: making {venv} with {' '.join(PINNED)} from PyPI", flush=True)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", *PINNED], check=True)
    os.execv(python, [python, *sys.argv])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("build")
    p.add_argument("--time-limit", type=float, default=20.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--venv", default=None)
    p.add_argument("--only", default="", help="only the questions whose classes contain this text")
    args = p.parse_args()
    if not (args.time_limit > 0) or args.threads < 1:
        p.error("need --time-limit > 0 and --threads >= 1")
    if not os.path.exists(os.path.join(args.build, "bin", "bench_placement")):
        p.error(f"no {args.build}/bin/bench_placement: build first")
    ensure_solvers(args.venv or os.path.join(os.path.abspath(args.build), "solvers-venv"))
    import highspy
    import ortools
    print(f"time limit {args.time_limit:g} s, {args.threads} threads; HiGHS {highspy.HIGHS_VERSION_MAJOR}.{highspy.HIGHS_VERSION_MINOR}.{highspy.HIGHS_VERSION_PATCH}, "
          f"OR-Tools {ortools.__version__}")

    solvers = {"ours": lambda c, t: ask_ours(args.build, c, t, args.time_limit, args.threads),
               "highs": lambda c, t: ask_highs(parse(c), t, args.time_limit, args.threads),
               "cpsat": lambda c, t: ask_cpsat(parse(c), t, args.time_limit, args.threads)}
    print(f"{'classes (64 servers cycling, 80 blocks)':<50} {'target':>7} {'known':>8}" +
          "".join(f" {name:>20}" for name in solvers))
    decided = {name: 0 for name in solvers}
    times = {name: [] for name in solvers}  # (question, seconds) where decided
    bad = 0
    questions = [q for q in QUESTIONS if args.only in q[0]]
    for classes, target, known in questions:
        row = {name: ask(classes, target) for name, ask in solvers.items()}
        answers = {o for o, _ in row.values() if o != "out_of_time"}
        if known is not None:
            answers.add("reached" if known else "refuted")
        flag = "  CONTRADICTION" if len(answers) > 1 else ""
        bad += len(answers) > 1
        known_text = "open" if known is None else ("reached" if known else "refuted")
        print(f"{classes:<50} {target:>7} {known_text:>8}" +
              "".join(f" {o:>11} {s:7.2f}s" for o, s in row.values()) + flag, flush=True)
        for name, (o, s) in row.items():
            if o != "out_of_time":
                decided[name] += 1
                times[name].append(((classes, target), s))
    print("decided within the limit: " + ", ".join(f"{n} {decided[n]} of {len(questions)}" for n in solvers))
    for other in ("highs", "cpsat"):
        mine = dict(times["ours"])
        both = [(mine[q], s) for q, s in times[other] if q in mine]
        if both:
            ratios = sorted(s / m for m, s in both)
            print(f"{other} seconds / ours, where both decided ({len(both)}): "
                  f"median {ratios[len(ratios) // 2]:.2f}, range {ratios[0]:.2f}-{ratios[-1]:.2f}")
    if bad:
        print(f"compare_solvers: {bad} question(s) with contradicting decisions", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
