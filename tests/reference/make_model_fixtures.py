#!/usr/bin/env python3
"""Builds the golden fixtures of tests/data/model/ with Hugging Face transformers.

Each fixture is a tiny random LlamaForCausalLM (Qwen2ForCausalLM, MistralForCausalLM) saved with save_pretrained (config.json plus
safetensors) and an expected.json holding the greedy generation of transformers on a fixed
prompt: the generated tokens and every step's logits (float32), computed in fp32 from the saved
(possibly BF16/F16-rounded) weights with the eager attention implementation.

Produced with: transformers 5.23.0, torch 2.15.0 (CPU), Python 3.11.7 (the first three), and
transformers 5.25.0, torch 2.15.0 (the Llama 3, Qwen2 and Mistral ones; see docs/model.md).
The C++ tests only read the committed files; torch is needed only to regenerate them:

    python3 -m venv /tmp/hfenv
    /tmp/hfenv/bin/pip install torch transformers safetensors numpy
    /tmp/hfenv/bin/python tests/reference/make_model_fixtures.py [--out tests/data/model] [--only NAME ...]

A prompt is kept only if every step's top-1 logit beats the runner-up by at least MIN_MARGIN of
the largest |logit|, so that fp32 rounding differences cannot flip a greedy choice.
"""
import argparse
import json
import pathlib
import shutil

import numpy as np
import torch
import transformers
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

FAMILIES = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM),
            "mistral": (MistralConfig, MistralForCausalLM)}

MIN_MARGIN = 2e-3  # relative to max |logit| of that step

FIXTURES = [
    # F32, GQA 4 query / 2 kv heads, tied embeddings (no lm_head.weight saved).
    dict(name="tiny_f32_tied", dtype=torch.float32, batch=1, prompt_len=11, max_new_tokens=8, shard=None,
         config=dict(vocab_size=97, hidden_size=64, intermediate_size=172, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=10000.0,
                     tie_word_embeddings=True)),
    # BF16, multi-query (1 kv head), rope_theta 500000, batch of 2, sharded with an index.json.
    dict(name="tiny_bf16_sharded", dtype=torch.bfloat16, batch=2, prompt_len=7, max_new_tokens=8, shard="150KB",
         config=dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=6,
                     num_attention_heads=4, num_key_value_heads=1, rms_norm_eps=1e-5, rope_theta=500000.0,
                     tie_word_embeddings=False)),
    # F16, head_dim 32 != hidden / heads, q/k/v/o and MLP biases, a 40-token prompt.
    dict(name="tiny_f16_headdim_bias", dtype=torch.float16, batch=1, prompt_len=40, max_new_tokens=8, shard=None,
         config=dict(vocab_size=112, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6,
                     rope_theta=10000.0, attention_bias=True, mlp_bias=True, tie_word_embeddings=False)),
    # BF16 Llama 3: rope_type llama3 with an original context of 32 positions, so that a 24-token
    # prompt plus 8 new tokens crosses every regime (kept, smoothed, divided by factor).
    dict(name="tiny_llama3_bf16", family="llama", dtype=torch.bfloat16, batch=1, prompt_len=24, max_new_tokens=8,
         shard=None,
         config=dict(vocab_size=120, hidden_size=64, intermediate_size=160, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                     rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                                          high_freq_factor=4.0, original_max_position_embeddings=32),
                     tie_word_embeddings=False)),
    # BF16 Qwen2: q/k/v biases, no o_proj bias, sliding window off, tied embeddings, batch of 2.
    dict(name="tiny_qwen2_bf16", family="qwen2", dtype=torch.bfloat16, batch=2, prompt_len=9, max_new_tokens=8,
         shard=None,
         config=dict(vocab_size=104, hidden_size=64, intermediate_size=144, num_hidden_layers=3,
                     num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
                     use_sliding_window=False, tie_word_embeddings=True)),
    # F32 Mistral: a sliding window (64) longer than every sequence, head_dim given.
    dict(name="tiny_mistral_f32", family="mistral", dtype=torch.float32, batch=1, prompt_len=13, max_new_tokens=8,
         shard=None,
         config=dict(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                     num_attention_heads=4, num_key_value_heads=1, head_dim=16, rms_norm_eps=1e-5,
                     rope_theta=10000.0, sliding_window=64, tie_word_embeddings=False)),
]


def build_model(spec, seed):
    config_class, model_class = FAMILIES[spec.get("family", "llama")]
    config = config_class(**spec["config"], initializer_range=0.125, max_position_embeddings=256)
    torch.manual_seed(seed)
    model = model_class(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):  # HF initialises norms to 1: perturb to test them
                param.copy_(1.0 + 0.1 * torch.randn_like(param))
            elif name.endswith(".bias"):      # HF initialises biases to 0
                param.copy_(0.05 * torch.randn_like(param))
    return model


def greedy(model, prompt, max_new_tokens):
    """transformers' own greedy search; returns tokens [batch, steps] and logits [steps, batch, vocab]."""
    model.generation_config.eos_token_id = None  # never stop early
    model.generation_config.pad_token_id = 0
    out = model.generate(torch.tensor(prompt), max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                         do_sample=False, num_beams=1, output_logits=True, return_dict_in_generate=True)
    tokens = out.sequences[:, len(prompt[0]):].numpy()
    logits = torch.stack(out.logits).float().numpy()
    return tokens, logits


def full_recompute_logits(model, prompt, tokens):
    """The same steps' logits by re-running the whole sequence without a cache (checks HF's cache)."""
    rows = []
    seq = torch.tensor(prompt)
    for step in range(tokens.shape[1]):
        with torch.no_grad():
            rows.append(model(seq, use_cache=False).logits[:, -1, :].float().numpy())
        seq = torch.cat([seq, torch.tensor(tokens[:, step:step + 1])], dim=1)
    return np.stack(rows)


def min_margin(logits):
    top2 = np.sort(logits, axis=-1)[..., -2:]
    scale = np.abs(logits).max(axis=-1)
    return float(((top2[..., 1] - top2[..., 0]) / scale).min())


def make_fixture(spec, out_root):
    directory = out_root / spec["name"]
    shutil.rmtree(directory, ignore_errors=True)
    model = build_model(spec, seed=len(spec["name"]))
    kwargs = {"max_shard_size": spec["shard"]} if spec["shard"] else {}
    model.to(spec["dtype"]).save_pretrained(directory, **kwargs)
    (directory / "generation_config.json").unlink(missing_ok=True)  # not part of the model

    # The golden: fp32 compute on the saved weights (BF16/F16 upcast exactly), eager attention.
    model_class = FAMILIES[spec.get("family", "llama")][1]
    golden = model_class.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager").eval()
    rng = np.random.default_rng(1234)
    vocab = spec["config"]["vocab_size"]
    for attempt in range(50):
        prompt = rng.integers(0, vocab, size=(spec["batch"], spec["prompt_len"])).tolist()
        tokens, logits = greedy(golden, prompt, spec["max_new_tokens"])
        if min_margin(logits) >= MIN_MARGIN:
            break
    else:
        raise RuntimeError(f"{spec['name']}: no prompt with a top-1 margin >= {MIN_MARGIN}")
    recomputed = full_recompute_logits(golden, prompt, tokens)
    sdpa = model_class.from_pretrained(directory, dtype=torch.float32, attn_implementation="sdpa").eval()
    sdpa_tokens, sdpa_logits = greedy(sdpa, prompt, spec["max_new_tokens"])
    assert (sdpa_tokens == tokens).all(), "eager and sdpa disagree on tokens"
    scale = float(np.abs(logits).max())
    expected = {
        "generator": f"transformers {transformers.__version__}, torch {torch.__version__}",
        "saved_dtype": str(spec["dtype"]).replace("torch.", ""),
        "prompt": prompt,
        "batch": spec["batch"],
        "max_new_tokens": spec["max_new_tokens"],
        "tokens": tokens.tolist(),
        "logits": logits.astype(np.float32).tolist(),  # [steps][batch][vocab]
        "min_top1_margin": min_margin(logits),
        "cache_vs_recompute_max_rel_diff": float(np.abs(recomputed - logits).max() / scale),
        "eager_vs_sdpa_max_rel_diff": float(np.abs(sdpa_logits - logits).max() / scale),
    }
    (directory / "expected.json").write_text(json.dumps(expected) + "\n")
    size = sum(f.stat().st_size for f in directory.iterdir())
    print(f"{spec['name']}: {size / 1024:.0f} KiB, tokens {tokens.tolist()}, margin {expected['min_top1_margin']:.2e}, "
          f"cache/recompute {expected['cache_vs_recompute_max_rel_diff']:.1e}, "
          f"sdpa {expected['eager_vs_sdpa_max_rel_diff']:.1e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parents[1] / "data" / "model"))
    parser.add_argument("--only", nargs="*", help="fixture names to (re)build; default all")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    for spec in FIXTURES:
        if args.only and spec["name"] not in args.only:
            continue
        make_fixture(spec, pathlib.Path(args.out))


if __name__ == "__main__":
    main()
