#pragma once
// Internal: one check macro per GPU library family. A failure throws DeviceError (or
// OutOfMemoryError for an allocation failure) whose message names the device, file:line and the
// failing statement; the job prints it and exits non-zero.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#define SWARM_CUDA_CHECK(stmt) ::swarm::model::detail::check_cuda((stmt), #stmt, __FILE__, __LINE__)
#define SWARM_CUBLAS_CHECK(stmt) ::swarm::model::detail::check_cublas((stmt), #stmt, __FILE__, __LINE__)

namespace swarm::model::detail {

void check_cuda(cudaError_t status, const char* statement, const char* file, int line);
void check_cublas(cublasStatus_t status, const char* statement, const char* file, int line);

}  // namespace swarm::model::detail
