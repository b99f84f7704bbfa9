#pragma once
// Internal to placement.cpp: an exact search for "can every block reach `target`?".
#include <chrono>
#include <limits>
#include <memory>
#include <span>
#include <vector>

namespace swarm::detail {

struct SearchClass {
  double throughput;
  int num_blocks;
  int count;
};

enum class SearchOutcome { reached, unreachable, out_of_time };

struct SearchResult {
  SearchOutcome outcome = SearchOutcome::out_of_time;
  std::vector<std::vector<int>> starts;  // per class, the start of each of its servers (reached)
  long nodes = 0;
  long work = 0;          // nodes plus the nodes' worth of relaxation solves and listings: what the caps count
  long dominated = 0;     // states pruned because a failed one covered at least as much
  long looked_ahead = 0;  // multisets dropped before their node was built
  long relaxations = 0;   // linear relaxations solved
  long by_weights = 0;    // states pruned by a relaxation's weights (its own or kept ones)
  long restarts = 0;      // rounds cut short by their budget (SearchLimits::restart_work)
  bool wide = false;      // most nodes were partial multisets of blocks with too many to list
};

class ResidualLp;

/// The linear relaxations of one swarm's searches (same blocks and classes), kept between
/// targets, one per worker: built once, then warm from the last basis for every later question
/// (a search of its own builds one and solves it cold: milliseconds, against tens of
/// microseconds warm, for the many short searches of one placement).
struct RelaxationCache {
  RelaxationCache();
  ~RelaxationCache();
  RelaxationCache(const RelaxationCache&) = delete;
  RelaxationCache& operator=(const RelaxationCache&) = delete;
  std::vector<std::unique_ptr<ResidualLp>> per_worker;
};

inline constexpr long kRestartWork = 10'000;  // SearchLimits::restart_work's default (docs/placement.md)

struct SearchLimits {
  std::chrono::steady_clock::time_point deadline;
  /// Searches whose branching turns wide (many classes) rarely finish: they give up already here.
  std::chrono::steady_clock::time_point wide_deadline;
  /// At a block with more minimal multisets than this, they are decided class by class.
  std::size_t listed_options = 4096;
  /// ... or whose listing takes more steps than this (many classes: the partial multisets
  /// that fail the lookahead grow exponentially with the classes, the complete ones need not).
  long listing_steps = 1L << 16;
  /// Work caps, which unlike the clock give the same answer on every run (reproducible mode), in
  /// nodes' worth of work (SearchResult::work).
  long max_nodes = std::numeric_limits<long>::max();
  long wide_max_nodes = std::numeric_limits<long>::max();
  /// Off only to measure what pruning by dominance saves, and to test it against the sweep without it.
  bool prune_by_dominance = true;
  /// Off only to measure what the linear relaxation saves, and to test it against the sweep without it.
  bool prune_by_relaxation = true;
  /// Deficits round up to sums of the unused servers (on a throughput grid), not only to the
  /// swarm's coverage values. Off only to measure what that saves, and to test it.
  bool round_by_unused_sums = true;
  /// Restarts: the first rounds stop after this much work (growing 1.5x a round) and start over,
  /// before a last round without a budget. What a round learns (failures, dominance profiles,
  /// relaxation weights) stays, and prunes the early blocks' multisets when they are listed
  /// again: one poor early multiset otherwise holds the search for seconds in a subtree that
  /// fails (placement_search.cpp). 0: one round only.
  long restart_work = kRestartWork;
  /// Workers sharing every proven failure, and in the last round the first short block's
  /// multisets (in the earlier rounds each searches the whole tree). More than one
  /// makes the node counts (and so max_nodes) depend on timing: reproducible searches use one.
  int threads = 1;
  /// Relaxations kept from earlier searches of the same swarm; none: this search builds its own.
  RelaxationCache* relaxations = nullptr;
};

/// The CPUs this process may run on: its affinity mask where the system has one (an MPI rank or
/// Slurm task bound to one core gets one worker, not one per core of the node), else the
/// hardware threads.
[[nodiscard]] int usable_cpus();

/// Depth-first sweep over blocks with memoised failures; see placement_search.cpp for the
/// canonical form that makes it exhaustive. `coverage_values`: the sorted sums
/// sum_c t_c * m_c (0 <= m_c <= count_c) up to at least `target`, or empty when unknown (any
/// superset of the sums of `classes` will do). `fixed_coverage` (one value per block, or empty
/// for none): what servers that stay where they are already bring each block; `classes` are
/// then the servers free to move (placement_neighbourhood.cpp).
[[nodiscard]] SearchResult reach_target(int total_blocks, std::span<const SearchClass> classes, double target,
                                        std::span<const double> coverage_values, const SearchLimits& limits,
                                        std::span<const double> fixed_coverage = {});

}  // namespace swarm::detail
