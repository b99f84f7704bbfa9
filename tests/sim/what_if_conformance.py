"""swarm_sim what-if against the independent Python reference on thousands of random swarms.

Checks what the issue promises: every block throughput within 1e-9 relative, every chosen
start exactly, every rule-2 decision one the rules allow (exactly the reference's when it is
decided before the random passes or when every sampled visiting order agrees), and that
malformed lines fail with the line number and the field.
usage: what_if_conformance.py SWARM_SIM [N]
"""
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
import petals_reference as ref  # noqa: E402


def random_swarm(rng, n_line):
    total = rng.randint(1, 100)
    n = rng.randint(1, 64)
    style = rng.choice(["float", "ties", "zeros"])
    servers = []
    for i in range(n):
        k = rng.randint(1, total)
        start = rng.randint(0, total - k)
        end = start + k if rng.random() > 0.03 else start  # a few empty spans
        if style == "float":
            t = rng.choice([0.0, rng.uniform(0, 1000), rng.expovariate(0.01)])
        elif style == "ties":
            t = float(rng.choice([0, 1, 2, 5]))
        else:
            t = rng.choice([0.0, 0.0, 1.5])
        state = rng.choice(["online", "online", "joining", "offline"])
        servers.append({"id": f"srv{rng.randint(0, 10**6):07d}-{i}", "start": start, "end": end,
                        "throughput": t, "state": state})
    rng.shuffle(servers)  # the program must sort by id itself
    queries = [{"op": "block_throughputs"}, {"op": "swarm_throughput"}]
    for _ in range(2):
        queries.append({"op": "choose_best_blocks", "num_blocks": rng.randint(1, total)})
    countable = [s["id"] for s in ref.counted(servers)]
    for _ in range(3 if countable else 0):
        q = rng.choice([0.5, 0.75, 0.9, 0.99, 1.0, 1.01, rng.uniform(0, 1.2)])
        queries.append({"op": "should_choose_other_blocks", "server": rng.choice(countable), "balance_quality": q})
    return {"total_blocks": total, "seed": n_line, "servers": servers, "queries": queries}


def close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def check_line(line, answer):
    total, servers = line["total_blocks"], line["servers"]
    problems = []
    for q, r in zip(line["queries"], answer["results"]):
        op = q["op"]
        if r["op"] != op:
            problems.append(f"op {r['op']} != {op}")
        elif op == "block_throughputs":
            want = ref.block_throughputs(total, servers)
            if len(want) != len(r["throughputs"]) or not all(close(a, b) for a, b in zip(want, r["throughputs"])):
                problems.append("block throughputs differ")
        elif op == "swarm_throughput":
            if not close(min(ref.block_throughputs(total, servers)), r["value"]):
                problems.append("swarm throughput differs")
        elif op == "choose_best_blocks":
            want = ref.choose_best_blocks(total, servers, q["num_blocks"])
            if [r["start"], r["end"]] != list(want):
                problems.append(f"choose_best_blocks {want} != {(r['start'], r['end'])}")
        else:
            outcomes = ref.rule_two_outcomes(total, servers, q["server"], q["balance_quality"])
            moves = {m for m, _ in outcomes}
            if r["move"] not in moves:
                problems.append(f"rule 2 move {r['move']} not in {moves}")
            else:
                # The quality depends on the visiting order (it is the simulated end state), so
                # it must match only where every sampled order gives the same value; otherwise
                # it must at least be consistent with the decision.
                qualities = {x for _, x in outcomes}
                got_q = r["quality"]
                if len(qualities) == 1:
                    want_q = outcomes[0][1]
                    if (want_q is None) != (got_q is None) or (want_q is not None and not close(want_q, got_q)):
                        # Rare orders reach other end states: look further before calling it wrong.
                        more = ref.rule_two_outcomes(total, servers, q["server"], q["balance_quality"], orders=400)
                        if not any(m == r["move"] and (x is None) == (got_q is None) and
                                   (x is None or close(x, got_q)) for m, x in more):
                            problems.append(f"rule 2 quality {got_q} != {want_q} (nor any of 400 orders)")
                elif got_q is not None and q["balance_quality"] <= 1.0 and \
                        r["move"] != (got_q < q["balance_quality"] - ref.EPS):
                    problems.append(f"rule 2 move {r['move']} inconsistent with quality {got_q}")
    return problems


def check_errors(binary):
    good = {"total_blocks": 4, "servers": [{"id": "a", "start": 0, "end": 4, "throughput": 1.0, "state": "online"}],
            "queries": [{"op": "swarm_throughput"}]}
    cases = [
        ("{not json", "(line)"),
        (json.dumps({**good, "total_blocks": "4"}), "total_blocks"),
        (json.dumps({k: v for k, v in good.items() if k != "servers"}), "servers"),
        (json.dumps({**good, "servers": [{**good["servers"][0], "end": 9}]}), "servers[0].end"),
        (json.dumps({**good, "servers": [{**good["servers"][0], "throughput": -1}]}), "servers[0].throughput"),
        (json.dumps({**good, "servers": [{**good["servers"][0], "state": "gone"}]}), "servers[0].state"),
        (json.dumps({**good, "servers": good["servers"] * 2}), "servers[1].id"),
        (json.dumps({**good, "queries": [{"op": "teleport"}]}), "queries[0].op"),
        (json.dumps({**good, "queries": [{"op": "should_choose_other_blocks", "server": "zz"}]}), "queries[0].server"),
        (json.dumps({**good, "queries": [{"op": "choose_best_blocks", "num_blocks": 5}]}), "queries[0].num_blocks"),
        (json.dumps({**good, "queries": [{"op": "plan", "strategy": "magic"}]}), "queries[0].strategy"),
        (json.dumps({**good, "queries": [{"op": "plan"}]}), "queries[0].strategy"),
        (json.dumps({**good, "queries": [{"op": "plan", "strategy": "move_aware", "horizon_s": -1}]}), "queries[0].horizon_s"),
        (json.dumps({**good, "queries": [{"op": "plan", "strategy": "move_aware", "load_seconds": {"zz": 1}}]}),
         "queries[0].load_seconds.zz"),
        (json.dumps({**good, "queries": [{"op": "plan", "strategy": "full", "load_seconds": [1]}]}), "queries[0].load_seconds"),
        (json.dumps({**good, "servers": [{**good["servers"][0], "throughput": "fast"}]}), "servers[0].throughput"),
        # Finite but so large that sums overflow to inf (answers would read null).
        (json.dumps({**good, "servers": [{**good["servers"][0], "throughput": 1e308}]}), "servers[0].throughput"),
        (json.dumps({**good, "total_blocks": 10_000_001}), "total_blocks"),
        # An inverted span is blamed on its start and called inverted.
        (json.dumps({**good, "total_blocks": 8, "servers": [{**good["servers"][0], "start": 5, "end": 2}]}),
         "servers[0].start"),
        # A million servers: refused by the count before the line is built (it used to hang).
        (json.dumps({**good, "servers": [{**good["servers"][0], "id": f"s{i}"} for i in range(1_000_000)]}), "servers"),
        # Nested 100,000 deep where a number belongs: the message must not recurse through it.
        (json.dumps(good).replace('"total_blocks": 4', '"total_blocks": ' + "[" * 100_000 + "]" * 100_000),
         "total_blocks"),
    ]
    failures = 0
    for bad, field in cases:
        text = json.dumps(good) + "\n" + bad + "\n"
        p = subprocess.run([binary, "what-if"], input=text, capture_output=True, text=True, timeout=60)
        ok = p.returncode != 0 and "line 2" in p.stderr and f"'{field}'" in p.stderr and p.stdout.count("\n") == 1
        if field == "servers[0].start":
            ok = ok and "inverted" in p.stderr
        if not ok:
            failures += 1
            print(f"FAIL malformed line not reported as field {field}: rc={p.returncode} stderr={p.stderr!r}")
    # Non-finite throughput written as a bare NaN is not JSON; 1e999 overflows a double inside the
    # parser, which must still end in a clean error (exit 2, not an abort) naming the field.
    overflow = [
        ('{"total_blocks":2,"servers":[{"id":"a","start":0,"end":1,"throughput":1e999,"state":"online"}],'
         '"queries":[]}', "servers[0].throughput"),
        ('{"total_blocks":2,"servers":[{"id":"a","start":0,"end":1,"throughput":1,"state":"online"},'
         '{"id":"b","start":0,"end":1,"throughput":-1e999,"state":"online"}],"queries":[]}',
         "servers[1].throughput"),
        ('{"total_blocks":2,"servers":[],"queries":[{"op":"swarm_throughput"},'
         '{"op":"should_choose_other_blocks","server":"a","balance_quality":1e400}]}',
         "queries[1].balance_quality"),
    ]
    for bad, field in overflow:
        p = subprocess.run([binary, "what-if"], input=bad + "\n", capture_output=True, text=True, timeout=60)
        if p.returncode != 2 or f"'{field}'" not in p.stderr or "line 1" not in p.stderr:
            failures += 1
            print(f"FAIL overflowing number not reported as field {field}: rc={p.returncode} stderr={p.stderr!r}")
    return failures


def delivered(total, servers, moves, horizon):
    """Throughput x seconds over `horizon` when `moves` start together: each mover off at once and
    on its new span after its load time (the planner's objective, recomputed here)."""
    times = sorted({0.0, horizon, *(min(m["load_seconds"], horizon) for m in moves)})
    by_id = {m["server"]: m for m in moves}
    total_value = 0.0
    for t, t_next in zip(times, times[1:]):
        now = []
        for s in servers:
            m = by_id.get(s["id"])
            if m is None:
                now.append(s)
            elif m["load_seconds"] <= t:
                now.append({**s, "start": m["to"][0], "end": m["to"][1]})
        total_value += min(ref.block_throughputs(total, now)) * (t_next - t)
    return total_value


def check_plans(binary, n=150):
    """{"op": "plan"}: move_aware's moves checked against the rules the planner promises."""
    rng = random.Random(20261207)
    lines = []
    for i in range(n):
        total = rng.randint(4, 40)
        servers = []
        for j in range(rng.randint(2, 24)):
            k = rng.randint(1, total)
            start = rng.randint(0, total - k)
            servers.append({"id": f"s{j:03d}", "start": start, "end": start + k,
                            "throughput": round(rng.uniform(1, 100), 3),
                            "state": rng.choice(["online", "online", "online", "joining"])})
        horizon = rng.choice([10.0, 100.0, 1000.0, 1800.0])
        per_block = rng.choice([0.0, 0.5, 2.0])
        lines.append({"total_blocks": total, "seed": i, "servers": servers,
                      "queries": [{"op": "plan", "strategy": "move_aware", "horizon_s": horizon,
                                   "load_seconds_per_block": per_block, "placement_time_limit_s": 0.02},
                                  {"op": "plan", "strategy": "upper_bound", "placement_time_limit_s": 0.02}]})
    text = "".join(json.dumps(line) + "\n" for line in lines)
    p = subprocess.run([binary, "what-if"], input=text, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        print("FAIL plan lines:", p.stderr)
        return 1
    failures = 0
    moved_lines = 0
    for line, out in zip(lines, (json.loads(x) for x in p.stdout.splitlines())):
        aware, best = out["results"]
        total, servers = line["total_blocks"], line["servers"]
        q = line["queries"][0]
        by_id = {s["id"]: s for s in servers}
        problems = []
        current = min(ref.block_throughputs(total, servers))
        after = [dict(s) for s in servers]
        for m in aware["moves"]:
            s = by_id[m["server"]]
            if s["state"] != "online":
                problems.append(f"{m['server']} moves while {s['state']}")
            if m["to"] == [s["start"], s["end"]] or m["to"][1] - m["to"][0] != s["end"] - s["start"]:
                problems.append(f"{m['server']} moves to its own span or another length: {m}")
            if abs(m["load_seconds"] - q["load_seconds_per_block"] * (s["end"] - s["start"])) > 1e-9:
                problems.append(f"{m['server']} load {m['load_seconds']}")
            for a in after:
                if a["id"] == m["server"]:
                    a["start"], a["end"] = m["to"]
        # No block that an online server covers is left without one while the movers reload.
        movers = {m["server"] for m in aware["moves"]}
        for b in range(total):
            covered = any(s["state"] == "online" and s["start"] <= b < s["end"] for s in servers)
            stays = any(s["state"] == "online" and s["id"] not in movers and s["start"] <= b < s["end"] for s in servers)
            if covered and not stays:
                problems.append(f"block {b} loses its last online server")
        planned = min(ref.block_throughputs(total, after))
        if not close(aware["planned"], planned, 1e-9) or not close(aware["current"], current, 1e-9):
            problems.append(f"planned/current {aware['planned']}/{aware['current']} vs {planned}/{current}")
        value = delivered(total, servers, aware["moves"], q["horizon_s"])
        if not close(aware["net"], value - current * q["horizon_s"], 1e-6):
            problems.append(f"net {aware['net']} vs {value - current * q['horizon_s']}")
        if aware["moves"]:
            moved_lines += 1
            if not value > current * q["horizon_s"]:
                problems.append("a plan that does not pay")
        if planned > aware["target"] * (1 + 1e-9) + 1e-12 or aware["target"] > best["target"] * (1 + 1e-9) + 1e-12:
            problems.append(f"planned {planned} above target {aware['target']} or target above upper_bound's {best['target']}")
        if problems:
            failures += 1
            if failures <= 5:
                print("FAIL plan:", json.dumps(line)[:200], problems[:3])
    if moved_lines < n // 4:
        failures += 1
        print(f"FAIL only {moved_lines} of {n} plans move anything")
    print(f"{n} plan queries: {moved_lines} with moves, {failures} failures")
    return failures


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    rng = random.Random(20261121)
    lines = [random_swarm(rng, i) for i in range(n)]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    p = subprocess.run([binary, "what-if"], input=text, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        print("what-if failed:", p.stderr)
        return 1
    answers = [json.loads(x) for x in p.stdout.splitlines()]
    if len(answers) != n:
        print(f"expected {n} answer lines, got {len(answers)}")
        return 1
    bad = 0
    queries = 0
    for i, (line, answer) in enumerate(zip(lines, answers)):
        queries += len(line["queries"])
        problems = check_line(line, answer)
        if problems:
            bad += 1
            if bad <= 10:
                print(f"line {i + 1}: {problems}")
    failures = check_errors(binary) + check_plans(binary)
    print(f"{n} swarms, {queries} queries: {bad} lines disagree with the reference; {failures} error-handling failures")
    return 1 if bad or failures else 0


if __name__ == "__main__":
    sys.exit(main())
