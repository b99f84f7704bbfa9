#pragma once
// Host emulation of the subset of CUDA used by src/model/cuda/kernels_device.cuh, so the kernels'
// logic (indexing, barriers, reductions, online softmax) is tested without a GPU:
//  * one std::thread per CUDA thread; blocks run one after another;
//  * __syncthreads is a std::barrier over the block;
//  * __shfl_xor_sync exchanges through a block-wide slot array with two barriers (valid because
//    every shuffle in the kernels is executed by all threads of the block);
//  * __shared__ variables become statics (one block at a time), dynamic shared memory is a
//    buffer sized at launch; the _rn intrinsics are plain IEEE fp32 operations.
// What it cannot show: real-hardware issues (races hidden by the sequential block order, warp
// divergence bugs, device math library ulps, launch limits).
#include <barrier>
#include <bit>
#include <cmath>
#include <cstddef>
#include <thread>
#include <vector>

namespace emu {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

struct BlockState {
  Dim3 dim;
  Dim3 grid;
  std::barrier<>* barrier = nullptr;
  std::vector<float> slots;
  std::vector<float> dynamic_shared;
};

inline BlockState& state() {
  static BlockState s;
  return s;
}
inline thread_local Dim3 thread_index;
inline thread_local Dim3 block_index;

inline void sync() { state().barrier->arrive_and_wait(); }

inline float shfl_xor(float value, int offset) {
  BlockState& s = state();
  const unsigned t = thread_index.x;
  s.slots[t] = value;
  sync();
  const float other = s.slots[t ^ static_cast<unsigned>(offset)];
  sync();
  return other;
}

/// kernel() on every thread of every block of `grid`, `threads` threads per block.
template <typename Kernel>
void launch(Dim3 grid, unsigned threads, std::size_t shared_bytes, Kernel kernel) {
  BlockState& s = state();
  s.grid = grid;
  s.dim = {threads, 1, 1};
  s.slots.assign(threads, 0.0F);
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        s.dynamic_shared.assign(shared_bytes / sizeof(float) + 1, std::nanf(""));  // uninitialised
        std::barrier<> barrier(threads);
        s.barrier = &barrier;
        std::vector<std::thread> pool;
        pool.reserve(threads);
        for (unsigned t = 0; t < threads; ++t) {
          pool.emplace_back([=] {
            thread_index = {t, 0, 0};
            block_index = {x, y, z};
            kernel();
          });
        }
        for (auto& thread : pool) thread.join();
      }
    }
  }
}

}  // namespace emu

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define threadIdx (::emu::thread_index)
#define blockIdx (::emu::block_index)
#define blockDim (::emu::state().dim)
#define gridDim (::emu::state().grid)
#define SWARM_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(::emu::state().dynamic_shared.data())

inline void __syncthreads() { ::emu::sync(); }
inline float __shfl_xor_sync(unsigned /*mask*/, float value, int offset) { return ::emu::shfl_xor(value, offset); }
inline float __int_as_float(int bits) { return std::bit_cast<float>(bits); }
inline unsigned __float_as_uint(float value) { return std::bit_cast<unsigned>(value); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
using std::min;
