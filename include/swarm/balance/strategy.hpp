#pragma once
// The balancing strategies of the paper's experiment (Section E), and `move_aware`, behind one
// interface, used unchanged by the simulator (modelled throughputs) and the MPI job (measured ones).
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "swarm/balance/move_planner.hpp"
#include "swarm/placement/placement.hpp"
#include "swarm/util/random.hpp"
#include "swarm/balance/rules.hpp"
#include "swarm/balance/swarm.hpp"

namespace swarm {

enum class StrategyKind { none, new_only, full, upper_bound, move_aware };

[[nodiscard]] std::string_view to_string(StrategyKind kind);
[[nodiscard]] std::optional<StrategyKind> parse_strategy(std::string_view name);
[[nodiscard]] std::span<const StrategyKind> all_strategies();

/// When rule 2 runs for a server: at every boundary (an epoch of the job, a period of the
/// simulator), or at random times around a mean interval, as Petals' servers check.
enum class CheckMode { every_boundary, random };

struct StrategyOptions {
  double balance_quality = 0.75;       // rule 2 threshold (`full`); paper: 0.99 (p = 1%)
  double placement_time_limit_s = 5;   // integer programme limit (`upper_bound`)
  bool placement_reproducible = false; // count that limit in work: same swarm, same placement
  double move_horizon_s = 1800;        // `move_aware`: seconds over which a move's gain is counted
  double move_min_interval_s = 600;    // `move_aware`: a server that moved stays put this long
  double move_min_gain = 0;            // `move_aware`: least relative gain in swarm throughput a plan must promise
};

/// What a boundary knows besides the swarm.
struct BoundaryContext {
  double now_s = 0;  // time of the boundary (`move_aware`'s minimum interval between moves)
  /// Per server of the swarm: seconds it needs to load its span (`move_aware` charges a move
  /// throughput x this); missing or 0: unknown, the move costs nothing.
  std::span<const double> load_seconds;
  /// `upper_bound`: other placements (one span per server of the swarm) to try as candidates.
  std::span<const std::vector<Span>> hints;
  /// `move_aware`: a placement already solved for these servers (one start per server of the
  /// swarm); empty: the strategy solves one itself.
  std::span<const int> target;
};

/// One decision of a period boundary: server `id` leaves its span and loads `to`.
struct Move {
  std::string id;
  Span from;
  Span to;
  std::optional<double> quality;  // rule 2's initial/new ratio (`full`)
};

struct RebalanceResult {
  std::vector<Move> moves;
  std::optional<Placement> placement;  // `upper_bound`, `move_aware`: the placement (target) solved
  std::optional<MovePlan> plan;        // `move_aware`: expected gain and cost of the moves
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  [[nodiscard]] virtual StrategyKind kind() const = 0;
  [[nodiscard]] std::string_view name() const { return to_string(kind()); }

  /// The span a joining server of `num_blocks` blocks and `throughput` (0: not known yet) loads.
  /// The swarm must not count it.
  [[nodiscard]] virtual Span place_joiner(const Swarm& swarm, int num_blocks, double throughput, Rng& rng) = 0;

  /// A period boundary. `due` lists the servers whose balance check is due, in the order they
  /// check (`full` runs rule 2 for each in turn on the swarm as the earlier movers left it: a
  /// mover goes offline, re-chooses with rule 1 and is joining at its new span). `upper_bound`
  /// re-places every counted server optimally, keeping each where an optimal placement allows.
  /// `move_aware` plans toward a near-optimal placement and makes the moves that pay for their
  /// reload (move_planner.hpp); `due` does not matter to either. `none` and `new_only` never
  /// move anybody.
  [[nodiscard]] virtual RebalanceResult rebalance(const Swarm& swarm, std::span<const std::size_t> due,
                                                  Rng& rng, const BoundaryContext& context = {}) = 0;
};

[[nodiscard]] std::unique_ptr<Strategy> make_strategy(StrategyKind kind, const StrategyOptions& options);

/// Applies moves to a swarm: each mover gets its new span in state `state` (joining while it
/// reloads; the simulator's `upper_bound` moves are free and land online).
void apply_moves(Swarm& swarm, std::span<const Move> moves, ServerState state);

}  // namespace swarm
