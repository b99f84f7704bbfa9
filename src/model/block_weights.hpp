#pragma once
// Internal: one decoder block's weights as fp32 host arrays in Hugging Face layout
// (Linear weights [out, in] row-major; optional biases empty when absent).
#include <cstddef>
#include <vector>

#include "swarm/model/weights.hpp"

namespace swarm::model::detail {

struct BlockWeights {
  std::vector<float> input_norm, q, k, v, o, post_norm, gate, up, down;
  std::vector<float> q_bias, k_bias, v_bias, o_bias, gate_bias, up_bias, down_bias;

  /// Bytes of all arrays.
  [[nodiscard]] std::size_t bytes() const;
};

/// Reads and checks every tensor of block `layer` from `source`.
[[nodiscard]] BlockWeights load_block(const WeightSource& source, int layer);

}  // namespace swarm::model::detail
