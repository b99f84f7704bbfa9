#pragma once
// Raw NCCL point-to-point for bench_transport: the like-for-like baseline of the NCCL transport
// (ncclSend/ncclRecv on a communicator and stream of its own, nothing in between). No CUDA or
// NCCL header here: raw_nccl.cpp has them and is built only with SWARM_HAVE_CUDA, which then
// defines SWARM_BENCH_RAW_NCCL; otherwise the stubs at the end of this file stand in, and the
// bench refuses --transport nccl before it would reach them.
#include <cstddef>
#include <memory>
#include <span>

#include "swarm/comm/errors.hpp"
#include "swarm/comm/mpi_world.hpp"

namespace swarm::bench {

/// One NCCL communicator over the two ranks of `comm`, bound to `device`, with its own stream.
class RawNccl {
 public:
  /// Collective over `comm` (exactly 2 ranks); connects the pair, so the first timed transfer
  /// does not pay NCCL's lazy connection. Every wait fails after `timeout`.
  RawNccl(const comm::Communicator& comm, int device, comm::Seconds timeout);
  RawNccl(const RawNccl&) = delete;
  RawNccl& operator=(const RawNccl&) = delete;
  ~RawNccl();

  /// The initiator's half of a round trip: sends `floats` from device memory `send` to `peer`,
  /// then receives as many into `recv`; returns once both completed.
  void ping(int peer, const float* send, float* recv, std::size_t floats);
  /// The echo's half: receives `floats` from `peer` into device memory `data`, sends them back.
  void pong(int peer, float* data, std::size_t floats);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Synchronous copies between host memory and device memory on the current device (for pooled
/// device rows, which have no copy functions of their own).
void copy_to_device(float* device, std::span<const float> host);
void copy_to_host(std::span<float> host, const float* device);

#if !SWARM_BENCH_RAW_NCCL
struct RawNccl::Impl {};
[[noreturn]] inline void raw_nccl_missing() {
  throw comm::DeviceError("the raw NCCL baseline needs a CUDA build (SWARM_CUDA=ON)");
}
inline RawNccl::RawNccl(const comm::Communicator&, int, comm::Seconds) { raw_nccl_missing(); }
inline RawNccl::~RawNccl() = default;
inline void RawNccl::ping(int, const float*, float*, std::size_t) { raw_nccl_missing(); }
inline void RawNccl::pong(int, float*, std::size_t) { raw_nccl_missing(); }
inline void copy_to_device(float*, std::span<const float>) { raw_nccl_missing(); }
inline void copy_to_host(std::span<float>, const float*) { raw_nccl_missing(); }
#endif

}  // namespace swarm::bench
