// Launchers of the CUDA kernels of one Llama block (the kernels are in kernels_device.cuh).
// fp32 throughout; no fast-math, and the RoPE rotation uses explicit round-to-nearest multiplies
// and adds so it matches the CPU path bit for bit.
#include "kernels.hpp"

#include "kernels_device.cuh"

namespace swarm::model::cuda {
namespace {

using namespace kernels;
static_assert(kMaxHeadDim == kAttentionThreads * kDimsPerThread, "attention kernel capacity");

unsigned grid_for(long long n, int threads) {
  const long long blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);
}

}  // namespace

cudaError_t rms_norm(const float* x, const float* weight, float* out, int rows, int dim, float eps,
                     cudaStream_t stream) {
  if (rows > 0) rms_norm_kernel<<<rows, kThreads, 0, stream>>>(x, weight, out, dim, eps);
  return cudaGetLastError();
}

cudaError_t add_bias(float* y, const float* bias, int rows, int cols, cudaStream_t stream) {
  const long long n = static_cast<long long>(rows) * cols;
  if (n > 0) add_bias_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(y, bias, n, cols);
  return cudaGetLastError();
}

cudaError_t rope_and_cache(float* q, float* k, const float* v, const float* inv_freq, const RowInfo* row_info,
                           const CacheView* caches, int rows, int q_heads, int kv_heads, int head_dim,
                           cudaStream_t stream) {
  const size_t shared = sizeof(float) * static_cast<size_t>(head_dim);
  if (rows > 0) {
    rope_and_cache_kernel<<<static_cast<unsigned>(rows), kThreads, shared, stream>>>(q, k, v, inv_freq, row_info,
                                                                                     caches, q_heads, kv_heads,
                                                                                     head_dim);
  }
  return cudaGetLastError();
}

cudaError_t attention(const float* q, const RowInfo* row_info, const CacheView* caches, float* out, int rows,
                      int q_heads, int kv_heads, int head_dim, float scale, cudaStream_t stream) {
  if (head_dim > kMaxHeadDim) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(q_heads));
  const size_t shared = sizeof(float) * static_cast<size_t>(head_dim + kAttentionThreads + 32);
  if (rows > 0) {
    attention_kernel<<<grid, kAttentionThreads, shared, stream>>>(q, row_info, caches, out, q_heads, kv_heads,
                                                                  head_dim, scale);
  }
  return cudaGetLastError();
}

cudaError_t swiglu(float* gate, const float* up, long long n, cudaStream_t stream) {
  if (n > 0) swiglu_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(gate, up, n);
  return cudaGetLastError();
}

cudaError_t to_bf16(const float* x, unsigned short* out, long long n, cudaStream_t stream) {
  static_assert(sizeof(unsigned short) == sizeof(std::uint16_t), "bf16 words");
  if (n > 0) to_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, reinterpret_cast<std::uint16_t*>(out), n);
  return cudaGetLastError();
}

cudaError_t residual_add(float* x, const float* delta, const float* bias, int rows, int dim, cudaStream_t stream) {
  const long long n = static_cast<long long>(rows) * dim;
  if (n > 0) residual_add_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, delta, bias, n, dim);
  return cudaGetLastError();
}

}  // namespace swarm::model::cuda
