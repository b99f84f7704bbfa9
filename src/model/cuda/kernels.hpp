// Internal: launchers of the CUDA kernels of one Llama block (fp32), and the per-row metadata
// of a batched forward. Shared by kernels.cu (nvcc, C++17) and the host code (g++, C++20), hence
// plain pointers and plain structs only.
//
// The metadata structs come first and need no CUDA header: kernels_device.cuh includes only
// them (SWARM_CUDA_KERNEL_TYPES_ONLY), so the host emulation of the kernels
// (tests/model/cuda_emulation.hpp) builds without the toolkit.
#ifndef SWARM_MODEL_CUDA_KERNEL_TYPES
#define SWARM_MODEL_CUDA_KERNEL_TYPES

namespace swarm::model::cuda {

/// Where one row of a batch belongs: its segment, its sequence within the segment (b of
/// Segment::batch) and its position (the cache slot it writes, the last key it sees).
struct RowInfo {
  int segment;
  int sequence;
  int position;
};

/// One segment's KV cache in one block: keys and values [batch][kv_heads][capacity][head_dim].
struct CacheView {
  float* k;
  float* v;
  int capacity;
};

}  // namespace swarm::model::cuda

#endif  // SWARM_MODEL_CUDA_KERNEL_TYPES

#if !defined(SWARM_CUDA_KERNEL_TYPES_ONLY) && !defined(SWARM_MODEL_CUDA_KERNELS)
#define SWARM_MODEL_CUDA_KERNELS

#include <cuda_runtime_api.h>

namespace swarm::model::cuda {

/// out = weight * (x * rsqrt(mean(x^2) + eps)) per row of [rows, dim]; out may alias x.
cudaError_t rms_norm(const float* x, const float* weight, float* out, int rows, int dim, float eps,
                     cudaStream_t stream);

/// y[r, c] += bias[c] on [rows, cols].
cudaError_t add_bias(float* y, const float* bias, int rows, int cols, cudaStream_t stream);

/// Rotate-half RoPE of each row r of q [rows, q_heads*head_dim] and k [rows, kv_heads*head_dim]
/// at position row_info[r].position, then stores its k and v at that position of sequence
/// row_info[r].sequence of caches[row_info[r].segment]. row_info and caches are device arrays;
/// inv_freq has head_dim/2 entries (fp32, from the host).
cudaError_t rope_and_cache(float* q, float* k, const float* v, const float* inv_freq, const RowInfo* row_info,
                           const CacheView* caches, int rows, int q_heads, int kv_heads, int head_dim,
                           cudaStream_t stream);

/// Causal GQA attention of each row r over its own sequence's cache, positions
/// 0..row_info[r].position, fp32 online softmax; out is [rows, q_heads*head_dim]. head_dim <= 512.
cudaError_t attention(const float* q, const RowInfo* row_info, const CacheView* caches, float* out, int rows,
                      int q_heads, int kv_heads, int head_dim, float scale, cudaStream_t stream);

/// gate = silu(gate) * up over n elements.
cudaError_t swiglu(float* gate, const float* up, long long n, cudaStream_t stream);

/// out[i] = x[i] rounded to bf16 (to nearest even; the words of __nv_bfloat16) over n elements.
cudaError_t to_bf16(const float* x, unsigned short* out, long long n, cudaStream_t stream);

/// x += delta (+ bias[c] when bias is not null) on [rows, dim].
cudaError_t residual_add(float* x, const float* delta, const float* bias, int rows, int dim, cudaStream_t stream);

/// Largest head_dim the attention kernel supports.
inline constexpr int kMaxHeadDim = 512;

}  // namespace swarm::model::cuda

#endif  // SWARM_MODEL_CUDA_KERNELS
