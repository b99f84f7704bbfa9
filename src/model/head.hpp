#pragma once
// Internal: the final RMSNorm and LM head of ClientModel on a device (ClientModel::run_head_on).
#include <cstddef>
#include <memory>
#include <vector>

#include "block_weights.hpp"
#include "swarm/model/config.hpp"
#include "swarm/model/executor.hpp"

namespace swarm::model::detail {

class DeviceHead {
 public:
  virtual ~DeviceHead() = default;
  /// logits [rows, vocab] of host hidden rows [rows, hidden]: the rows go to the device, the
  /// logits come back; returns when they are in `out`.
  virtual void logits(const float* hidden, int rows, float* out) = 0;
  [[nodiscard]] virtual std::size_t weight_bytes() const = 0;
};

/// The CUDA head (CUDA builds): `lm_head` [vocab, hidden] held as the executor holds its
/// matrices for `options.compute` (fp32, or bf16 with bf16 products).
[[nodiscard]] std::unique_ptr<DeviceHead> make_cuda_head(const ModelConfig& config, const std::vector<float>& norm,
                                                         const Matrix& lm_head, const ExecutorOptions& options);

}  // namespace swarm::model::detail
