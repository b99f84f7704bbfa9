#pragma once
// The block shapes both block benchmarks measure (bench_model_block on the CPU,
// bench_model_block_cuda on a GPU), so that their figures compare.
#include <map>
#include <random>
#include <string>
#include <vector>

#include "swarm/model/config.hpp"

namespace swarm::bench {

inline swarm::model::ModelConfig block_config(int hidden, int heads, int kv_heads, int intermediate) {
  swarm::model::ModelConfig c;
  c.vocab_size = 32000;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_hidden_layers = 1;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = hidden / heads;
  return c;
}

/// Llama-shaped sizes: a small one, TinyLlama-1.1B's block (GQA 32/4) and Llama-2-7B's block.
inline const std::map<std::string, swarm::model::ModelConfig>& block_sizes() {
  static const std::map<std::string, swarm::model::ModelConfig> table = {
      {"small", block_config(768, 12, 12, 2048)},
      {"1b", block_config(2048, 32, 4, 5632)},
      {"7b", block_config(4096, 32, 32, 11008)},
  };
  return table;
}

inline std::vector<float> random_values(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0F, 1.0F);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

}  // namespace swarm::bench
