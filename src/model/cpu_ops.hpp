#pragma once
// Internal fp32 building blocks of the Llama forward on the CPU (OpenBLAS for the GEMMs).
// Each follows the Hugging Face formula and its fp32 operation order where that is cheap.
#include <cstdint>
#include <span>
#include <vector>

#include "swarm/model/config.hpp"

namespace swarm::model::detail {

struct Matrix;

/// out = weight * (x * rsqrt(mean(x^2) + eps)), row by row ([rows, dim]); out may alias x.
void rms_norm(const float* x, const float* weight, float* out, std::int64_t rows, int dim, float eps);

/// y[rows, out] = x[rows, in] * W^T (+ bias), W = [out, in] row-major (Hugging Face Linear).
void linear(const float* x, std::int64_t rows, int in, const float* weight, int out, const float* bias, float* y);

/// The same with W in its stored dtype (cpu_gemm16.cpp): bf16/f16 weights are widened to fp32
/// exactly, so the result is that of the fp32 product up to summation order.
void linear(const float* x, std::int64_t rows, int in, const Matrix& weight, int out, const float* bias, float* y);

/// model.compute_dtype = bf16: y = round_bf16(x) * W^T (+ bias), fp32 accumulation, W bf16.
/// Through oneDNN where the build has it (cpu_dnnl.cpp); otherwise x stays fp32 (linear above).
void linear_bf16(const float* x, std::int64_t rows, int in, const Matrix& weight, int out, const float* bias, float* y);
/// For the duration of a bf16-compute forward: oneDNN's OpenMP threads get the CPU thread budget
/// (set_cpu_threads) and OpenBLAS (attention) one thread, because the two pools wait for work by
/// spinning and, sharing the cores, stall each other (measured: 2 threads ran decode at 0.96x of
/// fp32 instead of 1.9x).
class Bf16Threads {
 public:
  Bf16Threads();
  ~Bf16Threads();
  Bf16Threads(const Bf16Threads&) = delete;
  Bf16Threads& operator=(const Bf16Threads&) = delete;

 private:
  int budget_ = 1;
};

/// Whether this build has the bf16 product (oneDNN), and whether this CPU runs it natively
/// (AVX512_BF16 or AMX; elsewhere oneDNN emulates it, slower than the fp32 path).
[[nodiscard]] bool bf16_compute_available();
[[nodiscard]] bool bf16_compute_native();

/// Tests only: true makes the 16-bit products take the portable loops even where AVX-512 is
/// available, so that both paths are tested on one machine.
void use_portable_gemm16(bool portable);

/// Hugging Face default RoPE frequencies in fp32: 1 / theta^(2i / head_dim), i < head_dim / 2.
[[nodiscard]] std::vector<float> rope_inv_freq(int head_dim, double theta);
/// The model's RoPE frequencies: the default ones, rescaled for rope_type llama3 as
/// transformers' _compute_llama3_parameters does (fp32 throughout).
[[nodiscard]] std::vector<float> rope_inv_freq(const ModelConfig& config);

/// cos and sin of position * inv_freq (fp32 product, accurately rounded cos/sin), half width.
void rope_cos_sin(std::int64_t position, std::span<const float> inv_freq, float* cos, float* sin);

/// Rotate-half RoPE in place on one token row of `heads` heads of width 2 * half:
/// x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin.
void apply_rope(float* row, int heads, int half, const float* cos, const float* sin);

/// gate = silu(gate) * up, elementwise.
void swiglu(float* gate, const float* up, std::int64_t n);

/// x += delta (+ bias per row of width `dim` when bias is not null).
void residual_add(float* x, const float* delta, const float* bias, std::int64_t rows, int dim);

/// In-place softmax of each of `rows` rows of length `cols`, ignoring entries at and after
/// valid[r] (they become 0): the causal mask.
void masked_softmax(float* scores, int rows, int cols, std::span<const int> valid);

/// Index of the first maximum (torch.argmax on ties).
[[nodiscard]] int argmax(std::span<const float> values);

}  // namespace swarm::model::detail
