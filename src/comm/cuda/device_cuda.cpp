// Device memory helpers (CUDA builds): cudaMalloc'd fp32 buffers and synchronous copies.
#include <cuda_runtime_api.h>

#include <utility>

#include "../wait.hpp"
#include "check.hpp"
#include "swarm/comm/device.hpp"
#include "swarm/comm/errors.hpp"

namespace swarm::comm {

bool cuda_built() noexcept { return true; }

int device_count() noexcept {
  int count = 0;
  // Without a driver this returns cudaErrorInsufficientDriver / cudaErrorNoDevice: no GPU.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

void set_device(int device) { SWARM_CUDA_CHECK(cudaSetDevice(device)); }

namespace detail {

float* device_allocate(std::size_t elements) {
  void* memory = nullptr;
  const cudaError_t status = cudaMalloc(&memory, elements * sizeof(float));
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    throw DeviceError(device_prefix() + "cannot allocate " + format_bytes(elements * sizeof(float)) +
                      " of device memory: " + cudaGetErrorString(status));
  }
  return static_cast<float*>(memory);
}

void device_free(float* data) noexcept {
  if (data != nullptr) cudaFree(data);  // no way to report from here; the context may be going away
}

}  // namespace detail

DeviceBuffer::DeviceBuffer(std::size_t elements) : size_(elements) {
  if (elements == 0) return;
  try {
    data_ = detail::device_allocate(elements);
  } catch (...) {
    size_ = 0;
    throw;
  }
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() { release(); }

void DeviceBuffer::release() noexcept {
  if (data_) cudaFree(data_);  // a destructor cannot report; the context is going away anyway
  data_ = nullptr;
  size_ = 0;
}

void DeviceBuffer::copy_from_host(std::span<const float> host) {
  if (host.size() > size_)
    throw UsageError(detail::rank_prefix() + "copy of " + std::to_string(host.size()) + " floats into a device buffer of " +
                     std::to_string(size_));
  SWARM_CUDA_CHECK(cudaMemcpy(data_, host.data(), host.size_bytes(), cudaMemcpyHostToDevice));
}

void DeviceBuffer::copy_to_host(std::span<float> host) const {
  if (host.size() > size_)
    throw UsageError(detail::rank_prefix() + "copy of " + std::to_string(host.size()) + " floats out of a device buffer of " +
                     std::to_string(size_));
  SWARM_CUDA_CHECK(cudaMemcpy(host.data(), data_, host.size_bytes(), cudaMemcpyDeviceToHost));
}

void DeviceBuffer::fill_zero() {
  if (size_) SWARM_CUDA_CHECK(cudaMemset(data_, 0, size_bytes()));
}

}  // namespace swarm::comm
