"""Developer check (not run by CI): our Python reference against the real Petals code.

Downloads the petals wheel from PyPI (no dependencies), imports block_selection.py with small
stand-ins for hivemind and the Petals data types, and compares both on random swarms.
usage: python3 tests/reference/check_against_petals.py [N]
"""
import os
import random
import subprocess
import sys
import tempfile
import types
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import petals_reference as ref  # noqa: E402


def load_petals_block_selection():
    tmp = tempfile.mkdtemp()
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "petals==2.2.0.post1", "-d", tmp],
                   check=True)
    wheel = [f for f in os.listdir(tmp) if f.endswith(".whl")][0]
    with zipfile.ZipFile(os.path.join(tmp, wheel)) as z:
        source = z.read("petals/server/block_selection.py").decode()
    hivemind = types.ModuleType("hivemind")
    hivemind.PeerID = str
    hivemind.get_logger = lambda name: types.SimpleNamespace(info=lambda *a, **k: None)
    sys.modules["hivemind"] = hivemind
    ds = types.ModuleType("petals.data_structures")
    ds.RemoteModuleInfo = ds.RemoteSpanInfo = object
    ds.ServerState = types.SimpleNamespace(OFFLINE=0, JOINING=1, ONLINE=2)
    dht = types.ModuleType("petals.utils.dht")
    dht.compute_spans = None
    for name, mod in {"petals": types.ModuleType("petals"), "petals.data_structures": ds,
                      "petals.utils": types.ModuleType("petals.utils"), "petals.utils.dht": dht}.items():
        sys.modules[name] = mod
    module = types.ModuleType("block_selection")
    exec(compile(source, "block_selection.py", "exec"), module.__dict__)
    return module


class Span:
    def __init__(self, s):
        self.peer_id, self.start, self.end, self.throughput = s["id"], s["start"], s["end"], s["throughput"]

    @property
    def length(self):
        return self.end - self.start


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    bs = load_petals_block_selection()
    rng = random.Random(1)
    mismatches = 0
    for trial in range(n):
        total = rng.randint(1, 40)
        servers = []
        for i in range(rng.randint(1, 20)):
            k = rng.randint(1, total)
            st = rng.randint(0, total - k)
            servers.append(dict(id=f"p{i:03d}", start=st, end=st + k, state="online",
                                throughput=rng.choice([0.0, 1.0, 2.0, rng.uniform(0, 10)])))
        spans = {s["id"]: Span(s) for s in servers}
        t_petals = bs.compute_throughputs(spans, total_blocks=total)
        t_ref = ref.block_throughputs(total, servers)
        assert list(t_petals) == t_ref, (trial, list(t_petals), t_ref)
        k = rng.randint(1, total)
        assert bs._choose_best_start(t_petals, k) == ref.best_start(t_ref, k), trial
        sid = rng.choice(servers)["id"]
        q = rng.choice([0.5, 0.75, 0.99])
        np.random.seed(trial)
        bs.compute_spans = lambda infos, min_state: {s["id"]: Span(s) for s in servers}
        bs.compute_spans.__name__ = "compute_spans"
        petals_move = bs.should_choose_other_blocks(sid, [None] * total, q)
        outcomes = {m for m, _ in ref.rule_two_outcomes(total, servers, sid, q)}
        if petals_move not in outcomes:
            mismatches += 1
    print(f"{n} swarms: block throughputs and best starts identical; rule 2 outside the reference's "
          f"outcomes: {mismatches}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
