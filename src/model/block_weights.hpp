#pragma once
// Internal: one decoder block's weights as host arrays in Hugging Face layout (Linear weights
// [out, in] row-major; optional biases empty when absent). The projection matrices stay in their
// stored dtype (fp32, or bf16/f16 as raw 16-bit words); norms and biases are fp32.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "swarm/model/weights.hpp"

namespace swarm::model::detail {

/// A weight matrix in its stored dtype: `f32` holds the values when dtype is f32, `bits` the
/// bf16/f16 words otherwise.
struct Matrix {
  DType dtype = DType::f32;
  std::vector<float> f32;
  std::vector<std::uint16_t> bits;

  [[nodiscard]] std::size_t bytes() const { return f32.size() * sizeof(float) + bits.size() * sizeof(std::uint16_t); }
  [[nodiscard]] std::size_t elements() const { return dtype == DType::f32 ? f32.size() : bits.size(); }
  /// The values widened to fp32 (a copy).
  [[nodiscard]] std::vector<float> to_f32() const;
  /// Elements [first, first + count) widened into `out` (an embedding row).
  void widen_into(std::size_t first, std::size_t count, float* out) const;
  /// Widens the values to fp32 in place (dtype becomes f32).
  void widen();
  /// Rounds the values to bf16 in place (to nearest even; bf16 stays as it is).
  void round_to_bf16();
};

/// Reads `spec` from `source` in the dtype it is stored in.
[[nodiscard]] Matrix read_matrix(const WeightSource& source, const TensorSpec& spec);

struct BlockWeights {
  std::vector<float> input_norm, post_norm;
  Matrix q, k, v, o, gate, up, down;
  std::vector<float> q_bias, k_bias, v_bias, o_bias, gate_bias, up_bias, down_bias;

  /// Bytes of all arrays.
  [[nodiscard]] std::size_t bytes() const;
  /// Widens every matrix to fp32 (for backends that compute in fp32 only).
  void widen();
  /// Rounds every matrix to bf16 (model.compute_dtype = bf16).
  void round_to_bf16();
};

/// Reads and checks every tensor of block `layer` from `source`.
[[nodiscard]] BlockWeights load_block(const WeightSource& source, int layer);

}  // namespace swarm::model::detail
