// Device memory helpers in a build without CUDA: nothing to allocate, every use says why.
#include <utility>

#include "../wait.hpp"
#include "swarm/comm/device.hpp"
#include "swarm/comm/errors.hpp"

namespace swarm::comm {
namespace {
[[noreturn]] void no_cuda(const char* what) {
  throw DeviceError(detail::rank_prefix() + what + ": this build has no CUDA (configure with SWARM_CUDA=ON)");
}
}  // namespace

namespace detail {
float* device_allocate(std::size_t) { no_cuda("device memory"); }
void device_free(float*) noexcept {}
}  // namespace detail

bool cuda_built() noexcept { return false; }
int device_count() noexcept { return 0; }
void set_device(int) { no_cuda("set_device"); }

DeviceBuffer::DeviceBuffer(std::size_t elements) {
  if (elements != 0) no_cuda("DeviceBuffer");
}
DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  data_ = std::exchange(other.data_, nullptr);
  size_ = std::exchange(other.size_, 0);
  return *this;
}
DeviceBuffer::~DeviceBuffer() = default;
void DeviceBuffer::release() noexcept {}
void DeviceBuffer::copy_from_host(std::span<const float>) { no_cuda("DeviceBuffer::copy_from_host"); }
void DeviceBuffer::copy_to_host(std::span<float>) const { no_cuda("DeviceBuffer::copy_to_host"); }
void DeviceBuffer::fill_zero() { no_cuda("DeviceBuffer::fill_zero"); }

}  // namespace swarm::comm
