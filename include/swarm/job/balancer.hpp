#pragma once
// Rank 0's decisions at epoch boundaries, from the allgathered measurements: churn, then the
// job's balancing strategy (the same Strategy objects the simulator uses). Pure: no MPI.
#include <optional>
#include <span>
#include <vector>

#include "swarm/job/config.hpp"
#include "swarm/job/protocol.hpp"
#include "swarm/job/routing.hpp"
#include "swarm/balance/strategy.hpp"

namespace swarm::job {

struct BoundaryDecision {
  std::vector<Assignment> assignment;  // one per rank
  std::vector<Move> moves;             // servers that rule 2 or the optimal placement moved
  std::vector<int> joined, left;       // ranks
  std::optional<Placement> placement;  // upper_bound, move_aware: the placement solved
  std::optional<MovePlan> plan;        // move_aware: the gain its moves should bring, their cost
};

class Balancer {
 public:
  /// `span_lengths[r]`: blocks rank r holds (fixed by its memory / class).
  Balancer(const JobConfig& config, int blocks, std::vector<int> span_lengths);

  /// Takes the allgathered measurements into the announced throughputs. `traffic_seconds`: the
  /// epoch they measured; the share of it a rank spent as the client (rank 0) is not available
  /// to its server, so its rate counts for the rest only (0: a start-up benchmark, no client yet).
  void update(std::span<const Measurement> measured, double traffic_seconds = 0);
  /// Ranks join one by one in rank order with the strategy's rule for joiners.
  [[nodiscard]] BoundaryDecision initial();
  /// The boundary before epoch `epoch` (0-based; epochs 0..epoch-1 have run): churn, then the
  /// strategy.
  [[nodiscard]] BoundaryDecision boundary(int epoch);

  /// The swarm as the rules see it after the last decision (ids r0000.. per rank).
  [[nodiscard]] const Swarm& swarm() const { return swarm_; }
  /// Announced throughput per rank (Petals: min(compute / ((k+1)/2), network)).
  [[nodiscard]] const std::vector<double>& announced() const { return announced_; }
  [[nodiscard]] const std::vector<double>& compute() const { return compute_; }
  [[nodiscard]] const std::vector<double>& network() const { return network_; }
  /// The tokens/s the job should realise on the swarm as it runs now (docs/job.md, "What the
  /// job predicts"): the sum of the chains capacity_routes() splits the online servers into,
  /// until no capacity is left. A hop runs from where the last ended to the end of its server's
  /// span, so a server of measured one-block rate R (as update() took it) passes R / b tokens/s
  /// on a hop of b blocks, capped by its link when that was measured; a server whose span
  /// overlaps the previous one's runs fewer blocks a token than it holds.
  [[nodiscard]] double predicted() const;
  /// What the client routes with.
  [[nodiscard]] std::vector<RouteServer> route_servers() const;

  [[nodiscard]] static std::string server_id(int rank);

 private:
  std::vector<Assignment> assignments(const std::vector<int>& reload) const;
  void place_joiners(const std::vector<int>& ranks, BoundaryDecision& d);

  const JobConfig& config_;
  int blocks_;
  std::vector<int> span_lengths_;
  std::unique_ptr<Strategy> strategy_;
  Rng rng_;        // the strategy's draws (rule 2, joiners, check order)
  Rng churn_rng_;  // random leaves and joins: the same for every strategy of a seed
  Swarm swarm_;
  std::vector<double> block_tps_, compute_, network_, announced_, next_check_;
  std::vector<double> load_per_block_;  // measured at the rank's last reload (s per block; 0: unknown)
};

}  // namespace swarm::job
