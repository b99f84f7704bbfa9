#include "swarm/balance/strategy.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <map>

namespace swarm {

std::string_view to_string(StrategyKind kind) {
  switch (kind) {
    case StrategyKind::none: return "none";
    case StrategyKind::new_only: return "new_only";
    case StrategyKind::full: return "full";
    case StrategyKind::upper_bound: return "upper_bound";
    case StrategyKind::move_aware: return "move_aware";
  }
  return "?";
}

std::span<const StrategyKind> all_strategies() {
  static constexpr std::array kinds{StrategyKind::none, StrategyKind::new_only, StrategyKind::full,
                                    StrategyKind::upper_bound, StrategyKind::move_aware};
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
  Span place_joiner(const Swarm& swarm, int num_blocks, double, Rng& rng) override {
    const auto starts = static_cast<std::uint64_t>(swarm.total_blocks() - num_blocks + 1);
    const int start = static_cast<int>(uniform_index(rng, starts));
    return {start, start + num_blocks};
  }
  RebalanceResult rebalance(const Swarm&, std::span<const std::size_t>, Rng&, const BoundaryContext&) override {
    return {};
  }
};

// Paper strategy 2: rule 1 for joiners; nobody moves.
class NewOnly : public Strategy {
 public:
  StrategyKind kind() const override { return StrategyKind::new_only; }
  Span place_joiner(const Swarm& swarm, int num_blocks, double, Rng&) override {
    return choose_best_blocks(swarm, num_blocks);
  }
  RebalanceResult rebalance(const Swarm&, std::span<const std::size_t>, Rng&, const BoundaryContext&) override {
    return {};
  }
};

// Paper strategy 3: rule 1 for joiners, rule 2 for every server whose check is due.
class FullBalancing final : public NewOnly {
 public:
  explicit FullBalancing(double balance_quality) : balance_quality_(balance_quality) {}
  StrategyKind kind() const override { return StrategyKind::full; }
  RebalanceResult rebalance(const Swarm& swarm, std::span<const std::size_t> due, Rng& rng,
                            const BoundaryContext&) override {
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

// The counted servers of a swarm as the placement code sees them.
struct CountedServers {
  std::vector<std::size_t> index;  // in the swarm
  std::vector<PlacementServer> servers;
  std::vector<int> starts;         // where they are
  std::vector<double> cost;        // what moving each costs (throughput x load seconds)
};

CountedServers counted_servers(const Swarm& swarm, std::span<const double> load_seconds) {
  CountedServers c;
  for (std::size_t i = 0; i < swarm.size(); ++i) {
    if (!swarm[i].counted()) continue;
    c.index.push_back(i);
    c.servers.push_back({swarm[i].throughput, swarm[i].span.length()});
    c.starts.push_back(swarm[i].span.start);
    c.cost.push_back(swarm[i].throughput * (i < load_seconds.size() ? load_seconds[i] : 0.0));
  }
  return c;
}

// Solves the placement of the counted servers (the current spans and `hints` as candidates) and
// keeps every server where an optimal placement allows.
Placement solve(const Swarm& swarm, const CountedServers& c, double time_limit_s, bool reproducible,
                std::span<const std::vector<Span>> hints) {
  PlacementOptions options;
  options.time_limit_s = time_limit_s;
  options.reproducible = reproducible;
  options.hints.push_back(c.starts);
  for (const auto& hint : hints) {
    if (hint.size() != swarm.size()) continue;
    std::vector<int> starts;
    for (std::size_t i : c.index) {
      starts.push_back(hint[i].length() == swarm[i].span.length() ? hint[i].start : -1);
    }
    options.hints.push_back(std::move(starts));
  }
  Placement p = optimal_placement(swarm.total_blocks(), c.servers, options);
  keep_current_where_optimal(swarm.total_blocks(), c.servers, c.starts, c.cost, p);
  return p;
}

// Paper strategy 4: every period, all counted servers are re-placed optimally (the yardstick).
class UpperBound final : public Strategy {
 public:
  UpperBound(double time_limit_s, bool reproducible) : time_limit_s_(time_limit_s), reproducible_(reproducible) {}
  StrategyKind kind() const override { return StrategyKind::upper_bound; }
  Span place_joiner(const Swarm& swarm, int num_blocks, double, Rng&) override {
    return choose_best_blocks(swarm, num_blocks);  // until the next boundary re-places it
  }
  RebalanceResult rebalance(const Swarm& swarm, std::span<const std::size_t>, Rng&,
                            const BoundaryContext& context) override {
    const CountedServers c = counted_servers(swarm, context.load_seconds);
    RebalanceResult result;
    result.placement = solve(swarm, c, time_limit_s_, reproducible_, context.hints);
    for (std::size_t j = 0; j < c.index.size(); ++j) {
      const Server& s = swarm[c.index[j]];
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

// Beyond the paper: moves toward a near-optimal placement only where they pay for their reload.
class MoveAware final : public Strategy {
 public:
  explicit MoveAware(const StrategyOptions& o) : o_(o) {}
  StrategyKind kind() const override { return StrategyKind::move_aware; }

  // The start that lifts the planned swarm throughput most; rule 1 breaks ties (and decides
  // alone while the joiner's throughput is unknown).
  Span place_joiner(const Swarm& swarm, int num_blocks, double throughput, Rng&) override {
    const std::vector<double> cov = block_throughputs(swarm, ServerState::joining);
    const int rule1 = best_start(cov, num_blocks);
    if (throughput <= 0) return {rule1, rule1 + num_blocks};
    const int blocks = swarm.total_blocks();
    auto value_at = [&](int start) {
      double v = std::numeric_limits<double>::infinity();
      for (int b = 0; b < blocks; ++b) {
        const bool inside = start <= b && b < start + num_blocks;
        v = std::min(v, cov[static_cast<std::size_t>(b)] + (inside ? throughput : 0.0));
      }
      return v;
    };
    int best = rule1;
    double best_value = value_at(rule1);
    for (int start = 0; start + num_blocks <= blocks; ++start) {
      const double v = value_at(start);
      if (v > best_value * (1 + 1e-9) + 1e-12) {
        best = start;
        best_value = v;
      }
    }
    return {best, best + num_blocks};
  }

  RebalanceResult rebalance(const Swarm& swarm, std::span<const std::size_t>, Rng&,
                            const BoundaryContext& context) override {
    RebalanceResult result;
    std::vector<int> target;
    if (context.target.size() == swarm.size()) {
      // A placement solved elsewhere for these servers: still keep whom an optimum allows.
      const CountedServers c = counted_servers(swarm, context.load_seconds);
      Placement p;
      for (std::size_t i : c.index) p.starts.push_back(context.target[i]);
      bool valid = true;
      for (std::size_t j = 0; j < c.index.size(); ++j) {
        valid = valid && p.starts[j] >= 0 && p.starts[j] + c.servers[j].num_blocks <= swarm.total_blocks();
      }
      if (valid && !c.index.empty()) {
        keep_current_where_optimal(swarm.total_blocks(), c.servers, c.starts, c.cost, p);
        target.assign(swarm.size(), -1);
        for (std::size_t j = 0; j < c.index.size(); ++j) target[c.index[j]] = p.starts[j];
        result.placement = std::move(p);
      }
    }
    if (target.empty()) {
      const CountedServers c = counted_servers(swarm, context.load_seconds);
      if (!c.index.empty()) {
        result.placement = solve(swarm, c, o_.placement_time_limit_s, o_.placement_reproducible, context.hints);
        target.assign(swarm.size(), -1);
        for (std::size_t j = 0; j < c.index.size(); ++j) target[c.index[j]] = result.placement->starts[j];
      }
    }
    MovePlanOptions options;
    options.horizon_s = o_.move_horizon_s;
    options.min_gain = o_.move_min_gain;
    options.movable.assign(swarm.size(), 1);
    for (std::size_t i = 0; i < swarm.size(); ++i) {
      const auto last = last_move_.find(swarm[i].id);
      if (last != last_move_.end() && context.now_s - last->second < o_.move_min_interval_s) options.movable[i] = 0;
    }
    MovePlan plan = plan_moves(swarm, target, context.load_seconds, options);
    for (const PlannedMove& m : plan.moves) {
      const Server& s = swarm[m.server];
      result.moves.push_back({s.id, s.span, m.to, std::nullopt});
      last_move_[s.id] = context.now_s;
    }
    result.plan = std::move(plan);
    return result;
  }

 private:
  StrategyOptions o_;
  std::map<std::string, double, std::less<>> last_move_;  // server id -> time of its last move
};

}  // namespace

std::unique_ptr<Strategy> make_strategy(StrategyKind kind, const StrategyOptions& options) {
  switch (kind) {
    case StrategyKind::none: return std::make_unique<NoBalancing>();
    case StrategyKind::new_only: return std::make_unique<NewOnly>();
    case StrategyKind::full: return std::make_unique<FullBalancing>(options.balance_quality);
    case StrategyKind::upper_bound: return std::make_unique<UpperBound>(options.placement_time_limit_s, options.placement_reproducible);
    case StrategyKind::move_aware: return std::make_unique<MoveAware>(options);
  }
  return nullptr;
}

}  // namespace swarm
