// Raw NCCL point-to-point for bench_transport (CUDA builds only): see raw_nccl.hpp.
#include "raw_nccl.hpp"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "swarm/comm/control.hpp"
#include "swarm/comm/device.hpp"

namespace swarm::bench {
namespace {

[[nodiscard]] std::string prefix() {
  return "rank " + std::to_string(comm::detail::world_rank()) + ": raw NCCL baseline: ";
}

void check_cuda(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();  // a non-sticky error must not resurface in a later call
  throw comm::DeviceError(prefix() + what + " failed: " + cudaGetErrorString(status));
}

void check_nccl(ncclResult_t status, const char* what) {
  if (status == ncclSuccess) return;
  const char* detail = ncclGetLastError(nullptr);
  throw comm::TransferError(prefix() + what + " failed: " + ncclGetErrorString(status) +
                            (detail && *detail ? std::string(" (") + detail + ")" : std::string()));
}

}  // namespace

struct RawNccl::Impl {
  comm::Seconds timeout{};
  cudaStream_t stream = nullptr;
  ncclComm_t nccl = nullptr;

  ~Impl() {
    if (nccl) ncclCommDestroy(nccl);
    if (stream) cudaStreamDestroy(stream);
  }

  // Completes what is queued on the stream. A spin on cudaStreamQuery finishes as soon as a
  // spinning cudaStreamSynchronize would, but can give up: a peer that hangs ends the run with
  // a message (the communicator aborted, so the GPU is released) instead of hanging it.
  void wait(const char* what, int peer, std::size_t floats) {
    const auto began = std::chrono::steady_clock::now();
    for (unsigned polls = 1;; ++polls) {
      const cudaError_t query = cudaStreamQuery(stream);
      if (query == cudaSuccess) return;
      if (query != cudaErrorNotReady) check_cuda(query, "cudaStreamQuery");
      if (polls % 64 != 0) continue;  // the checks below cost more than a query
      ncclResult_t async = ncclSuccess;
      check_nccl(ncclCommGetAsyncError(nccl, &async), "ncclCommGetAsyncError");
      const bool late = std::chrono::steady_clock::now() - began > timeout;
      if (async == ncclSuccess && !late) continue;
      ncclCommAbort(nccl);
      nccl = nullptr;
      const std::string message = prefix() + what + " of " + std::to_string(floats) + " floats with rank " +
                                  std::to_string(peer) + " ";
      if (late) {
        char seconds[32];
        std::snprintf(seconds, sizeof seconds, "%.1f s", timeout.count());
        throw comm::TimeoutError(message + "did not complete within " + seconds);
      }
      throw comm::TransferError(message + "failed: " + ncclGetErrorString(async));
    }
  }
};

RawNccl::RawNccl(const comm::Communicator& comm, int device, comm::Seconds timeout) : impl_(std::make_unique<Impl>()) {
  if (comm.size() != 2) throw comm::UsageError(prefix() + "needs exactly 2 ranks");
  impl_->timeout = timeout;
  ncclUniqueId id{};
  if (comm.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  id = comm::bcast_value(comm, id, 0);
  comm::set_device(device);
  check_cuda(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  check_nccl(ncclCommInitRank(&impl_->nccl, comm.size(), id, comm.rank()), "ncclCommInitRank");
  comm::DeviceBuffer scratch(1);
  scratch.fill_zero();
  if (comm.rank() == 0) {
    ping(1, scratch.data(), scratch.data(), 1);
  } else {
    pong(0, scratch.data(), 1);
  }
}

RawNccl::~RawNccl() = default;

// One stream runs the two halves in order and each side queues them in the order the other
// expects (send then receive against receive then send), so no group is needed: a group would
// make them concurrent, which an echo cannot be.
void RawNccl::ping(int peer, const float* send, float* recv, std::size_t floats) {
  check_nccl(ncclSend(send, floats, ncclFloat32, peer, impl_->nccl, impl_->stream), "ncclSend");
  check_nccl(ncclRecv(recv, floats, ncclFloat32, peer, impl_->nccl, impl_->stream), "ncclRecv");
  impl_->wait("round trip (send, then receive)", peer, floats);
}

void RawNccl::pong(int peer, float* data, std::size_t floats) {
  check_nccl(ncclRecv(data, floats, ncclFloat32, peer, impl_->nccl, impl_->stream), "ncclRecv");
  check_nccl(ncclSend(data, floats, ncclFloat32, peer, impl_->nccl, impl_->stream), "ncclSend");
  impl_->wait("echo (receive, then send)", peer, floats);
}

void copy_to_device(float* device, std::span<const float> host) {
  check_cuda(cudaMemcpy(device, host.data(), host.size_bytes(), cudaMemcpyHostToDevice), "cudaMemcpy to the device");
}

void copy_to_host(std::span<float> host, const float* device) {
  check_cuda(cudaMemcpy(host.data(), device, host.size_bytes(), cudaMemcpyDeviceToHost), "cudaMemcpy to the host");
}

}  // namespace swarm::bench
