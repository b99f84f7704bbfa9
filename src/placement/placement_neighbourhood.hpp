#pragma once
// Internal to placement.cpp: large-neighbourhood search, the primal side that moves many
// servers at once. Each attempt frees a neighbourhood of the servers and asks the exact search
// whether they, placed anew around the others, can lift every block above the best placement.
#include <atomic>
#include <chrono>
#include <limits>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

#include "placement_search.hpp"

namespace swarm::detail {

struct NeighbourhoodLimits {
  std::chrono::steady_clock::time_point deadline;
  /// Work caps in nodes' worth (SearchResult::work), which unlike the deadline give the same
  /// answer on every run: all attempts together, and each one.
  long max_work = std::numeric_limits<long>::max();
  long attempt_work = 20'000;
  double attempt_seconds = 0.08;  // each attempt's share of the clock (none without a deadline)
  double stop_at = 0.0;  // stop once the placement is worth this much (the bound)
  double unit = 0.0;     // the target is value + unit when coverage_values is empty
  unsigned long long seed = 1;
  /// Workers, each drawing its own neighbourhoods around the best placement any of them found
  /// (adopted before its next attempt). More than one makes the result depend on timing:
  /// reproducible runs use one, which draws exactly the attempts of `seed`.
  int threads = 1;
};

/// The best placement the workers found: each offers what it improved and, before its next
/// attempt, adopts what another offered since.
class SharedPlacement {
 public:
  SharedPlacement(std::vector<std::vector<int>> starts, double value) : starts_(std::move(starts)), value_(value) {}
  /// Takes `starts` if `value` is above the best so far (another worker may have gone higher
  /// since the offering one last adopted); says whether it did.
  bool offer(std::vector<std::vector<int>>&& starts, double value);
  /// Copies the best into `starts` and `value` if it changed since `version`, which it updates.
  void adopt(long& version, std::vector<std::vector<int>>& starts, double& value) const;
  /// The best, once the workers are done.
  std::vector<std::vector<int>> take(double& value) &&;

 private:
  mutable std::mutex mutex_;
  std::vector<std::vector<int>> starts_;
  double value_;
  std::atomic<long> version_{0};
};

struct NeighbourhoodResult {
  double value = 0.0;  // the bottleneck coverage of the improved placement
  long attempts = 0;
  long improvements = 0;
  long work = 0;  // the searches' work, nodes' worth
};

/// Improves `starts` (per class, the start of each of its servers) in place. An attempt frees
/// whole classes drawn at random, or the servers over a random window of blocks, 4 to 40
/// servers, and keeps the others where they are; the search then decides whether the freed
/// servers can make every block reach the next coverage value above the best placement
/// (`coverage_values`, the swarm's sums, or value + unit where they are not listed).
/// `limits.max_work` caps all workers together.
NeighbourhoodResult improve_by_neighbourhoods(int total_blocks, std::span<const SearchClass> classes,
                                              std::span<const double> coverage_values,
                                              std::vector<std::vector<int>>& starts, const NeighbourhoodLimits& limits);

}  // namespace swarm::detail
