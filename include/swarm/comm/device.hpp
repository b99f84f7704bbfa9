#pragma once
// Device memory for the job's GPU path, without CUDA headers. In a build without CUDA every
// function here compiles to a stub: device_count() is 0 and allocating throws DeviceError.
#include <cstddef>
#include <span>

#include "swarm/comm/buffer.hpp"

namespace swarm::comm {

/// True when this build has the CUDA backend (SWARM_HAVE_CUDA).
[[nodiscard]] bool cuda_built() noexcept;
/// GPUs this process sees; 0 without CUDA, without a driver or without a GPU (never throws).
[[nodiscard]] int device_count() noexcept;
/// cudaSetDevice; throws DeviceError (with rank and CUDA's message) on failure.
void set_device(int device);

namespace detail {
/// Raw fp32 device memory on the current device (the activation pool's allocator): throws
/// DeviceError with the size and CUDA's message, or without CUDA.
[[nodiscard]] float* device_allocate(std::size_t elements);
void device_free(float* data) noexcept;
}  // namespace detail

/// fp32 device memory on the current device; move-only, freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() noexcept = default;
  /// Throws DeviceError when CUDA is absent or the allocation fails (the message says how much).
  explicit DeviceBuffer(std::size_t elements);
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();

  [[nodiscard]] float* data() noexcept { return data_; }
  [[nodiscard]] const float* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t size_bytes() const noexcept { return size_ * sizeof(float); }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

  /// Views for the transport.
  [[nodiscard]] Buffer buffer() noexcept { return Buffer::device(data_, size_); }
  [[nodiscard]] ConstBuffer buffer() const noexcept { return ConstBuffer::device(data_, size_); }

  /// Synchronous copies of `host.size()` elements (at most size()) to/from the start.
  void copy_from_host(std::span<const float> host);
  void copy_to_host(std::span<float> host) const;
  void fill_zero();

 private:
  void release() noexcept;

  float* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace swarm::comm
