// bench_model_block: FLOP/s of one decoder block forward (CPU backend), next to the OpenBLAS
// cblas_sgemm rate measured in the same run on the block's own GEMM shapes.
//
//   prefill: one sequence of --tokens (default 1024) new tokens, as Petals measures throughput;
//   decode:  one new token after a --tokens long KV cache.
// The sgemm column times exactly the seven projection GEMMs of that phase (q, k, v, o, gate, up,
// down with M = tokens or 1), so "ratio" says how close the whole block (attention, norms, RoPE,
// SwiGLU included) gets to the BLAS it is built on.
//
//   bench_model_block [--sizes small,1b,7b] [--tokens 1024] [--reps 3]
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "swarm/model/model.hpp"

using namespace swarm::model;

namespace {

using Clock = std::chrono::steady_clock;

ModelConfig make_config(int hidden, int heads, int kv_heads, int intermediate) {
  ModelConfig c;
  c.vocab_size = 32000;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_hidden_layers = 1;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = hidden / heads;
  return c;
}

// Llama-shaped sizes: a small one, TinyLlama-1.1B's block (GQA 32/4) and Llama-2-7B's block.
const std::map<std::string, ModelConfig>& sizes() {
  static const std::map<std::string, ModelConfig> table = {
      {"small", make_config(768, 12, 12, 2048)},
      {"1b", make_config(2048, 32, 4, 5632)},
      {"7b", make_config(4096, 32, 32, 11008)},
  };
  return table;
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::vector<float> random_values(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0F, 1.0F);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Best-of-reps time of the block's seven projection GEMMs for `rows` token rows; returns FLOP/s.
double sgemm_rate(const ModelConfig& c, int rows, int reps) {
  const int h = c.hidden_size, i = c.intermediate_size;
  const int q = static_cast<int>(c.q_dim()), kv = static_cast<int>(c.kv_dim());
  struct Shape { int out, in; };
  const Shape shapes[] = {{q, h}, {kv, h}, {kv, h}, {h, q}, {i, h}, {i, h}, {h, i}};
  std::vector<std::vector<float>> weights, inputs, outputs;
  double flops = 0;
  for (const auto& s : shapes) {
    weights.push_back(random_values(static_cast<std::size_t>(s.out) * s.in, 1));
    inputs.push_back(random_values(static_cast<std::size_t>(rows) * s.in, 2));
    outputs.emplace_back(static_cast<std::size_t>(rows) * s.out);
    flops += 2.0 * rows * s.out * s.in;
  }
  double best = 1e300;
  for (int r = 0; r < reps + 1; ++r) {  // first round warms up
    const auto start = Clock::now();
    for (std::size_t k = 0; k < std::size(shapes); ++k) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, shapes[k].out, shapes[k].in, 1.0F,
                  inputs[k].data(), shapes[k].in, weights[k].data(), shapes[k].in, 0.0F, outputs[k].data(),
                  shapes[k].out);
    }
    if (r > 0) best = std::min(best, seconds_since(start));
  }
  return flops / best;
}

struct Row {
  std::string model, phase;
  int tokens, context;
  double block_seconds, block_rate, gemm_rate;
};

void print(const Row& r) {
  std::printf("%-6s %-8s %7d %8d %11.3f %12.2f %12.2f %7.2f\n", r.model.c_str(), r.phase.c_str(), r.tokens, r.context,
              r.block_seconds * 1e3, r.block_rate * 1e-9, r.gemm_rate * 1e-9, r.block_rate / r.gemm_rate);
}

void bench(const std::string& name, const ModelConfig& c, int tokens, int reps) {
  const RandomWeights weights(c, 1);
  auto executor = make_executor(Backend::cpu);
  executor->load(weights, {0, 1});
  const auto prompt = random_values(static_cast<std::size_t>(tokens) * c.hidden_size, 3);

  // Prefill: a fresh session each time.
  double prefill = 1e300;
  for (int r = 0; r < reps + 1; ++r) {
    auto x = prompt;
    const auto start = Clock::now();
    executor->forward(100 + r, 0, 1, x.data(), 1, tokens);
    if (r > 0) prefill = std::min(prefill, seconds_since(start));
    executor->drop_session(100 + r);
  }
  print({name, "prefill", tokens, 0, prefill, c.block_flops(tokens, 0) / prefill, sgemm_rate(c, tokens, reps)});

  // Decode: one token after a `tokens` cache; the context grows by one per repetition.
  auto x = prompt;
  executor->forward(1, 0, 1, x.data(), 1, tokens);
  double decode = 1e300;
  const int decode_reps = 4 * reps + 1;
  for (int r = 0; r < decode_reps; ++r) {
    auto step = random_values(static_cast<std::size_t>(c.hidden_size), 4 + r);
    const auto start = Clock::now();
    executor->forward(1, 0, 1, step.data(), 1, 1);
    if (r > 0) decode = std::min(decode, seconds_since(start));
  }
  print({name, "decode", 1, tokens, decode, c.block_flops(1, tokens) / decode, sgemm_rate(c, 1, decode_reps)});
}

}  // namespace

int main(int argc, char** argv) {
  std::string selected = "small,1b";
  int tokens = 1024, reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--sizes")) selected = argv[i + 1];
    else if (!std::strcmp(argv[i], "--tokens")) tokens = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::stoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: %s [--sizes small,1b,7b] [--tokens 1024] [--reps 3]\n", argv[0]);
      return 2;
    }
  }
  std::printf("block forward (CPU, fp32) vs OpenBLAS cblas_sgemm on the same shapes; %d threads\n",
              openblas_get_num_threads());
  std::printf("%-6s %-8s %7s %8s %11s %12s %12s %7s\n", "model", "phase", "tokens", "context", "block_ms",
              "block_GF/s", "sgemm_GF/s", "ratio");
  std::stringstream list(selected);
  std::string name;
  while (std::getline(list, name, ',')) {
    const auto it = sizes().find(name);
    if (it == sizes().end()) {
      std::fprintf(stderr, "unknown size '%s' (small, 1b, 7b)\n", name.c_str());
      return 2;
    }
    try {
      bench(name, it->second, tokens, reps);
    } catch (const ModelError& e) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), e.what());
      return 1;
    }
  }
  return 0;
}
