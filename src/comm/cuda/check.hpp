#pragma once
// Internal (CUDA builds only): comm's CUDA and NCCL checks. SWARM_CUDA_CHECK (swarm/util/cuda.hpp)
// throws through raise_cuda_error below (DeviceError); SWARM_NCCL_CHECK throws TransferError. Both
// name the rank, the device, file:line, the statement and the library's own description (for
// NCCL also ncclGetLastError's detail).
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <string>

#include "swarm/util/cuda.hpp"

/// ncclInProgress is not an error (non-blocking communicators): callers poll it.
#define SWARM_NCCL_CHECK(stmt) ::swarm::comm::detail::check_nccl((stmt), #stmt, __FILE__, __LINE__)

namespace swarm::comm {

/// In swarm::comm, not detail, so that SWARM_CUDA_CHECK finds it from both.
[[noreturn]] void raise_cuda_error(cudaError_t status, const std::string& failure);

namespace detail {

void check_nccl(ncclResult_t status, const char* statement, const char* file, int line);
/// ncclGetLastError's text, or "" (it may return an empty string or, defensively, null).
[[nodiscard]] std::string nccl_last_error();
/// "rank R: device D: " (the device is the current one, when it can be asked).
[[nodiscard]] std::string device_prefix();

}  // namespace detail
}  // namespace swarm::comm
