#pragma once
// Activation rows (fp32) that travel between ranks, in host or device memory, from a pool: a
// rank's packets reuse a few buffers instead of allocating one per message (cudaMalloc can
// synchronise the device, and host allocations of megabytes go to the kernel).
#include <cstddef>
#include <memory>
#include <span>

#include "swarm/comm/buffer.hpp"

namespace swarm::comm {

namespace detail {
class PoolCore;
}

/// Move-only; its memory returns to its pool when it is destroyed. Once handed over (posted to
/// a fabric), the memory must not be written by anyone else until it comes back.
class Activations {
 public:
  Activations() noexcept = default;
  Activations(Activations&& other) noexcept;
  Activations& operator=(Activations&& other) noexcept;
  Activations(const Activations&) = delete;
  Activations& operator=(const Activations&) = delete;
  ~Activations();

  [[nodiscard]] float* data() noexcept { return data_; }
  [[nodiscard]] const float* data() const noexcept { return data_; }
  /// Floats in use (the buffer behind may be larger).
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] MemoryLocation location() const noexcept { return location_; }
  [[nodiscard]] Buffer buffer() noexcept { return {{data_, size_}, location_}; }
  [[nodiscard]] ConstBuffer buffer() const noexcept { return {{data_, size_}, location_}; }
  /// Host rows as a span; UsageError for device rows (read those through the backend).
  [[nodiscard]] std::span<float> host();
  [[nodiscard]] std::span<const float> host() const;

 private:
  friend class ActivationPool;
  void release() noexcept;

  std::shared_ptr<detail::PoolCore> pool_;
  float* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  MemoryLocation location_ = MemoryLocation::host;
};

/// Buffers in power-of-two size classes; a freed buffer is kept for the next take() of its
/// class. Device pools allocate on the current device (set it first). Thread-safe: in-process
/// ranks hand rows to each other, and the receiver returns them.
class ActivationPool {
 public:
  explicit ActivationPool(MemoryLocation location);
  ActivationPool(const ActivationPool&) = delete;
  ActivationPool& operator=(const ActivationPool&) = delete;
  ~ActivationPool();

  /// Rows of `floats` elements (contents undefined). Throws DeviceError when device memory
  /// cannot be allocated (or the build has no CUDA), std::bad_alloc for host memory.
  [[nodiscard]] Activations take(std::size_t floats);
  [[nodiscard]] MemoryLocation location() const noexcept { return location_; }

  struct Stats {
    std::size_t allocations = 0;  // buffers ever allocated
    std::size_t buffers = 0;      // held now (in use or free)
    std::size_t bytes = 0;        // held now
  };
  [[nodiscard]] Stats stats() const;

 private:
  MemoryLocation location_;
  std::shared_ptr<detail::PoolCore> core_;
};

}  // namespace swarm::comm
