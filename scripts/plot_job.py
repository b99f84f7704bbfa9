#!/usr/bin/python3
"""Turns a swarm_pipe trace into a PNG: realised and predicted (announced) tokens/s per epoch on
top, and underneath each rank's span over the epochs: one bar per rank and epoch covering the
blocks it served, its colour its state (online, joining, offline), with moves, joins and leaves
marked. Only the epochs the trace marks complete (`epochs/epochs_complete`) are drawn.

usage: /usr/bin/python3 scripts/plot_job.py TRACE.h5 OUT.png
(Debian's /usr/bin/python3 has h5py and matplotlib; the python3 first on PATH may not.)
"""
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# ServerState in include/swarm/balance/swarm.hpp: offline 0, joining 1, online 2.
STATE_COLOUR = {0: "lightgrey", 1: "tab:orange", 2: "tab:blue"}


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    path, out = sys.argv[1], sys.argv[2]
    try:
        return plot(path, out)
    except (OSError, KeyError, ValueError) as e:  # not HDF5, not a swarm_pipe trace, an unwritable PNG
        print(f"plot_job.py: cannot plot {path} into {out}: {e}", file=sys.stderr)
        return 1


def plot(path, out):
    with h5py.File(path, "r") as h:
        if "epochs" not in h:
            raise KeyError("no /epochs group: not a swarm_pipe trace")
        e = h["epochs"]
        rows = int(e.attrs.get("epochs_complete", len(e["time"])))
        if rows == 0:
            raise ValueError("no complete epoch in the trace")
        if h.attrs.get("complete", 0) != 1:
            print(f"warning: {path} is not marked complete; drawing its {rows} flushed epochs", file=sys.stderr)
        get = lambda name: e[name][:rows]  # noqa: E731
        epoch = np.arange(1, rows + 1)
        realised, predicted = get("tokens_per_s"), get("predicted_throughput")
        start, end, state = get("span_start"), get("span_end"), get("state")
        moves, joined, left = get("moves"), get("joined"), get("left")
        blocks = int(h.attrs.get("blocks", end.max()))
        ranks = start.shape[1]

        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 4 + 0.35 * ranks + 2), sharex=True,
                                          gridspec_kw={"height_ratios": [2, 1 + 0.12 * ranks]})
        top.plot(epoch, realised, "o-", color="tab:blue", label="realised tokens/s")
        top.plot(epoch, predicted, "s--", color="black", label="predicted (announced swarm throughput)")
        total_r, total_p = realised.sum(), predicted.sum()
        ratio = f", realised / predicted {total_r / total_p:.2f} over the run" if total_p > 0 else ""
        top.set_title(f"swarm_pipe: {ranks} ranks, {blocks} blocks, strategy {h.attrs.get('strategy', '?')}{ratio}")
        top.set_ylabel("tokens/s")
        top.set_ylim(bottom=0)
        top.grid(alpha=0.3)
        for i in range(rows):
            events = [f"{int(moves[i])} moves" if moves[i] else "", f"{int(joined[i])} joined" if joined[i] else "",
                      f"{int(left[i])} left" if left[i] else ""]
            text = ", ".join(x for x in events if x)
            if text:
                top.annotate(text, (epoch[i], realised[i]), textcoords="offset points", xytext=(0, -14),
                             ha="center", fontsize=7, color="tab:red")
        top.legend(loc="lower right", fontsize=9)

        # Each rank a lane; each epoch a bar from its span's first block to its last.
        height = 0.8 / ranks
        for r in range(ranks):
            for i in range(rows):
                s, t, st = int(start[i, r]), int(end[i, r]), int(state[i, r])
                if t <= s:
                    continue
                x = epoch[i] - 0.4 + r * height
                bottom.bar(x, t - s, width=height * 0.9, bottom=s, align="edge",
                           color=STATE_COLOUR.get(st, "white"), edgecolor="black", lw=0.3)
                moved = i > 0 and (start[i, r] != start[i - 1, r] or end[i, r] != end[i - 1, r])
                if moved and st != 0:
                    bottom.plot(x + height * 0.45, t + 0.15, "v", color="tab:red", ms=4)
                if rows <= 12:
                    bottom.text(x + height * 0.45, s + 0.1, str(r), ha="center", va="bottom", fontsize=6)
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in STATE_COLOUR.values()]
        handles.append(plt.Line2D([], [], marker="v", color="tab:red", ls=""))
        bottom.legend(handles, ["offline", "joining", "online", "span changed"], loc="upper right", fontsize=8,
                      ncol=4)
        bottom.set_ylim(0, blocks * 1.18)
        bottom.set_ylabel("blocks (each bar: a rank's span)")
        bottom.set_xlabel("epoch (bars in rank order)")
        bottom.set_xticks(epoch)
        bottom.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out, dpi=130)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
