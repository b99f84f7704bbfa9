#pragma once
// Internal: the CUDA kernels of one Llama block (fp32; bf16 only as the operands handed to
// cuBLAS), without their launchers. kernels.cu
// compiles them with nvcc; tests/model/test_kernels_emulated.cpp compiles the same text on the
// host with a thread-per-CUDA-thread emulation (tests/model/cuda_emulation.hpp), so their logic
// is tested on machines without a GPU. Keep to CUDA features that emulation provides.
#include <cstdint>

#define SWARM_CUDA_KERNEL_TYPES_ONLY
#include "kernels.hpp"  // RowInfo, CacheView only
#undef SWARM_CUDA_KERNEL_TYPES_ONLY

#ifndef SWARM_DYNAMIC_SHARED
#define SWARM_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

namespace swarm::model::cuda::kernels {

constexpr int kAttentionThreads = 128;
constexpr int kDimsPerThread = 4;  // head_dim <= 512 = kMaxHeadDim (kernels.hpp)
constexpr int kThreads = 256;

__device__ __forceinline__ float negative_infinity() { return __int_as_float(0xff800000); }

// Max or sum over the block; every thread gets the result. `red` holds one float per warp.
// The leading barrier lets callers reuse `red` (and publishes their shared writes).
template <bool kMax>
__device__ float block_reduce(float value, float* red) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffU, value, offset);
    value = kMax ? fmaxf(value, other) : value + other;
  }
  __syncthreads();
  if ((threadIdx.x & 31U) == 0) red[threadIdx.x >> 5] = value;
  __syncthreads();
  float result = red[0];
  const int warps = static_cast<int>(blockDim.x >> 5);
  for (int w = 1; w < warps; ++w) result = kMax ? fmaxf(result, red[w]) : result + red[w];
  return result;
}

__global__ void rms_norm_kernel(const float* x, const float* weight, float* out, int dim, float eps) {
  __shared__ float red[32];
  const float* in = x + static_cast<std::int64_t>(blockIdx.x) * dim;
  float* o = out + static_cast<std::int64_t>(blockIdx.x) * dim;
  float sum = 0.0F;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) sum += in[i] * in[i];
  const float variance = block_reduce<false>(sum, red) / static_cast<float>(dim);
  const float scale = 1.0F / sqrtf(variance + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = weight[i] * (in[i] * scale);
}

__global__ void add_bias_kernel(float* y, const float* bias, long long n, int cols) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    y[i] += bias[i % cols];
  }
}

__device__ void rotate(float* x, int heads, int half, const float* c, const float* s) {
  for (int idx = threadIdx.x; idx < heads * half; idx += blockDim.x) {
    const int head = idx / half;
    const int i = idx % half;
    float* x1 = x + static_cast<std::int64_t>(head) * 2 * half;
    const float a = x1[i];
    const float b = x1[i + half];
    x1[i] = __fadd_rn(__fmul_rn(a, c[i]), __fmul_rn(-b, s[i]));
    x1[i + half] = __fadd_rn(__fmul_rn(b, c[i]), __fmul_rn(a, s[i]));
  }
}

// One block per row; cos/sin of the row's position in shared memory (head_dim floats).
__global__ void rope_and_cache_kernel(float* q, float* k, const float* v, const float* inv_freq,
                                      const RowInfo* row_info, const CacheView* caches, int q_heads, int kv_heads,
                                      int head_dim) {
  SWARM_DYNAMIC_SHARED(float, table);
  const int half = head_dim / 2;
  float* c = table;
  float* s = table + half;
  const std::int64_t row = blockIdx.x;
  const RowInfo info = row_info[row];
  const CacheView cache = caches[info.segment];
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    const float angle = __fmul_rn(static_cast<float>(info.position), inv_freq[i]);  // fp32 product, as torch
    c[i] = static_cast<float>(cos(static_cast<double>(angle)));
    s[i] = static_cast<float>(sin(static_cast<double>(angle)));
  }
  __syncthreads();
  const int kv_dim = kv_heads * head_dim;
  float* q_row = q + row * q_heads * head_dim;
  float* k_row = k + row * kv_dim;
  rotate(q_row, q_heads, half, c, s);
  rotate(k_row, kv_heads, half, c, s);
  __syncthreads();
  const float* v_row = v + row * kv_dim;
  for (int idx = threadIdx.x; idx < kv_dim; idx += blockDim.x) {
    const int head = idx / head_dim;
    const std::int64_t slot =
        ((static_cast<std::int64_t>(info.sequence) * kv_heads + head) * cache.capacity + info.position) * head_dim +
        idx % head_dim;
    cache.k[slot] = k_row[idx];
    cache.v[slot] = v_row[idx];
  }
}

// One block per (row, query head). Keys are visited in chunks of 128: each thread scores one
// key, then the chunk is folded into a running (max, sum, output) online softmax, so no score
// matrix is stored and any cache length works. Rows of different sessions and positions share a
// launch: each reads its own sequence's cache up to its own position (causal).
__global__ void attention_kernel(const float* q, const RowInfo* row_info, const CacheView* caches, float* out,
                                 int q_heads, int kv_heads, int head_dim, float scale) {
  SWARM_DYNAMIC_SHARED(float, shared);
  float* q_s = shared;                        // head_dim
  float* p_s = shared + head_dim;             // kAttentionThreads
  float* red = p_s + kAttentionThreads;       // 32
  const std::int64_t row = blockIdx.x;
  const int head = blockIdx.y;
  const RowInfo info = row_info[row];
  const CacheView cache = caches[info.segment];
  const int kv_head = head / (q_heads / kv_heads);
  const float* q_row = q + (row * q_heads + head) * head_dim;
  const std::int64_t kv_offset =
      (static_cast<std::int64_t>(info.sequence) * kv_heads + kv_head) * cache.capacity * head_dim;
  const float* keys_base = cache.k + kv_offset;
  const float* values_base = cache.v + kv_offset;
  const int keys = info.position + 1;  // causal: this row sees positions 0..position
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) q_s[d] = q_row[d];
  __syncthreads();

  float running_max = negative_infinity();
  float running_sum = 0.0F;
  float acc[kDimsPerThread];
  for (int i = 0; i < kDimsPerThread; ++i) acc[i] = 0.0F;
  for (int base = 0; base < keys; base += kAttentionThreads) {
    const int j = base + static_cast<int>(threadIdx.x);
    float score = negative_infinity();
    if (j < keys) {
      const float* key = keys_base + static_cast<std::int64_t>(j) * head_dim;
      float dot = 0.0F;
      for (int d = 0; d < head_dim; ++d) dot += q_s[d] * key[d];
      score = dot * scale;
    }
    const float new_max = fmaxf(running_max, block_reduce<true>(score, red));
    const float p = j < keys ? expf(score - new_max) : 0.0F;
    p_s[threadIdx.x] = p;
    const float chunk_sum = block_reduce<false>(p, red);  // its barrier also publishes p_s
    const float correction = expf(running_max - new_max);  // 0 on the first chunk
    running_sum = running_sum * correction + chunk_sum;
    const int count = min(kAttentionThreads, keys - base);
    for (int i = 0; i < kDimsPerThread; ++i) {
      const int d = static_cast<int>(threadIdx.x) + i * kAttentionThreads;
      if (d < head_dim) {
        float a = acc[i] * correction;
        for (int jj = 0; jj < count; ++jj) a += p_s[jj] * values_base[static_cast<std::int64_t>(base + jj) * head_dim + d];
        acc[i] = a;
      }
    }
    running_max = new_max;
    __syncthreads();  // p_s is overwritten by the next chunk
  }
  float* o = out + (row * q_heads + head) * head_dim;
  for (int i = 0; i < kDimsPerThread; ++i) {
    const int d = static_cast<int>(threadIdx.x) + i * kAttentionThreads;
    if (d < head_dim) o[d] = acc[i] / running_sum;
  }
}

__global__ void swiglu_kernel(float* gate, const float* up, long long n) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    gate[i] = g / (1.0F + expf(-g)) * up[i];
  }
}

// fp32 to bf16 words, to nearest even, a NaN kept a quiet NaN: the rounding of the CPU's
// f32_to_bf16, so both backends round the operands of a bf16 product alike.
__global__ void to_bf16_kernel(const float* x, std::uint16_t* out, long long n) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const unsigned bits = __float_as_uint(x[i]);
    if ((bits & 0x7FFFFFFFU) > 0x7F800000U) {
      out[i] = static_cast<std::uint16_t>((bits >> 16) | 0x40U);
    } else {
      out[i] = static_cast<std::uint16_t>((bits + 0x7FFFU + ((bits >> 16) & 1U)) >> 16);
    }
  }
}

__global__ void residual_add_kernel(float* x, const float* delta, const float* bias, long long n, int dim) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    x[i] += bias != nullptr ? delta[i] + bias[i % dim] : delta[i];
  }
}

}  // namespace swarm::model::cuda::kernels
