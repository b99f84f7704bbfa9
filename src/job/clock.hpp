#pragma once
// The job's clock: seconds on the steady clock since the process started using it. One clock
// for the loops, the emulated devices and the client's latencies.
#include <chrono>

namespace swarm::job {

using Clock = std::chrono::steady_clock;

[[nodiscard]] inline double seconds_now() {
  static const Clock::time_point start = Clock::now();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace swarm::job
