#pragma once
// Internal: launchers of the CUDA kernels of one Llama block (fp32). Each returns the launch
// status (cudaGetLastError) for SWARM_CUDA_CHECK. Shared by kernels.cu (nvcc, C++17) and the
// host code (g++, C++20), hence plain pointers only.
#include <cuda_runtime_api.h>

namespace swarm::model::cuda {

/// out = weight * (x * rsqrt(mean(x^2) + eps)) per row of [rows, dim]; out may alias x.
cudaError_t rms_norm(const float* x, const float* weight, float* out, int rows, int dim, float eps,
                     cudaStream_t stream);

/// y[r, c] += bias[c] on [rows, cols].
cudaError_t add_bias(float* y, const float* bias, int rows, int cols, cudaStream_t stream);

/// Rotate-half RoPE on q [batch*tokens, q_heads*head_dim] and k [.., kv_heads*head_dim] at
/// positions past + t, then stores k and v at those positions of the caches
/// [batch][kv_heads][capacity][head_dim]. inv_freq has head_dim/2 entries (fp32, from the host).
cudaError_t rope_and_cache(float* q, float* k, const float* v, const float* inv_freq, float* k_cache,
                           float* v_cache, int batch, int tokens, int q_heads, int kv_heads, int head_dim, int past,
                           int capacity, cudaStream_t stream);

/// Causal GQA attention of the new tokens over the cache (positions 0..past+t), fp32 online
/// softmax; out is [batch*tokens, q_heads*head_dim]. head_dim <= 512.
cudaError_t attention(const float* q, const float* k_cache, const float* v_cache, float* out, int batch, int tokens,
                      int q_heads, int kv_heads, int head_dim, int past, int capacity, float scale,
                      cudaStream_t stream);

/// gate = silu(gate) * up over n elements.
cudaError_t swiglu(float* gate, const float* up, long long n, cudaStream_t stream);

/// x += delta (+ bias[c] when bias is not null) on [rows, dim].
cudaError_t residual_add(float* x, const float* delta, const float* bias, int rows, int dim, cudaStream_t stream);

/// Largest head_dim the attention kernel supports.
inline constexpr int kMaxHeadDim = 512;

}  // namespace swarm::model::cuda
