#pragma once
// Internal: the model's CUDA and cuBLAS checks. SWARM_CUDA_CHECK (swarm/util/cuda.hpp) throws
// through raise_cuda_error below; both throw DeviceError, or OutOfMemoryError for an allocation
// failure, whose message names the device, file:line and the failing statement; the job prints it
// and exits non-zero.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <string>

#include "swarm/util/cuda.hpp"

#define SWARM_CUBLAS_CHECK(stmt) ::swarm::model::detail::check_cublas((stmt), #stmt, __FILE__, __LINE__)

namespace swarm::model::detail {

[[noreturn]] void raise_cuda_error(cudaError_t status, const std::string& failure);
void check_cublas(cublasStatus_t status, const char* statement, const char* file, int line);

}  // namespace swarm::model::detail
