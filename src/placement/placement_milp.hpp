#pragma once
// Internal to the optimal placement: servers grouped into classes of identical ones, and CBC's
// integer programme over those classes (docs/placement.md, "7. Integer programme and dense sums").
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "swarm/placement/placement.hpp"

namespace swarm::detail {

/// A placement and where it came from (the method the result reports).
struct Candidate {
  std::vector<int> starts;
  double value = -1.0;
  std::string method;
};

/// Identical servers are interchangeable: the programme counts how many of a class start where.
struct ServerClass {
  double throughput;
  int num_blocks;
  std::vector<std::size_t> members;
};

/// The classes of `servers`, in order of first appearance.
std::vector<ServerClass> classify(std::span<const PlacementServer> servers);

/// Per-class starts (as the search and the tabu search give them) back in the servers' order.
std::vector<int> server_starts(std::size_t num_servers, const std::vector<ServerClass>& classes,
                               const std::vector<std::vector<int>>& class_starts);

/// CBC reads bounds from 1e30 up as none.
constexpr double kUnbounded = 1e30;

/// The integer programme over classes: y[c][s] = number of class-c servers starting at s.
///   max tau  s.t.  sum_c t_c * sum_{s covers b} y[c][s] - tau >= 0   for every block b
///                  sum_s y[c][s] = n_c                                for every class c
/// Returns the proven bound; improves `best` when CBC finds a better placement, and starts from it
/// when `warm`. `may_leave_out`: sum_s y[c][s] <= n_c, a relaxation with the same optimum (a server
/// more never lowers a block), whose cuts differ.
double solve_milp(int total_blocks, std::span<const PlacementServer> servers,
                  const std::vector<ServerClass>& classes, double time_limit_s, int max_nodes,
                  double relative_gap, double upper, bool warm, Candidate& best, bool may_leave_out = false);

}  // namespace swarm::detail
