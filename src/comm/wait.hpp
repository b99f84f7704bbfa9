#pragma once
// Internal: waiting on MPI requests with a deadline, and the pieces of every error message.
#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <thread>

#include "swarm/comm/mpi_world.hpp"
#include "swarm/util/clock.hpp"

namespace swarm::comm::detail {


[[nodiscard]] inline Clock::time_point deadline_after(Seconds timeout) noexcept {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout);
}

/// Spin first, then yield the core. A transfer or a header usually arrives within
/// microseconds, and a sched_yield per poll would hand the core to any other process on it
/// (measured: +2 us per 4 KiB message on a loaded 2-core machine); but ranks sharing cores
/// (oversubscribed tests, a client beside a server) must let each other run during long waits.
class Backoff {
 public:
  void pause() noexcept {
    if (yielding_) {
      std::this_thread::yield();
    } else if (++polls_ % 64 == 0 && Clock::now() - start_ > kSpin) {
      yielding_ = true;
    }
  }

 private:
  static constexpr std::chrono::microseconds kSpin{200};
  Clock::time_point start_ = Clock::now();
  unsigned polls_ = 0;
  bool yielding_ = false;
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
