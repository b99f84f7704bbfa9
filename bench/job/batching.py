"""Batching: what continuous batching is worth on Llama-1B-shaped blocks (jobs/bench-1b.ini:
hidden 2048, MLP 5632, 16 heads, 4 KV heads, vocabulary 32000, 4 layers; 2 ranks of 2 blocks;
16-token prompts, 32 new tokens), measured in one run of this script:

  1 session    generated tokens/s with one session in flight (every forward has one row)
  32 sessions  the same with 32 sessions in flight                       goal: >= 8x the above
  limit        what the ranks compute with nothing holding them up, at the batch size the job
               ran (bench_compute_limit: rank 0's forwards plus its client's embeddings and LM
               head, a server rank's forwards; the slower bounds the pipeline)
               realised tokens/s through the pipeline / limit             goal: >= 0.70

Epoch 1 is left out (start-up, prefills of every session at once); the figures are medians
over the epochs after it.

usage: /usr/bin/python3 bench/job/batching.py BUILD_DIR [--epochs 4] [--epoch-seconds 4]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

import h5py
import numpy as np


def job(build, root, work, concurrency, epochs, seconds):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_mpi_yield_when_idle="1")
    trace = os.path.join(work, f"batching_{concurrency}.h5")
    p = subprocess.run(["mpiexec", "-n", "2", os.path.join(build, "bin", "swarm_pipe"), "--job",
                        os.path.join(root, "jobs", "bench-1b.ini"), "--trace", trace, "--quiet",
                        "--workload.concurrency", str(concurrency), "--run.epochs", str(epochs),
                        "--run.epoch_seconds", str(seconds)], capture_output=True, text=True, env=env, cwd=root)
    if p.returncode != 0:
        raise RuntimeError(f"swarm_pipe failed: {p.stderr[-400:]}")
    with h5py.File(trace, "r") as h:
        e = h["epochs"]
        fed = e["tokens_per_s"][1:]
        rows = fed * e["traffic_seconds"][1:] / np.maximum(e["batches"][1:], 1)
        return (float(np.median(e["generated_tokens_per_s"][1:])), float(np.median(fed)), float(np.median(rows)))


def limit(build, rows):
    p = subprocess.run([os.path.join(build, "bench", "job", "bench_compute_limit"), "--rows", str(max(1, round(rows))),
                        "--position", "32"], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"bench_compute_limit failed: {p.stderr[-400:]}")
    fields = p.stdout.strip().splitlines()[-1].split()
    return float(fields[5]), float(fields[6])  # server rank, rank 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build", nargs="?", default="build")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--epoch-seconds", type=float, default=4.0)
    args = parser.parse_args()
    if args.epochs < 2 or args.epoch_seconds <= 0:
        parser.error("need --epochs >= 2 and --epoch-seconds > 0")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    work = tempfile.mkdtemp()
    try:
        one_gen, one_fed, one_rows = job(args.build, root, work, 1, args.epochs, args.epoch_seconds)
        many_gen, many_fed, many_rows = job(args.build, root, work, 32, args.epochs, args.epoch_seconds)
        server, rank0 = limit(args.build, many_rows)
    except RuntimeError as e:
        print(f"# {e}\n# FAIL")
        return 1
    bound = min(server, rank0)
    speedup = many_gen / one_gen if one_gen > 0 else 0.0
    efficiency = many_fed / bound if bound > 0 else 0.0
    print(f"# {'run':<14} {'generated':>11} {'through':>11} {'rows':>7}")
    print(f"# {'':<14} {'(tokens/s)':>11} {'(tokens/s)':>11} {'(batch)':>7}")
    print(f"  {'1 session':<14} {one_gen:11.1f} {one_fed:11.1f} {one_rows:7.1f}")
    print(f"  {'32 sessions':<14} {many_gen:11.1f} {many_fed:11.1f} {many_rows:7.1f}")
    print(f"  {'limit':<14} {'':>11} {bound:11.1f} {round(many_rows):7d}   (server rank {server:.1f}, rank 0 with its client {rank0:.1f})")
    print(f"# 32 sessions / 1 session (generated): {speedup:.2f}x (goal >= 8)")
    print(f"# 32 sessions / compute limit (through the pipeline): {efficiency:.3f} (goal >= 0.70)")
    ok = speedup >= 8 and efficiency >= 0.7
    print("# PASS" if ok else "# FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
