#!/usr/bin/python3
"""Bar charts of a dispatch study's metrics, one bar per policy (swarm_sim dispatch trace -> PNG).

usage: /usr/bin/python3 scripts/plot_dispatch.py TRACE.h5 [OUT.png]

Reads /summary (one row per finished policy, in the order of /summary/policy), so a trace cut
short by a signal plots the policies it has. Colours group the policies by family: decided on
arrival (push), self-scheduling from a central queue, and distributed (stealing, diffusion).
The best bar of each panel (ties included) is outlined in black, its value in bold; lower is better except for tokens/s.
Debian's /usr/bin/python3 has h5py, numpy and matplotlib (the first python3 on PATH may not).
"""
import os
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402
import numpy as np  # noqa: E402

FAMILY = {
    "static": "push", "round_robin": "push", "consistent_hash": "push", "bounded_hash": "push",
    "power_of_two": "push",
    "self_fixed": "self", "self_gss": "self", "self_factoring": "self",
    "self_weighted_factoring": "self", "self_tapering": "self",
    "work_stealing": "distributed", "diffusion1": "distributed", "diffusion2": "distributed",
}
COLOURS = {"push": "#4C72B0", "self": "#DD8452", "distributed": "#55A868"}
LABELS = {"push": "decided on arrival", "self": "self-scheduling (central queue)",
          "distributed": "distributed (stealing, diffusion)"}

# (summary column, title, unit, higher is better, log scale allowed)
PANELS = [
    ("makespan_s", "makespan", "s", False, True),
    ("tokens_per_s", "throughput", "tokens/s", True, False),
    ("imbalance_busy", "load imbalance across routes", "max/mean busy time", False, True),
    ("latency_p50_s", "median latency", "s", False, True),
    ("latency_p99_s", "p99 latency", "s", False, True),
    ("migrations", "sessions moved", "re-bindings", False, True),
    ("rebuild_tokens", "KV-cache rebuild work", "tokens", False, True),
    ("control_messages", "control messages", "messages", False, True),
]


def human(v):
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.3g}G"
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    if a >= 100 or a == int(a):
        return f"{v:.0f}"
    return f"{v:.3g}"


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    trace = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) == 3 else os.path.splitext(trace)[0] + ".png"
    try:
        return plot(trace, out)
    except (OSError, KeyError, ValueError) as e:  # not HDF5, not a dispatch trace, an unwritable PNG or format
        print(f"plot_dispatch.py: cannot plot {trace} into {out}: {e}", file=sys.stderr)
        return 1


def plot(trace, out):
    with h5py.File(trace, "r") as h:
        summary = h["summary"]
        rows = len(summary["makespan_s"])
        if rows == 0:
            print(f"{trace}: no policy finished", file=sys.stderr)
            return 1
        names = [p.decode() for p in summary["policy"][:rows]]
        data = {col: summary[col][:rows] for col, *_ in PANELS}
        completed = summary["completed"][:rows]
        sessions = int(h.attrs["sessions"])
        job = os.path.basename(str(h.attrs["job_file"]))
        workers = int(h.attrs["workers"])
        seed = int(h.attrs["seed"])
        w = h["workers"]
        at_start = int(w.attrs["routes_at_start"])
        broken = int(w.attrs["routes_broken"])
        complete = int(h.attrs["complete"]) == 1
        stopped = int(h.attrs.get("stopped_early", 0)) == 1

    y = np.arange(len(names))[::-1]  # first policy on top
    colours = [COLOURS[FAMILY.get(n, "push")] for n in names]
    fig, axes = plt.subplots(2, 4, figsize=(19, 9.5), sharey=True)
    for ax, (col, title, unit, higher, log_ok) in zip(axes.flat, PANELS):
        v = np.asarray(data[col], dtype=float)
        ax.barh(y, v, color=colours, height=0.7)
        positive = v[v > 0]
        use_log = log_ok and len(positive) > 0 and positive.max() / positive.min() > 50
        if use_log:
            ax.set_xscale("log")
            floor = positive.min() / 3
            ax.set_xlim(floor, positive.max() * 8)
        elif v.max() > 0:
            ax.set_xlim(0, v.max() * 1.3)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: human(x)))
        else:  # nothing to show: every policy scored 0
            ax.set_xlim(0, 1)
            ax.set_xticks([])
            ax.text(0.5, 0.5, "0 for every policy", transform=ax.transAxes, ha="center", va="center",
                    fontsize=11, color="0.4")
        # The best (ties included): outlined bar and bold value.
        target = v.max() if higher else v.min()
        best = np.isclose(v, target, rtol=1e-9, atol=0)
        ax.barh(y[best], v[best], color="none", edgecolor="black", linewidth=2, height=0.7)
        for yi, vi, b in zip(y, v, best):
            x = vi if (vi > 0 or not use_log) else ax.get_xlim()[0]
            ax.text(x, yi, " " + human(vi), va="center", ha="left", fontsize=8.5,
                    fontweight="bold" if b else "normal")
        ax.set_title(f"{title} ({'higher' if higher else 'lower'} is better)", fontsize=11)
        ax.set_xlabel(unit + (" (log scale)" if use_log else ""), fontsize=9.5)
        ax.grid(axis="x", alpha=0.3, which="both")
        ax.tick_params(axis="x", labelsize=8.5)
    for ax in axes[:, 0]:
        ax.set_yticks(y)
        ax.set_yticklabels(names, fontsize=10)
    incomplete = [n for n, c in zip(names, completed) if c < sessions]
    status = "" if complete and not stopped else "  [trace incomplete or stopped early]"
    fig.suptitle(f"Dispatch study {job}: {sessions:,} sessions over {workers:,} routes "
                 f"({at_start} at t = 0, {broken:,} ended by a server leaving), seed {seed}{status}",
                 fontsize=13)
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLOURS[k]) for k in COLOURS]
    note = "black outline and bold value: best in the panel"
    if incomplete:
        note += f"; NOT all sessions completed under: {', '.join(incomplete)}"
    fig.legend(handles, [LABELS[k] for k in COLOURS], loc="lower center", ncol=3, fontsize=10,
               title=note, title_fontsize=9.5, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    fig.savefig(out, dpi=110)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
