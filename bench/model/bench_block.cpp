// bench_model_block: FLOP/s of one decoder block forward (CPU backend), next to the OpenBLAS
// cblas_sgemm rate measured in the same run on the block's own GEMM shapes.
//
//   prefill: one sequence of --tokens (default 1024) new tokens, as Petals measures throughput;
//   decode:  one new token after a --tokens long KV cache.
// The sgemm column times exactly the seven projection GEMMs of that phase (q, k, v, o, gate, up,
// down with M = tokens or 1), so "ratio" says how close the whole block (attention, norms, RoPE,
// SwiGLU included) gets to the BLAS it is built on. With several --dtypes the block is measured
// with its weight matrices held in each (model.weights_dtype), and a last table prints each
// dtype's prefill and decode tokens/s over f32's, measured in the same run.
//
// "bf16c" is bf16 weights with model.compute_dtype = bf16 (activations rounded to bf16, oneDNN).
//
//   bench_model_block [--sizes small,1b,7b] [--tokens 1024] [--reps 3] [--dtypes f32,bf16,f16,bf16c]
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

#include "block_shapes.hpp"
#include "swarm/model/model.hpp"
#include "swarm/util/clock.hpp"

using namespace swarm::model;

namespace {

using swarm::Clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Best-of-reps time of the block's seven projection GEMMs for `rows` token rows; returns FLOP/s.
double sgemm_rate(const ModelConfig& c, int rows, int reps) {
  const int h = c.hidden_size, i = c.intermediate_size;
  const int q = static_cast<int>(c.q_dim()), kv = static_cast<int>(c.kv_dim());
  struct Shape { int out, in; };
  const Shape shapes[] = {{q, h}, {kv, h}, {kv, h}, {h, q}, {i, h}, {i, h}, {h, i}};
  std::vector<std::vector<float>> weights, inputs, outputs;
  double flops = 0;
  for (const auto& s : shapes) {
    weights.push_back(swarm::bench::random_values(static_cast<std::size_t>(s.out) * s.in, 1));
    inputs.push_back(swarm::bench::random_values(static_cast<std::size_t>(rows) * s.in, 2));
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
  std::string model, dtype, phase;
  int tokens, context;
  double block_seconds, block_rate, gemm_rate;
};

void print(const Row& r) {
  std::printf("%-6s %-5s %-8s %7d %8d %11.3f %12.2f %12.2f %7.2f\n", r.model.c_str(), r.dtype.c_str(), r.phase.c_str(),
              r.tokens, r.context,
              r.block_seconds * 1e3, r.block_rate * 1e-9, r.gemm_rate * 1e-9, r.block_rate / r.gemm_rate);
}

struct Times {
  double prefill, decode;
};

// A weights dtype, or "bf16c": bf16 weights with model.compute_dtype = bf16 (bf16 activations).
struct Variant {
  std::string name;
  DType weights;
  DType compute;
};

Times bench(const std::string& name, ModelConfig c, const Variant& variant, int tokens, int reps) {
  c.weights_dtype = variant.weights;
  const std::string& d = variant.name;
  const RandomWeights weights(c, 1);
  ExecutorOptions options;
  options.compute = variant.compute;
  auto executor = make_executor(Backend::cpu, options);
  executor->load(weights, {0, 1});
  const auto prompt = swarm::bench::random_values(static_cast<std::size_t>(tokens) * c.hidden_size, 3);

  // Prefill: a fresh session each time.
  double prefill = 1e300;
  for (int r = 0; r < reps + 1; ++r) {
    auto x = prompt;
    const auto start = Clock::now();
    executor->forward(100 + r, 0, 1, x.data(), 1, tokens);
    if (r > 0) prefill = std::min(prefill, seconds_since(start));
    executor->drop_session(100 + r);
  }
  print({name, d, "prefill", tokens, 0, prefill, c.block_flops(tokens, 0) / prefill, sgemm_rate(c, tokens, reps)});

  // Decode: one token after a `tokens` cache; the context grows by one per repetition.
  auto x = prompt;
  executor->forward(1, 0, 1, x.data(), 1, tokens);
  double decode = 1e300;
  const int decode_reps = 4 * reps + 1;
  for (int r = 0; r < decode_reps; ++r) {
    auto step = swarm::bench::random_values(static_cast<std::size_t>(c.hidden_size), 4 + r);
    const auto start = Clock::now();
    executor->forward(1, 0, 1, step.data(), 1, 1);
    if (r > 0) decode = std::min(decode, seconds_since(start));
  }
  print({name, d, "decode", 1, tokens, decode, c.block_flops(1, tokens) / decode, sgemm_rate(c, 1, decode_reps)});
  return {prefill, decode};
}

}  // namespace

int main(int argc, char** argv) {
  std::string selected = "small,1b";
  std::string dtypes = "f32";
  int tokens = 1024, reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--sizes")) selected = argv[i + 1];
    else if (!std::strcmp(argv[i], "--tokens")) tokens = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dtypes")) dtypes = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: %s [--sizes small,1b,7b] [--tokens 1024] [--reps 3] [--dtypes f32,bf16,f16]\n",
                   argv[0]);
      return 2;
    }
  }
  std::vector<Variant> kinds;
  std::stringstream dtype_list(dtypes);
  for (std::string d; std::getline(dtype_list, d, ',');) {
    try {
      if (d == "bf16c") {
        kinds.push_back({d, DType::bf16, DType::bf16});
      } else {
        kinds.push_back({d, parse_dtype(d, "--dtypes"), DType::f32});
      }
    } catch (const ModelError& e) {
      std::fprintf(stderr, "%s (or bf16c: bf16 weights and bf16 compute)\n", e.what());
      return 2;
    }
  }
  if (kinds.empty() || kinds.front().name != "f32") kinds.insert(kinds.begin(), {"f32", DType::f32, DType::f32});
  std::printf("block forward (CPU; arithmetic fp32) vs OpenBLAS cblas_sgemm (fp32 weights) on the same shapes; %d threads\n",
              openblas_get_num_threads());
  std::printf("%-6s %-5s %-8s %7s %8s %11s %12s %12s %7s\n", "model", "dtype", "phase", "tokens", "context", "block_ms",
              "block_GF/s", "sgemm_GF/s", "ratio");
  std::vector<std::pair<std::string, std::vector<Times>>> results;
  std::stringstream list(selected);
  std::string name;
  while (std::getline(list, name, ',')) {
    const auto it = swarm::bench::block_sizes().find(name);
    if (it == swarm::bench::block_sizes().end()) {
      std::fprintf(stderr, "unknown size '%s' (small, 1b, 7b)\n", name.c_str());
      return 2;
    }
    try {
      std::vector<Times> times;
      for (const Variant& v : kinds) times.push_back(bench(name, it->second, v, tokens, reps));
      results.emplace_back(name, times);
    } catch (const ModelError& e) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), e.what());
      return 1;
    }
  }
  if (kinds.size() > 1) {
    std::printf("\ntokens/s with the weights in each dtype over f32's (same run):\n%-6s %-5s %9s %9s\n", "model",
                "dtype", "prefill", "decode");
    for (const auto& [name, times] : results) {
      for (std::size_t k = 1; k < kinds.size(); ++k) {
        std::printf("%-6s %-5s %8.2fx %8.2fx\n", name.c_str(), kinds[k].name.c_str(),
                    times[0].prefill / times[k].prefill, times[0].decode / times[k].decode);
      }
    }
  }
  return 0;
}
