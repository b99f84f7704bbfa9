#pragma once
// The balancing strategies of the paper's experiment (Section E) behind one interface, used
// unchanged by the simulator (modelled throughputs) and the MPI job (measured ones).
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "swarm/placement.hpp"
#include "swarm/random.hpp"
#include "swarm/rules.hpp"
#include "swarm/swarm.hpp"

namespace swarm {

enum class StrategyKind { none, new_only, full, upper_bound };

[[nodiscard]] std::string_view to_string(StrategyKind kind);
[[nodiscard]] std::optional<StrategyKind> parse_strategy(std::string_view name);
[[nodiscard]] std::span<const StrategyKind> all_strategies();

struct StrategyOptions {
  double balance_quality = 0.75;       // rule 2 threshold (`full`); paper: 0.99 (p = 1%)
  double placement_time_limit_s = 5;   // integer programme limit (`upper_bound`)
  bool placement_reproducible = false; // count that limit in work: same swarm, same placement
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
  std::optional<Placement> placement;  // `upper_bound`: the placement and its certified bound
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  [[nodiscard]] virtual StrategyKind kind() const = 0;
  [[nodiscard]] std::string_view name() const { return to_string(kind()); }

  /// The span a joining server of `num_blocks` blocks loads. The swarm must not count it.
  [[nodiscard]] virtual Span place_joiner(const Swarm& swarm, int num_blocks, Rng& rng) = 0;

  /// A period boundary. `due` lists the servers whose balance check is due, in the order they
  /// check (`full` runs rule 2 for each in turn on the swarm as the earlier movers left it: a
  /// mover goes offline, re-chooses with rule 1 and is joining at its new span). `upper_bound`
  /// re-places every counted server, trying `hints` (other placements, one span per server of
  /// `swarm`) as candidates. `none` and `new_only` never move anybody.
  [[nodiscard]] virtual RebalanceResult rebalance(const Swarm& swarm, std::span<const std::size_t> due,
                                                  Rng& rng,
                                                  std::span<const std::vector<Span>> hints = {}) = 0;
};

[[nodiscard]] std::unique_ptr<Strategy> make_strategy(StrategyKind kind, const StrategyOptions& options);

/// Applies moves to a swarm: each mover gets its new span in state `state` (joining while it
/// reloads; the simulator's `upper_bound` moves are free and land online).
void apply_moves(Swarm& swarm, std::span<const Move> moves, ServerState state);

}  // namespace swarm
