#pragma once
// Internal to placement.cpp: large-neighbourhood search, the primal side that moves many
// servers at once. Each attempt frees a neighbourhood of the servers and asks the exact search
// whether they, placed anew around the others, can lift every block above the best placement.
#include <chrono>
#include <limits>
#include <span>
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
NeighbourhoodResult improve_by_neighbourhoods(int total_blocks, std::span<const SearchClass> classes,
                                              std::span<const double> coverage_values,
                                              std::vector<std::vector<int>>& starts, const NeighbourhoodLimits& limits);

}  // namespace swarm::detail
