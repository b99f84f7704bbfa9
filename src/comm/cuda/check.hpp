#pragma once
// Internal (CUDA builds only): one check macro per GPU library family. A failure throws
// DeviceError (CUDA) or TransferError (NCCL) naming the rank, the device, file:line, the
// statement and the library's own description (for NCCL also ncclGetLastError's detail).
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <string>

#define SWARM_CUDA_CHECK(stmt) ::swarm::comm::detail::check_cuda((stmt), #stmt, __FILE__, __LINE__)
/// ncclInProgress is not an error (non-blocking communicators): callers poll it.
#define SWARM_NCCL_CHECK(stmt) ::swarm::comm::detail::check_nccl((stmt), #stmt, __FILE__, __LINE__)

namespace swarm::comm::detail {

void check_cuda(cudaError_t status, const char* statement, const char* file, int line);
void check_nccl(ncclResult_t status, const char* statement, const char* file, int line);
/// ncclGetLastError's text, or "" (it may return an empty string or, defensively, null).
[[nodiscard]] std::string nccl_last_error();
/// "rank R: device D: " (the device is the current one, when it can be asked).
[[nodiscard]] std::string device_prefix();

}  // namespace swarm::comm::detail
