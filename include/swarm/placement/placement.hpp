#pragma once
// Optimal placement: the `upper_bound` yardstick of the paper's experiment. Given servers
// (throughput, span length) choose every start so that the bottleneck min_b T[b] is largest.
//
// The general problem is NP-hard (all k = 1 is machine covering; equal throughputs with mixed
// lengths is bin covering), so the answer is the best placement found together with a
// certified bound that no placement can beat. Method, in order (docs/placement.md):
//   1. identical servers (same throughput and length) are aggregated into classes;
//   2. one class has a closed form (each full layer of the path needs ceil(L/k) servers);
//   3. heuristics: Petals-style greedy + best-response passes, a target sweep with binary search,
//      and every caller hint (e.g. the placements other strategies reached), each polished by
//      best-response passes;
//   4. bounds: spacing_bound(), rounded down to a coverage value (sum_c t_c * m_c) when those
//      are few enough to list;
//   5. an exact search decides "can every block reach target X?" for targets between the best
//      placement and the bound (a canonical sweep over blocks with capacity pruning), first on
//      the swarm projected onto blocks spaced g apart, a smaller relaxation of it;
//   6. an integer programme (COIN-OR CBC) over the classes, warm-started with the best placement,
//      for the time that is left; its proven bound tightens the certified bound.
// The result is never worse than the best heuristic or hint.
#include <span>
#include <string>
#include <vector>

namespace swarm {

struct PlacementServer {
  double throughput = 0.0;
  int num_blocks = 1;
};

struct PlacementOptions {
  double time_limit_s = 10.0;      // for the exact search and the integer programme; <= 0 skips both
  double relative_gap = 1e-6;      // stop when (bound - value) / bound is below this
  /// Count the time limit in work (search nodes, tabu moves, CBC nodes at rates measured on a
  /// 2-core development machine) instead of by the clock: the same servers then get the same
  /// placement on every run and machine, in about time_limit_s here (longer on a slower one).
  bool reproducible = false;
  /// Threads for the exact search (it splits the first short block's multisets and shares its
  /// proven failures); 0 or less: one per CPU this process may run on (its affinity mask).
  /// Reproducible placements use one.
  int threads = 0;
  /// Candidate placements (one start per server, in input order), e.g. the spans other
  /// strategies hold now. Invalid ones are ignored.
  std::vector<std::vector<int>> hints;
};

struct Placement {
  std::vector<int> starts;  // one per server, in input order
  double value = 0.0;       // min_b T[b] of `starts`
  double bound = 0.0;       // certified: no placement exceeds it (bound >= value)
  bool optimal = false;     // value reaches bound within relative_gap
  std::string method;       // what found `starts`: closed_form, greedy, sweep, hint, tabu, search, neighbourhood, milp
  double seconds = 0.0;

  [[nodiscard]] double gap() const { return bound > 0.0 ? (bound - value) / bound : 0.0; }
};

/// The bottleneck throughput of a placement: min_b sum of t over servers covering b.
[[nodiscard]] double placement_value(int total_blocks, std::span<const PlacementServer> servers,
                                     std::span<const int> starts);

/// A bound every placement respects, without solving anything. For blocks B spaced g apart
/// (g = 1..L-1), min_b T[b] <= sum_{b in B} T[b] / |B| <= sum_i t_i * (most points of B a span
/// of k_i can hold) / |B|. g = 1 is the area bound sum(t_i * k_i) / L; larger g catch spans
/// that cannot be cut to fit (e.g. three 60-block spans on 80 blocks).
[[nodiscard]] double spacing_bound(int total_blocks, std::span<const PlacementServer> servers);

/// Throws std::invalid_argument for a length outside 1..total_blocks or a bad throughput.
[[nodiscard]] Placement optimal_placement(int total_blocks, std::span<const PlacementServer> servers,
                                          const PlacementOptions& options = {});

}  // namespace swarm
