#pragma once
// Internal: how much host memory this process may still allocate, and the one check that turns
// "too big" into a clear OutOfMemoryError before any allocation is attempted.
#include <cstdint>
#include <string>

namespace swarm::model::detail {

/// Bytes still available to this process: min(MemAvailable, cgroup memory.max - memory.current).
[[nodiscard]] std::uint64_t available_host_bytes();

/// "1.50 GiB".
[[nodiscard]] std::string format_bytes(std::uint64_t bytes);

/// Throws OutOfMemoryError "<what> needs X of <where> memory but only Y is available" when
/// needed > available.
void require_memory(const std::string& what, std::uint64_t needed, std::uint64_t available, const std::string& where);

}  // namespace swarm::model::detail
