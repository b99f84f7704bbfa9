#pragma once
// Internal to placement.cpp: a tabu search that improves a placement (the primal side).
#include <chrono>
#include <limits>
#include <span>
#include <vector>

#include "placement_search.hpp"

namespace swarm::detail {

struct TabuLimits {
  std::chrono::steady_clock::time_point deadline;
  long stale_iterations = 2000;  // this many moves without a better placement end a round
  bool restart = false;          // after a round, perturb the best placement and go on (until deadline)
  double stop_at = 0.0;          // stop once the placement is worth this much (the bound)
  double unit = 0.0;             // the next target is value + unit when coverage_values is empty
  unsigned long long seed = 1;
  /// Work caps, which unlike the deadline give the same answer on every run: moves, and
  /// evaluations (TabuResult::work).
  long max_moves = std::numeric_limits<long>::max();
  long max_work = std::numeric_limits<long>::max();
};

struct TabuResult {
  double value = 0.0;  // the bottleneck coverage of the improved placement
  long moves = 0;
  long work = 0;  // evaluations: per move and class, its blocks summed and its relocations weighed
};

/// Improves `starts` (per class, the start of each of its servers) in place. Each move relocates one server to the start that most
/// lowers the blocks' total shortfall below a target just above the best value found; the
/// target rises each time every block meets it. A class may not move back to a start it left
/// for a few moves (the tabu), which walks it off the plateaus where single moves do nothing.
TabuResult improve_by_tabu(int total_blocks, std::span<const SearchClass> classes,
                       std::span<const double> coverage_values, std::vector<std::vector<int>>& starts,
                       const TabuLimits& limits);

}  // namespace swarm::detail
