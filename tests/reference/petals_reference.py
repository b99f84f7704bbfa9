"""An independent Python transcription of the Petals balancing rules.

Written from Petals' petals/server/block_selection.py (the rules as its functions state them),
not from the C++ code, so that the conformance test compares two implementations.
Plain Python floats (IEEE double) in Petals' order of operations.
"""
import random

EPS = 1e-3
STATES = {"offline": 0, "joining": 1, "online": 2}


def counted(servers):
    """Servers the rules count, in ascending id order."""
    return sorted((s for s in servers if STATES[s["state"]] >= 1 and s["end"] > s["start"]),
                  key=lambda s: s["id"])


def block_throughputs(total_blocks, servers):
    t = [0.0] * total_blocks
    for s in counted(servers):
        for b in range(s["start"], s["end"]):
            t[b] += s["throughput"]
    return t


def best_start(t, k):
    if not 1 <= k <= len(t):
        raise ValueError("k out of range")
    return min((sorted(t[i:i + k]), i) for i in range(len(t) - k + 1))[1]


def choose_best_blocks(total_blocks, servers, k):
    start = best_start(block_throughputs(total_blocks, servers), k)
    return start, start + k


def should_choose_other_blocks(total_blocks, servers, server_id, balance_quality, rng):
    """Returns (move, quality, stage). stage 'early' means decided before the random passes."""
    if balance_quality > 1.0:
        return True, None, "early"
    spans = {s["id"]: dict(start=s["start"], length=s["end"] - s["start"], t=s["throughput"])
             for s in counted(servers)}
    if server_id not in spans:
        raise ValueError("server not counted")
    t = block_throughputs(total_blocks, servers)
    initial = min(t)
    me = spans[server_id]
    for b in range(me["start"], me["start"] + me["length"]):
        t[b] -= me["t"] * (1 + EPS)
    if initial > EPS and min(t) <= 0:
        return False, None, "early"
    new_start = best_start(t, me["length"])
    if new_start == me["start"]:
        return False, None, "early"
    for b in range(me["start"], me["start"] + me["length"]):
        t[b] += me["t"] * EPS
    me["start"] = new_start
    for b in range(me["start"], me["start"] + me["length"]):
        t[b] += me["t"]
    moved = True
    while moved:
        order = sorted(spans)
        rng.shuffle(order)
        moved = False
        for sid in order:
            s = spans[sid]
            for b in range(s["start"], s["start"] + s["length"]):
                t[b] -= s["t"] * (1 + EPS)
            c = best_start(t, s["length"])
            for b in range(s["start"], s["start"] + s["length"]):
                t[b] += s["t"] * EPS
            if c != s["start"]:
                s["start"] = c
                moved = True
            for b in range(s["start"], s["start"] + s["length"]):
                t[b] += s["t"]
    new = min(t)
    if new < initial or new < EPS:
        return False, None, "late"
    quality = initial / new
    return quality < balance_quality - EPS, quality, "late"


def rule_two_outcomes(total_blocks, servers, server_id, balance_quality, orders=8):
    """Every (move, quality) the rule reached over `orders` random visiting orders."""
    outcomes = []
    for seed in range(orders):
        move, quality, stage = should_choose_other_blocks(total_blocks, servers, server_id, balance_quality,
                                                          random.Random(seed))
        outcomes.append((move, quality))
        if stage == "early":
            break
    return outcomes
