#pragma once
// The move-aware planner behind the `move_aware` strategy: at a boundary it compares the swarm
// with a near-optimal placement of the same servers and makes only the moves that pay for
// their reload downtime. Pure: no clock, no I/O.
//
// Movers reload together from the boundary: each is gone from its old span at once and serves
// its new span when its load time L_i has passed. A set of moves A is worth
//   net(A) = integral over [0, H] of v_A(t) dt - v0 * H,
// v_A(t) the swarm throughput of the counted servers (the balancing view: joining servers at
// their new spans) with the movers still loading left out, v0 that throughput with nobody
// moving, H the horizon. So a move pays its reload downtime (its throughput t_i for L_i) where it
// costs the swarm: in full on blocks that are the bottleneck, shared by movers that reload at the
// same time, not at all on blocks with slack. The planner orders candidate moves greedily (each
// step takes the move that raises the final v most, then the one that removes most bottleneck
// blocks, then the one that keeps v highest while it reloads, then the cheapest t_i * L_i),
// keeps the prefix with the largest net, and makes it only if that net is positive. Candidates
// are each server's span in the target placement and its best response to the others (rule 1's
// start). A move is skipped while it would leave a block that has an online server without one.
#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "swarm/placement/placement.hpp"
#include "swarm/balance/swarm.hpp"

namespace swarm {

struct MovePlanOptions {
  double horizon_s = 1800;  // how long a move's gain is counted
  double min_gain = 0;      // least (v - v0) / v0 a plan must promise to be made
  /// Servers that may move now (others stay where they are); empty: every online server.
  std::vector<char> movable;
};

struct PlannedMove {
  std::size_t server;  // index in the swarm
  Span to;
  double cost;  // t * L (throughput x seconds)
};

struct MovePlan {
  std::vector<PlannedMove> moves;  // in the order the planner chose them
  double current = 0;   // v0: swarm throughput of the counted servers where they are
  double planned = 0;   // v after the moves land
  double target = 0;    // value of the target placement
  double cost = 0;      // sum of the moves' t * L: the reload downtime they charge
  double net = 0;       // net(A) above (throughput x seconds over the horizon)
  [[nodiscard]] double expected_gain() const { return planned - current; }
};

/// Plans the moves of `swarm`'s counted servers toward `target` (one start per server of the
/// swarm; -1 or a start of another length: no target for that server). `load_seconds` gives
/// each server's load time (0 when unknown: such a move costs nothing).
[[nodiscard]] MovePlan plan_moves(const Swarm& swarm, std::span<const int> target,
                                  std::span<const double> load_seconds, const MovePlanOptions& options);

/// Among optimal placements, one that keeps servers where they are: every server whose start in
/// `placement` differs from `current` is tried back at its current start (most expensive move
/// first, `cost` per server) and stays there if the placement value does not drop.
void keep_current_where_optimal(int total_blocks, std::span<const PlacementServer> servers,
                                std::span<const int> current, std::span<const double> cost,
                                Placement& placement);

}  // namespace swarm
