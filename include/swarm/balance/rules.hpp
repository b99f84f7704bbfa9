#pragma once
// The Petals balancing rules, decision for decision (read off Petals'
// petals/server/block_selection.py and its callers in petals/server/server.py). Pure functions over a Swarm.
#include <optional>
#include <span>
#include <vector>

#include "swarm/util/random.hpp"
#include "swarm/balance/swarm.hpp"

namespace swarm {

/// Petals' eps: a slight bias towards staying put and a guard against rounding.
inline constexpr double kEps = 1e-3;

/// Per-block throughput T[b]: the sum of the throughputs of servers in state >= `min_state`
/// whose span holds b, accumulated server by server in ascending id order from 0.0.
/// `min_state = joining` is the balancing view; `online` is what clients can route through.
[[nodiscard]] std::vector<double> block_throughputs(const Swarm& swarm,
                                                    ServerState min_state = ServerState::joining);

/// min_b T[b]: the bottleneck. 0 means the swarm is disjoint (some block has no server).
[[nodiscard]] double swarm_throughput(std::span<const double> block_throughput);
[[nodiscard]] double swarm_throughput(const Swarm& swarm,
                                      ServerState min_state = ServerState::joining);

/// The start i in 0..L-k whose window T[i..i+k), sorted ascending, is lexicographically
/// smallest; a complete tie goes to the smallest i. Throws std::invalid_argument unless
/// 1 <= k <= L. Runs in O(L + W log W), W the span of the windows still tied after the
/// minimum (usually about 2k), instead of sorting every window.
[[nodiscard]] int best_start(std::span<const double> block_throughput, int num_blocks);

/// Rule 1: the span a joining server of `num_blocks` blocks takes. Counts every server of the
/// swarm that the rules count; a server that is re-choosing must be set offline first.
[[nodiscard]] Span choose_best_blocks(const Swarm& swarm, int num_blocks);

/// Where rule 2 stopped; `quality` is known only for `compared`.
enum class RebalanceReason {
  forced,           // balance_quality > 1: always move
  not_counted,      // the server is offline or holds no blocks: nothing to move
  would_disjoin,    // leaving would leave a block without servers
  already_best,     // its own start is already the best one
  no_improvement,   // the simulated swarm would be slower or (almost) empty
  compared,         // quality computed and compared with balance_quality
};

struct RebalanceDecision {
  bool move = false;
  std::optional<double> quality;  // initial / new swarm throughput, when computed
  RebalanceReason reason = RebalanceReason::compared;
  int passes = 0;                 // passes of the everybody-re-chooses simulation
};

/// Rule 2 (should_choose_other_blocks) for the server at `index`. `rng` draws the visiting
/// order of the simulation passes (the only random part).
[[nodiscard]] RebalanceDecision should_choose_other_blocks(const Swarm& swarm, std::size_t index,
                                                           double balance_quality, Rng& rng);

}  // namespace swarm
