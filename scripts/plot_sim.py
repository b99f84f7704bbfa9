#!/usr/bin/python3
"""Turns a swarm_sim trace into a PNG like the Petals paper's figure: swarm throughput over time
per strategy, the upper bound dashed, and the share of the bound underneath. A trace of a study
over seeds (--run.seeds) is drawn as each strategy's mean over the seeds, period by period, with
a band: the 95% confidence interval of that mean (Student's t).

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
         "full": ("tab:blue", "full balancing"), "upper_bound": ("black", "upper bound (optimal placement)"),
         "move_aware": ("tab:green", "move-aware planner")}
STRATEGIES = ["none", "new_only", "full", "move_aware", "upper_bound"]
# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom; 1.96 beyond.
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
       2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


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


def series(g, name):
    rows = int(g.attrs.get("periods_complete", len(g["time"])))  # a killed run's last row may be partial
    return g["time"][:rows] / 3600.0, g[name][:rows]


def runs(h):
    """The groups holding one run each: the root, or /seed_<n> of a study over seeds."""
    seeds = sorted((k for k in h if k.startswith("seed_")), key=lambda k: int(k[5:]))
    return [h[k] for k in seeds] if seeds else [h]


def mean_band(rows):
    """Per period: mean over runs and the half-width of its 95% CI (0 for a single run)."""
    n = min(len(r) for r in rows)
    a = np.array([r[:n] for r in rows], dtype=float)
    mean = np.nanmean(a, axis=0)
    if len(rows) < 2:
        return mean, np.zeros_like(mean)
    t = T95[len(rows) - 2] if len(rows) - 1 <= len(T95) else 1.96
    return mean, t * np.nanstd(a, axis=0, ddof=1) / np.sqrt(len(rows))


def plot(path, out):
    with h5py.File(path, "r") as h:
        if h.attrs.get("complete", 0) != 1:
            print(f"warning: {path} is not marked complete (run killed or still running)", file=sys.stderr)
        groups_of = runs(h)
        groups = [g for g in STRATEGIES if g in groups_of[0]]
        if not groups:
            raise KeyError("no strategy group (" + ", ".join(STRATEGIES) + "): not a swarm_sim trace")
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7.5), sharex=True,
                                          gridspec_kw={"height_ratios": [3, 1.4]})
        bound_drawn = False
        for name in groups:
            color, label = STYLE[name]
            t = None
            tputs, ratios = [], []
            for run in groups_of:
                t_run, tput = series(run[name], "swarm_throughput")
                _, ub = series(run[name], "upper_bound")
                t = t_run if t is None or len(t_run) < len(t) else t
                tputs.append(tput)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratios.append(np.where(ub > 0, tput / ub, np.nan))
            tput, tput_ci = mean_band(tputs)
            t = t[:len(tput)]
            if name == "upper_bound":
                top.plot(t, tput, "--", color=color, lw=1.6, label=label)
                bound_drawn = True
                continue
            top.plot(t, tput, color=color, lw=1.3, label=label)
            top.fill_between(t, tput - tput_ci, tput + tput_ci, color=color, alpha=0.2, lw=0)
            ratio, ratio_ci = mean_band(ratios)
            mean = f"mean {100 * np.nanmean(ratio):.1f}%" if np.isfinite(ratio).any() else "no period"
            bottom.plot(t, 100 * ratio, color=color, lw=1.1, label=f"{label}: {mean}")
            bottom.fill_between(t, 100 * (ratio - ratio_ci), 100 * (ratio + ratio_ci), color=color, alpha=0.2, lw=0)
        if not bound_drawn:
            t, ub = series(groups_of[0][groups[0]], "upper_bound")
            ub, _ = mean_band([series(run[groups[0]], "upper_bound")[1] for run in groups_of])
            top.plot(t[:len(ub)], ub, "--", color="black", lw=1.6, label=STYLE["upper_bound"][1])
        blocks = h.attrs.get("blocks", "?")
        if len(groups_of) > 1:
            what = f"{len(groups_of)} seeds ({h.attrs.get('seeds', '?')}): mean, 95% CI band"
        else:
            what = f"{len(h['servers/id'])} servers over the run, seed {h.attrs.get('seed', '?')}"
        top.set_ylabel("swarm throughput (tokens/s)")
        top.set_title(f"Balancing strategies: {blocks} blocks, {what}")
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
