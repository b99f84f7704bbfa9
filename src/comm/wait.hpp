#pragma once
// Internal: waiting on MPI requests with a deadline, and the pieces of every error message.
#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <thread>

#include "swarm/comm/mpi_world.hpp"

namespace swarm::comm::detail {

using Clock = std::chrono::steady_clock;

[[nodiscard]] inline Clock::time_point deadline_after(Seconds timeout) noexcept {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout);
}

/// Spin first (a transfer often completes within microseconds), then yield the core: ranks
/// sharing cores (oversubscribed tests, a client beside a server) must let each other run.
class Backoff {
 public:
  void pause() noexcept {
    if (++polls_ > kSpins) std::this_thread::yield();
  }

 private:
  static constexpr int kSpins = 256;
  int polls_ = 0;
};

/// MPI_Testall until every request completed (true) or the deadline passed (false, requests
/// still active). An MPI error throws MpiError.
[[nodiscard]] bool test_all_until(std::span<MPI_Request> requests, Clock::time_point deadline);

/// "rank R: " with the world rank (or "rank ?: " outside MPI): the start of every message.
[[nodiscard]] std::string rank_prefix();
/// "16777216 bytes (16.0 MiB)"; below 1 KiB just "12 bytes".
[[nodiscard]] std::string format_bytes(std::size_t bytes);
/// "2.0 s".
[[nodiscard]] std::string format_seconds(Seconds seconds);

}  // namespace swarm::comm::detail
