#!/usr/bin/env python3
"""Independent NumPy reference of Hugging Face LlamaForCausalLM: forward pass and greedy decoding.

Reads a checkpoint directory in Hugging Face layout (config.json plus *.safetensors, or the files
named by model.safetensors.index.json) with its own safetensors parser (8-byte little-endian
header length, JSON header, raw little-endian data; F32, F16, BF16 converted to float32). All
arithmetic is float32. Deliberately shares nothing with the C++ library and takes a different
route: no KV cache, every step recomputes the whole sequence; attention via repeat_kv and dense
masked matrices as in transformers' eager path.

    /usr/bin/python3 tests/reference/llama_reference.py --model-dir tests/data/model/tiny_f32_tied \
        --prompt-tokens 1,2,3 --max-new-tokens 4 [--json out.json]

Needs only numpy (Debian's /usr/bin/python3 has it).
"""
import argparse
import json
import math
import pathlib
import struct
import sys

import numpy as np

F32 = np.float32


def read_safetensors(path):
    """name -> float32 array."""
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin:base + end]
        dtype = info["dtype"]
        if dtype == "F32":
            array = np.frombuffer(raw, dtype="<f4").astype(F32)
        elif dtype == "F16":
            array = np.frombuffer(raw, dtype="<f2").astype(F32)
        elif dtype == "BF16":
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(F32)
        else:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dtype}")
        tensors[name] = array.reshape(info["shape"])
    return tensors


def load_checkpoint(directory):
    directory = pathlib.Path(directory)
    config = json.loads((directory / "config.json").read_text())
    index = directory / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        paths = [directory / f for f in files]
    else:
        paths = sorted(directory.glob("*.safetensors"))
    tensors = {}
    for path in paths:
        tensors.update(read_safetensors(path))
    return config, tensors


class Llama:
    def __init__(self, config, tensors):
        self.w = tensors
        self.hidden = config["hidden_size"]
        self.heads = config["num_attention_heads"]
        self.kv_heads = config.get("num_key_value_heads") or self.heads
        self.head_dim = config.get("head_dim") or self.hidden // self.heads
        self.layers = config["num_hidden_layers"]
        self.eps = F32(config.get("rms_norm_eps", 1e-6))
        rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
        self.rope_type = rope.get("rope_type", rope.get("type", "default"))
        if self.rope_type not in ("default", "llama3"):
            raise ValueError(f"RoPE type {self.rope_type} is not implemented")
        self.rope_params = rope
        self.theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))
        # Mistral's window (Qwen2 only with use_sliding_window): key j is visible from query i
        # when i - window < j <= i.
        self.window = config.get("sliding_window") if config.get("model_type") == "mistral" else None
        if config.get("model_type") == "qwen2" and config.get("use_sliding_window"):
            self.window = config.get("sliding_window")
        self.embed = tensors["model.embed_tokens.weight"]
        tied = config.get("tie_word_embeddings", False)
        self.lm_head = tensors.get("lm_head.weight", self.embed if tied else None)
        if self.lm_head is None:
            raise KeyError("lm_head.weight missing and tie_word_embeddings is false")
        # inv_freq exactly as transformers computes it: float32 arange / dim, float32 pow.
        exponents = np.arange(0, self.head_dim, 2, dtype=F32) / F32(self.head_dim)
        self.inv_freq = (F32(1.0) / np.power(F32(self.theta), exponents, dtype=F32)).astype(F32)
        if self.rope_type == "llama3":
            self.inv_freq = self.llama3_scaling(self.inv_freq, self.rope_params)

    @staticmethod
    def llama3_scaling(freqs, p):
        """Llama 3's frequency scaling as Meta's reference apply_scaling writes it (float64 here)."""
        factor, low, high = p["factor"], p["low_freq_factor"], p["high_freq_factor"]
        old = p["original_max_position_embeddings"]
        out = []
        for freq in freqs.astype(np.float64):
            wavelen = 2 * math.pi / freq
            if wavelen < old / high:
                out.append(freq)
            elif wavelen > old / low:
                out.append(freq / factor)
            else:
                smooth = (old / wavelen - low) / (high - low)
                out.append((1 - smooth) * freq / factor + smooth * freq)
        return np.array(out).astype(F32)

    def rms_norm(self, x, weight):
        variance = np.mean(np.square(x, dtype=F32), axis=-1, keepdims=True, dtype=F32)
        return weight * (x * (F32(1.0) / np.sqrt(variance + self.eps)))

    def linear(self, x, name):
        y = x @ self.w[name + ".weight"].T
        bias = self.w.get(name + ".bias")
        return y + bias if bias is not None else y

    def rope(self, x, positions):
        freqs = positions.astype(F32)[:, None] * self.inv_freq[None, :]
        emb = np.concatenate([freqs, freqs], axis=-1)
        cos = np.cos(emb.astype(np.float64)).astype(F32)
        sin = np.sin(emb.astype(np.float64)).astype(F32)
        half = self.head_dim // 2
        rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * cos + rotated * sin

    def attention(self, x, prefix):
        batch, tokens, _ = x.shape
        q = self.linear(x, prefix + "q_proj").reshape(batch, tokens, self.heads, self.head_dim).transpose(0, 2, 1, 3)
        k = self.linear(x, prefix + "k_proj").reshape(batch, tokens, self.kv_heads, self.head_dim).transpose(0, 2, 1, 3)
        v = self.linear(x, prefix + "v_proj").reshape(batch, tokens, self.kv_heads, self.head_dim).transpose(0, 2, 1, 3)
        positions = np.arange(tokens)
        q, k = self.rope(q, positions), self.rope(k, positions)
        group = self.heads // self.kv_heads
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)  # repeat_kv
        scores = (q @ k.transpose(0, 1, 3, 2)) * F32(self.head_dim ** -0.5)
        mask = np.triu(np.ones((tokens, tokens), dtype=bool), k=1)
        if self.window:
            mask |= np.tril(np.ones((tokens, tokens), dtype=bool), k=-self.window)
        scores = np.where(mask, F32(-np.inf), scores)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = (scores / scores.sum(axis=-1, keepdims=True)).astype(F32)
        out = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, tokens, self.heads * self.head_dim)
        return self.linear(out, prefix + "o_proj")

    def mlp(self, x, prefix):
        gate = self.linear(x, prefix + "gate_proj")
        silu = gate / (F32(1.0) + np.exp(-gate))
        return self.linear(silu * self.linear(x, prefix + "up_proj"), prefix + "down_proj")

    def last_logits(self, tokens):
        """tokens [batch, seq] -> logits of the last position [batch, vocab]."""
        x = self.embed[np.asarray(tokens)]
        for i in range(self.layers):
            p = f"model.layers.{i}."
            x = x + self.attention(self.rms_norm(x, self.w[p + "input_layernorm.weight"]), p + "self_attn.")
            x = x + self.mlp(self.rms_norm(x, self.w[p + "post_attention_layernorm.weight"]), p + "mlp.")
        x = self.rms_norm(x[:, -1, :], self.w["model.norm.weight"])
        return (x @ self.lm_head.T).astype(F32)

    def greedy(self, prompt, max_new_tokens):
        sequence = np.asarray(prompt, dtype=np.int64)
        tokens, logits = [], []
        for _ in range(max_new_tokens):
            step = self.last_logits(sequence)
            choice = step.argmax(axis=-1)  # first maximum on ties, like torch.argmax
            logits.append(step)
            tokens.append(choice)
            sequence = np.concatenate([sequence, choice[:, None]], axis=1)
        return np.stack(tokens, axis=1), np.stack(logits)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--prompt-tokens", required=True, help="1,2,3 ; ';' separates a batch")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--json", help="write tokens [batch][steps] and logits [steps][batch][vocab]")
    args = parser.parse_args()
    prompt = [[int(t) for t in seq.split(",") if t] for seq in args.prompt_tokens.split(";")]
    model = Llama(*load_checkpoint(args.model_dir))
    tokens, logits = model.greedy(prompt, args.max_new_tokens)
    for row in tokens:
        print(",".join(str(t) for t in row))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"tokens": tokens.tolist(), "logits": logits.tolist()}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
