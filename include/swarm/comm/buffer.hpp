#pragma once
// Typed views of activation memory: fp32 elements plus where they live. Transfers take these,
// so no byte count or void* appears at a call site, and a transport can refuse memory it cannot
// reach (NCCL: host memory; MPI without CUDA support: device memory) instead of crashing.
#include <cstddef>
#include <span>
#include <string_view>

namespace swarm::comm {

enum class MemoryLocation { host, device };

[[nodiscard]] constexpr std::string_view to_string(MemoryLocation location) noexcept {
  return location == MemoryLocation::host ? "host" : "device";
}

/// Writable activation memory (a receive target).
struct Buffer {
  std::span<float> data;
  MemoryLocation location = MemoryLocation::host;

  [[nodiscard]] static constexpr Buffer host(std::span<float> data) noexcept { return {data, MemoryLocation::host}; }
  [[nodiscard]] static constexpr Buffer device(float* data, std::size_t elements) noexcept {
    return {{data, elements}, MemoryLocation::device};
  }
  [[nodiscard]] constexpr std::size_t size() const noexcept { return data.size(); }
  [[nodiscard]] constexpr std::size_t size_bytes() const noexcept { return data.size_bytes(); }
};

/// Read-only activation memory (a send source). A Buffer converts to it.
struct ConstBuffer {
  std::span<const float> data;
  MemoryLocation location = MemoryLocation::host;

  constexpr ConstBuffer() noexcept = default;
  constexpr ConstBuffer(std::span<const float> d, MemoryLocation l) noexcept : data(d), location(l) {}
  constexpr ConstBuffer(Buffer b) noexcept : data(b.data), location(b.location) {}  // NOLINT: intended

  [[nodiscard]] static constexpr ConstBuffer host(std::span<const float> data) noexcept {
    return {data, MemoryLocation::host};
  }
  [[nodiscard]] static constexpr ConstBuffer device(const float* data, std::size_t elements) noexcept {
    return {{data, elements}, MemoryLocation::device};
  }
  [[nodiscard]] constexpr std::size_t size() const noexcept { return data.size(); }
  [[nodiscard]] constexpr std::size_t size_bytes() const noexcept { return data.size_bytes(); }
};

}  // namespace swarm::comm
