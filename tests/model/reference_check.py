#!/usr/bin/env python3
"""ctest driver: swarm_model_run (C++) vs tests/reference/llama_reference.py (NumPy) vs the
transformers golden (expected.json) on one fixture, or C++ vs NumPy on a random model exported by
swarm_model_run --export. Tokens must be equal and logits within TOLERANCE * max |logit|.

    reference_check.py --tool build/src/model/swarm_model_run --fixture tests/data/model/tiny_f32_tied [--split 0,2,4]
    reference_check.py --tool ... --random-config cfg.json --seed 3 --workdir /tmp/x --prompt 1,2,3 --max-new-tokens 6
"""
import argparse
import json
import pathlib
import subprocess
import sys

import numpy as np

TOLERANCE = 1e-4  # fp32 re-association across implementations stays ~1e-6; see docs/model.md
REFERENCE = pathlib.Path(__file__).resolve().parents[1] / "reference" / "llama_reference.py"


def run(command):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"FAILED ({result.returncode}): {' '.join(command)}\n{result.stderr}")


def load(path, steps, batch):
    data = json.loads(pathlib.Path(path).read_text())
    return np.array(data["tokens"]), np.array(data["logits"], dtype=np.float64).reshape(steps, batch, -1)


def compare(name_a, a, name_b, b):
    tokens_a, logits_a = a
    tokens_b, logits_b = b
    rel = float(np.abs(logits_a - logits_b).max() / np.abs(logits_b).max())
    ok = np.array_equal(tokens_a, tokens_b) and rel <= TOLERANCE
    print(f"{name_a} vs {name_b}: tokens {'equal' if np.array_equal(tokens_a, tokens_b) else 'DIFFER'}, "
          f"max |dlogit| / max |logit| = {rel:.2e} (tolerance {TOLERANCE:g})")
    return ok


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True)
    parser.add_argument("--fixture")
    parser.add_argument("--split")
    parser.add_argument("--random-config")
    parser.add_argument("--seed", default="0")
    parser.add_argument("--workdir", default="/tmp")
    parser.add_argument("--prompt")
    parser.add_argument("--max-new-tokens", type=int, default=6)
    args = parser.parse_args()
    work = pathlib.Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    split = ["--split", args.split] if args.split else []

    if args.fixture:
        model_dir = pathlib.Path(args.fixture)
        expected = json.loads((model_dir / "expected.json").read_text())
        prompt = ";".join(",".join(map(str, p)) for p in expected["prompt"])
        steps, batch = expected["max_new_tokens"], expected["batch"]
        source = ["--model-dir", str(model_dir)]
    else:
        model_dir = work / "random_checkpoint"
        prompt, steps = args.prompt, args.max_new_tokens
        batch = prompt.count(";") + 1
        source = ["--config", args.random_config, "--seed", args.seed, "--export", str(model_dir)]

    cpp_json, ref_json = work / "cpp.json", work / "reference.json"
    run([args.tool, *source, "--prompt-tokens", prompt, "--max-new-tokens", str(steps), *split, "--json", str(cpp_json)])
    run([sys.executable, str(REFERENCE), "--model-dir", str(model_dir), "--prompt-tokens", prompt,
         "--max-new-tokens", str(steps), "--json", str(ref_json)])
    cpp, ref = load(cpp_json, steps, batch), load(ref_json, steps, batch)
    ok = compare("C++", cpp, "NumPy reference", ref)
    if args.fixture:
        golden = (np.array(expected["tokens"]), np.array(expected["logits"], dtype=np.float64))
        ok = compare("C++", cpp, "transformers", golden) and ok
        ok = compare("NumPy reference", ref, "transformers", golden) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
