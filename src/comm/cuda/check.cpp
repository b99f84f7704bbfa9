// CUDA and NCCL error checks (CUDA builds only).
#include "check.hpp"

#include "../wait.hpp"
#include "swarm/comm/errors.hpp"

namespace swarm::comm::detail {

std::string device_prefix() {
  int device = -1;
  if (cudaGetDevice(&device) != cudaSuccess) {
    (void)cudaGetLastError();  // clear it: asking for the device must not poison later calls
    return rank_prefix();
  }
  return rank_prefix() + "device " + std::to_string(device) + ": ";
}

std::string nccl_last_error() {
  const char* text = ncclGetLastError(nullptr);  // the comm argument is unused by NCCL
  return text ? text : "";
}

void check_nccl(ncclResult_t status, const char* statement, const char* file, int line) {
  if (status == ncclSuccess || status == ncclInProgress) return;
  const std::string detail = nccl_last_error();
  throw TransferError(device_prefix() + file + ":" + std::to_string(line) + ": " + statement + " failed: " +
                      ncclGetErrorString(status) + (detail.empty() ? "" : " (" + detail + ")"));
}

}  // namespace swarm::comm::detail

namespace swarm::comm {

void raise_cuda_error(cudaError_t /*status*/, const std::string& failure) {
  throw DeviceError(detail::device_prefix() + failure);
}

}  // namespace swarm::comm
