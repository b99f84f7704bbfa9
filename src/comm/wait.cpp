// Deadline-bounded waiting on MPI requests, and message formatting shared by the comm layer.
#include "wait.hpp"

#include <cstdio>

namespace swarm::comm::detail {

bool test_all_until(std::span<MPI_Request> requests, Clock::time_point deadline) {
  Backoff backoff;
  for (;;) {
    int done = 0;
    SWARM_MPI_CHECK(MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE));
    if (done) return true;
    if (Clock::now() >= deadline) return false;
    backoff.pause();
  }
}

std::string rank_prefix() {
  const int rank = world_rank();
  return rank >= 0 ? "rank " + std::to_string(rank) + ": " : std::string("rank ?: ");
}

std::string format_bytes(std::size_t bytes) {
  const std::string exact = std::to_string(bytes) + " bytes";
  if (bytes < 1024) return exact;
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes) / 1024.0;
  std::size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(units)) {
    value /= 1024.0;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.1f %s", value, units[unit]);
  return exact + " (" + text + ")";
}

std::string format_seconds(Seconds seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", seconds.count());
  return text;
}

}  // namespace swarm::comm::detail
