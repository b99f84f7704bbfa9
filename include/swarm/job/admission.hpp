#pragma once
// Admission control for KV caches. A Petals server allocates a session's cache for its whole
// length up front and waits until enough is freed (petals/server/memory_cache.py); here the
// client, which sees every rank, reserves on every hop of a route the cache the session will
// grow to before its first step there, and the session waits while a hop lacks room. A
// reservation lasts until the client drops the session's caches. Pure.
#include <cstdint>
#include <span>
#include <vector>

#include "swarm/job/routing.hpp"

namespace swarm::job {

class CacheLedger {
 public:
  /// `budget_bytes` per rank (0: no budget, everything fits) for ranks 0..ranks-1.
  CacheLedger(std::uint64_t budget_bytes, int ranks);

  [[nodiscard]] bool limited() const { return budget_ > 0; }
  [[nodiscard]] std::uint64_t budget() const { return budget_; }
  /// Bytes reserved on `rank` now.
  [[nodiscard]] std::uint64_t reserved(int rank) const;
  /// Whether `rank` has room for `bytes` more.
  [[nodiscard]] bool fits(int rank, std::uint64_t bytes) const;
  /// Reserves `bytes_per_block` for each block of each hop, on every hop or on none. Returns
  /// false (reserving nothing) when some rank lacks room.
  [[nodiscard]] bool reserve(std::span<const Hop> route, std::uint64_t bytes_per_block);
  /// Gives back exactly what reserve() took for the same route and size. Throws
  /// std::logic_error when a rank would go below zero (a reservation released twice).
  void release(std::span<const Hop> route, std::uint64_t bytes_per_block);

 private:
  [[nodiscard]] std::size_t index(int rank) const;  // throws std::out_of_range
  std::uint64_t budget_ = 0;
  std::vector<std::uint64_t> reserved_;
};

}  // namespace swarm::job
