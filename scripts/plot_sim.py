#!/usr/bin/python3
"""Turns a swarm_sim trace into a PNG like the Petals paper's figure: swarm throughput over time
per strategy, the upper bound dashed, and the share of the bound underneath.

usage: /usr/bin/python3 scripts/plot_sim.py TRACE.h5 OUT.png
(Debian's /usr/bin/python3 has h5py and matplotlib; the python3 first on PATH may not.)
"""
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

STYLE = {"none": ("tab:red", "no balancing"), "new_only": ("tab:orange", "balancing new servers only"),
         "full": ("tab:blue", "full balancing"), "upper_bound": ("black", "upper bound (optimal placement)")}


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    path, out = sys.argv[1], sys.argv[2]
    try:
        return plot(path, out)
    except (OSError, KeyError, ValueError) as e:  # not HDF5, not a swarm_sim trace, an unwritable PNG or format
        print(f"plot_sim.py: cannot plot {path} into {out}: {e}", file=sys.stderr)
        return 1


def plot(path, out):
    with h5py.File(path, "r") as h:
        if h.attrs.get("complete", 0) != 1:
            print(f"warning: {path} is not marked complete (run killed or still running)", file=sys.stderr)
        groups = [g for g in ["none", "new_only", "full", "upper_bound"] if g in h]
        if not groups:
            raise KeyError("no strategy group (none, new_only, full, upper_bound): not a swarm_sim trace")
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7.5), sharex=True,
                                          gridspec_kw={"height_ratios": [3, 1.4]})
        bound_drawn = False
        for name in groups:
            g = h[name]
            rows = int(g.attrs.get("periods_complete", len(g["time"])))  # a killed run's last row may be partial
            t = g["time"][:rows] / 3600.0
            tput = g["swarm_throughput"][:rows]
            ub = g["upper_bound"][:rows]
            color, label = STYLE[name]
            if name == "upper_bound":
                top.plot(t, tput, "--", color=color, lw=1.6, label=label)
                bound_drawn = True
                continue
            top.plot(t, tput, color=color, lw=1.3, label=label)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(ub > 0, tput / ub, np.nan)
            mean = f"mean {100 * np.nanmean(ratio):.1f}%" if np.isfinite(ratio).any() else "no period"
            bottom.plot(t, 100 * ratio, color=color, lw=1.1, label=f"{label}: {mean}")
        if not bound_drawn and groups:
            g = h[groups[0]]
            rows = int(g.attrs.get("periods_complete", len(g["time"])))
            top.plot(g["time"][:rows] / 3600.0, g["upper_bound"][:rows], "--", color="black", lw=1.6, label=STYLE["upper_bound"][1])
        seed = h.attrs.get("seed", "?")
        blocks = h.attrs.get("blocks", "?")
        top.set_ylabel("swarm throughput (tokens/s)")
        top.set_title(f"Petals balancing strategies: {blocks} blocks, {len(h['servers/id'])} servers over the run, "
                      f"seed {seed}")
        top.grid(alpha=0.3)
        top.legend(loc="lower right", fontsize=9)
        top.set_ylim(bottom=0)
        bottom.set_ylabel("% of upper bound")
        bottom.set_xlabel("time (hours)")
        bottom.set_ylim(0, 105)
        bottom.grid(alpha=0.3)
        bottom.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(out, dpi=130)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
