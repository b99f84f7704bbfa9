#pragma once
// The one clock of the project: std::chrono::steady_clock (deadlines, time budgets, the job's
// loops), and seconds on it since the process first asked.
#include <chrono>

namespace swarm {

using Clock = std::chrono::steady_clock;

[[nodiscard]] inline double seconds_now() {
  static const Clock::time_point start = Clock::now();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace swarm
