#!/usr/bin/env python3
"""The move-aware planner's study: every scenario over many seeds, with the goals checked.

Runs `swarm_sim --run.seeds` on each scenario (under `mpirun -n RANKS` when RANKS > 1), reads the
trace's /summary, and prints per scenario each strategy's mean ± 95% CI and whether move_aware
meets the goals of docs/simulator.md ("The move-aware study"):
  - it holds >= 97% of the best placement found (time average);
  - it makes <= 10% of full's moves and reload hours on the paper's scenario, fewer elsewhere;
  - where full or new_only hold less than 97%, move_aware is ahead of them by more than the
    95% CIs of both (the intervals do not overlap).
A goal missed is printed as MISS; the exit status is 0 either way (this is a study, not a test),
1 when a run fails.

usage: scripts/sim_study.py [--seeds 1-16] [--ranks 2] [--binary build/bin/swarm_sim]
                            [--out out/study] [--duration S] [SCENARIO.ini ...]
"""
import argparse
import os
import subprocess
import sys
import time

import h5py

PAPER = "jobs/petals-appendix-e.ini"
SCENARIOS = [PAPER, "jobs/departures-only.ini", "jobs/flash-crowd.ini", "jobs/gpu-class-loss.ini",
             "jobs/drifting-speeds.ini"]
FIGURES = [("ratio_to_upper_bound", "of best (%)", 100.0), ("mean_throughput", "tokens/s", 1.0),
           ("moves", "moves", 1.0), ("reload_hours", "reload (server-h)", 1.0)]


def summary(path):
    with h5py.File(path, "r") as f:
        out = {}
        for name, g in f["summary"].items():
            out[name] = {fig: (float(g.attrs[fig + "_mean"]), float(g.attrs[fig + "_ci95"]))
                         for fig, _, _ in FIGURES}
        return out, int(f.attrs["seeds_run"])


def run(scenario, args):
    name = os.path.splitext(os.path.basename(scenario))[0]
    trace = os.path.join(args.out, name + ".h5")
    cmd = [args.binary, "--job", scenario, "--trace", trace, "--run.seeds", args.seeds, "--quiet"]
    if args.duration:
        cmd += ["--run.duration", str(args.duration)]
    if args.ranks > 1:
        cmd = [args.mpirun, "-n", str(args.ranks)] + cmd
    began = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    took = time.monotonic() - began
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}")
    return name, trace, took


def goals(name, s, paper):
    lines = []
    ma = s.get("move_aware")
    if ma is None:
        return ["  (no move_aware in this study)"]
    ratio, ci = ma["ratio_to_upper_bound"]
    lines.append(("ok  " if ratio >= 0.97 else "MISS") + f" move_aware holds {100 * ratio:.2f} ± {100 * ci:.2f}% of the best placement (goal >= 97%)")
    if "full" in s:
        fm, fr = s["full"]["moves"][0], s["full"]["reload_hours"][0]
        mm, mr = ma["moves"][0], ma["reload_hours"][0]
        if paper:
            ok = mm <= 0.1 * fm and mr <= 0.1 * fr
            lines.append(("ok  " if ok else "MISS") + f" moves {mm:.0f} = {100 * mm / max(fm, 1e-9):.1f}% of full's, reload {100 * mr / max(fr, 1e-9):.1f}% of full's (goal <= 10%)")
        else:
            ok = mm < fm and mr < fr
            lines.append(("ok  " if ok else "MISS") + f" moves {mm:.0f} vs full's {fm:.0f}, reload {mr:.2f} vs {fr:.2f} server-h (goal: fewer)")
    for other in ("full", "new_only"):
        if other not in s:
            continue
        o, oci = s[other]["ratio_to_upper_bound"]
        if o >= 0.97:
            continue
        ahead = ratio - ci > o + oci
        lines.append(("ok  " if ahead else "MISS") + f" ahead of {other} ({100 * o:.2f} ± {100 * oci:.2f}%) by more than the CIs")
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenarios", nargs="*", default=SCENARIOS)
    p.add_argument("--seeds", default="1-16")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--binary", default="build/bin/swarm_sim")
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--out", default="out/study")
    p.add_argument("--duration", type=float, default=0, help="override run.duration (seconds)")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for scenario in args.scenarios:
        try:
            name, trace, took = run(scenario, args)
        except RuntimeError as e:
            print(f"sim_study: {e}", file=sys.stderr)
            return 1
        s, n = summary(trace)
        print(f"\n## {name}: {n} seeds ({args.seeds}), {args.ranks} rank(s), {took:.0f} s; trace {trace}")
        print(f"  {'strategy':<12}" + "".join(f"{label:>26}" for _, label, _ in FIGURES))
        for strategy, figs in s.items():
            cells = "".join(f"{figs[f][0] * k:>17.2f} ± {figs[f][1] * k:<6.2f}" for f, _, k in FIGURES)
            print(f"  {strategy:<12}{cells}")
        for line in goals(name, s, os.path.normpath(scenario) == os.path.normpath(PAPER)):
            print("  " + line)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
