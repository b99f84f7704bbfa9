#include "swarm/strategy.hpp"

#include <array>

namespace swarm {

std::string_view to_string(StrategyKind kind) {
  switch (kind) {
    case StrategyKind::none: return "none";
    case StrategyKind::new_only: return "new_only";
    case StrategyKind::full: return "full";
    case StrategyKind::upper_bound: return "upper_bound";
  }
  return "?";
}

std::span<const StrategyKind> all_strategies() {
  static constexpr std::array kinds{StrategyKind::none, StrategyKind::new_only, StrategyKind::full,
                                    StrategyKind::upper_bound};
  return kinds;
}

std::optional<StrategyKind> parse_strategy(std::string_view name) {
  for (StrategyKind k : all_strategies()) {
    if (to_string(k) == name) return k;
  }
  return std::nullopt;
}

void apply_moves(Swarm& swarm, std::span<const Move> moves, ServerState state) {
  for (const Move& m : moves) {
    const auto i = swarm.find(m.id);
    if (!i) continue;  // left meanwhile
    swarm.set_span(*i, m.to);
    swarm.set_state(*i, state);
  }
}

namespace {

// Paper strategy 1: a joiner loads a uniformly random contiguous span; nobody moves.
class NoBalancing final : public Strategy {
 public:
  StrategyKind kind() const override { return StrategyKind::none; }
  Span place_joiner(const Swarm& swarm, int num_blocks, Rng& rng) override {
    const auto starts = static_cast<std::uint64_t>(swarm.total_blocks() - num_blocks + 1);
    const int start = static_cast<int>(uniform_index(rng, starts));
    return {start, start + num_blocks};
  }
  RebalanceResult rebalance(const Swarm&, std::span<const std::size_t>, Rng&,
                            std::span<const std::vector<Span>>) override {
    return {};
  }
};

// Paper strategy 2: rule 1 for joiners; nobody moves.
class NewOnly : public Strategy {
 public:
  StrategyKind kind() const override { return StrategyKind::new_only; }
  Span place_joiner(const Swarm& swarm, int num_blocks, Rng&) override {
    return choose_best_blocks(swarm, num_blocks);
  }
  RebalanceResult rebalance(const Swarm&, std::span<const std::size_t>, Rng&,
                            std::span<const std::vector<Span>>) override {
    return {};
  }
};

// Paper strategy 3: rule 1 for joiners, rule 2 for every server whose check is due.
class FullBalancing final : public NewOnly {
 public:
  explicit FullBalancing(double balance_quality) : balance_quality_(balance_quality) {}
  StrategyKind kind() const override { return StrategyKind::full; }
  RebalanceResult rebalance(const Swarm& swarm, std::span<const std::size_t> due, Rng& rng,
                            std::span<const std::vector<Span>>) override {
    RebalanceResult result;
    Swarm now = swarm;  // later checkers see earlier movers at their new spans
    for (std::size_t i : due) {
      const RebalanceDecision d = should_choose_other_blocks(now, i, balance_quality_, rng);
      if (!d.move) continue;
      const Span from = now[i].span;
      now.set_state(i, ServerState::offline);  // announce offline, then rule 1 on the real swarm
      const Span to = choose_best_blocks(now, from.length());
      now.set_span(i, to);
      now.set_state(i, ServerState::joining);
      result.moves.push_back({now[i].id, from, to, d.quality});
    }
    return result;
  }

 private:
  double balance_quality_;
};

// Paper strategy 4: every period, all counted servers are re-placed optimally (the yardstick).
class UpperBound final : public Strategy {
 public:
  UpperBound(double time_limit_s, bool reproducible) : time_limit_s_(time_limit_s), reproducible_(reproducible) {}
  StrategyKind kind() const override { return StrategyKind::upper_bound; }
  Span place_joiner(const Swarm& swarm, int num_blocks, Rng&) override {
    return choose_best_blocks(swarm, num_blocks);  // until the next boundary re-places it
  }
  RebalanceResult rebalance(const Swarm& swarm, std::span<const std::size_t>, Rng&,
                            std::span<const std::vector<Span>> hints) override {
    std::vector<std::size_t> counted;
    std::vector<PlacementServer> servers;
    PlacementOptions options;
    options.time_limit_s = time_limit_s_;
    options.reproducible = reproducible_;
    std::vector<int> current;
    for (std::size_t i = 0; i < swarm.size(); ++i) {
      if (!swarm[i].counted()) continue;
      counted.push_back(i);
      servers.push_back({swarm[i].throughput, swarm[i].span.length()});
      current.push_back(swarm[i].span.start);
    }
    options.hints.push_back(std::move(current));
    for (const auto& hint : hints) {
      if (hint.size() != swarm.size()) continue;
      std::vector<int> starts;
      for (std::size_t i : counted) {
        starts.push_back(hint[i].length() == swarm[i].span.length() ? hint[i].start : -1);
      }
      options.hints.push_back(std::move(starts));
    }
    RebalanceResult result;
    result.placement = optimal_placement(swarm.total_blocks(), servers, options);
    for (std::size_t j = 0; j < counted.size(); ++j) {
      const Server& s = swarm[counted[j]];
      const int start = result.placement->starts[j];
      if (start != s.span.start) {
        result.moves.push_back({s.id, s.span, {start, start + s.span.length()}, std::nullopt});
      }
    }
    return result;
  }

 private:
  double time_limit_s_;
  bool reproducible_;
};

}  // namespace

std::unique_ptr<Strategy> make_strategy(StrategyKind kind, const StrategyOptions& options) {
  switch (kind) {
    case StrategyKind::none: return std::make_unique<NoBalancing>();
    case StrategyKind::new_only: return std::make_unique<NewOnly>();
    case StrategyKind::full: return std::make_unique<FullBalancing>(options.balance_quality);
    case StrategyKind::upper_bound: return std::make_unique<UpperBound>(options.placement_time_limit_s, options.placement_reproducible);
  }
  return nullptr;
}

}  // namespace swarm
