// Pooled activation rows. Size classes are powers of two (at least 1024 floats), so a steady
// stream of batches of varying size settles on a few buffers per class.
#include "swarm/comm/activations.hpp"

#include <bit>
#include <map>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "swarm/comm/device.hpp"
#include "swarm/comm/errors.hpp"
#include "wait.hpp"

namespace swarm::comm {
namespace detail {

class PoolCore {
 public:
  explicit PoolCore(MemoryLocation location) : location_(location) {}
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;
  ~PoolCore() {
    for (auto& [capacity, buffers] : free_) {
      for (float* p : buffers) deallocate(p);
    }
  }

  [[nodiscard]] std::pair<float*, std::size_t> take(std::size_t floats) {
    const std::size_t capacity = std::bit_ceil(std::max<std::size_t>(floats, 1024));
    {
      const std::lock_guard lock(mutex_);
      auto& list = free_[capacity];
      if (!list.empty()) {
        float* p = list.back();
        list.pop_back();
        return {p, capacity};
      }
    }
    float* p = allocate(capacity);
    const std::lock_guard lock(mutex_);
    ++stats_.allocations;
    ++stats_.buffers;
    stats_.bytes += capacity * sizeof(float);
    return {p, capacity};
  }

  void give_back(float* p, std::size_t capacity) noexcept {
    const std::lock_guard lock(mutex_);
    try {
      free_[capacity].push_back(p);
    } catch (...) {  // no memory for the free list: let the buffer go instead
      --stats_.buffers;
      stats_.bytes -= capacity * sizeof(float);
      deallocate(p);
    }
  }

  [[nodiscard]] ActivationPool::Stats stats() const {
    const std::lock_guard lock(mutex_);
    return stats_;
  }

 private:
  [[nodiscard]] float* allocate(std::size_t floats) const {
    if (location_ == MemoryLocation::device) return device_allocate(floats);
    return static_cast<float*>(::operator new(floats * sizeof(float), std::align_val_t{64}));
  }
  void deallocate(float* p) const noexcept {
    if (location_ == MemoryLocation::device) {
      device_free(p);
    } else {
      ::operator delete(p, std::align_val_t{64});
    }
  }

  MemoryLocation location_;
  mutable std::mutex mutex_;
  std::map<std::size_t, std::vector<float*>> free_;
  ActivationPool::Stats stats_;
};

}  // namespace detail

Activations::Activations(Activations&& other) noexcept
    : pool_(std::move(other.pool_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      capacity_(std::exchange(other.capacity_, 0)),
      location_(other.location_) {}

Activations& Activations::operator=(Activations&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::move(other.pool_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
    location_ = other.location_;
  }
  return *this;
}

Activations::~Activations() { release(); }

void Activations::release() noexcept {
  if (pool_ && data_ != nullptr) pool_->give_back(data_, capacity_);
  pool_.reset();
  data_ = nullptr;
  size_ = capacity_ = 0;
}

std::span<float> Activations::host() {
  if (location_ != MemoryLocation::host) throw UsageError(detail::rank_prefix() + "host view of device activations");
  return {data_, size_};
}

std::span<const float> Activations::host() const {
  if (location_ != MemoryLocation::host) throw UsageError(detail::rank_prefix() + "host view of device activations");
  return {data_, size_};
}

ActivationPool::ActivationPool(MemoryLocation location)
    : location_(location), core_(std::make_shared<detail::PoolCore>(location)) {}

ActivationPool::~ActivationPool() = default;

Activations ActivationPool::take(std::size_t floats) {
  Activations a;
  if (floats == 0) {
    a.location_ = location_;
    return a;
  }
  const auto [data, capacity] = core_->take(floats);
  a.pool_ = core_;
  a.data_ = data;
  a.size_ = floats;
  a.capacity_ = capacity;
  a.location_ = location_;
  return a;
}

ActivationPool::Stats ActivationPool::stats() const { return core_->stats(); }

}  // namespace swarm::comm
