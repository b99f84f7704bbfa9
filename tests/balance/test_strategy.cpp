// The four strategies behind one interface.
#include <gtest/gtest.h>

#include "swarm/balance/strategy.hpp"

namespace swarm {
namespace {

TEST(Strategy, NamesRoundTrip) {
  for (StrategyKind k : all_strategies()) EXPECT_EQ(parse_strategy(to_string(k)), k);
  EXPECT_FALSE(parse_strategy("optimal").has_value());
}

TEST(Strategy, NoneLoadsRandomSpansInsideTheModel) {
  auto s = make_strategy(StrategyKind::none, {});
  Rng rng(1);
  const Swarm swarm(10);
  std::vector<int> seen(8, 0);
  for (int i = 0; i < 800; ++i) {
    const Span span = s->place_joiner(swarm, 3, 0.0, rng);
    ASSERT_GE(span.start, 0);
    ASSERT_EQ(span.length(), 3);
    ASSERT_LE(span.end, 10);
    ++seen[static_cast<std::size_t>(span.start)];
  }
  for (int c : seen) EXPECT_GT(c, 50);  // every start drawn (expected 100 each)
  EXPECT_TRUE(s->rebalance(swarm, std::vector<std::size_t>{}, rng).moves.empty());
}

TEST(Strategy, FullMovesTheServerThatRuleTwoSends) {
  const Swarm swarm(4, {{"a", {0, 2}, 1.0, ServerState::online},
                        {"b", {0, 2}, 1.0, ServerState::online},
                        {"c", {2, 4}, 0.5, ServerState::online}});
  auto full = make_strategy(StrategyKind::full, {.balance_quality = 0.75});
  Rng rng(2);
  const std::vector<std::size_t> due = {0, 1, 2};
  const auto result = full->rebalance(swarm, due, rng);
  ASSERT_EQ(result.moves.size(), 1U);  // after a moves, b and c are where they should be
  EXPECT_EQ(result.moves[0].id, "a");
  EXPECT_EQ(result.moves[0].to, (Span{2, 4}));
  Swarm after = swarm;
  apply_moves(after, result.moves, ServerState::joining);
  EXPECT_EQ(after[0].state, ServerState::joining);
  EXPECT_DOUBLE_EQ(swarm_throughput(after), 1.0);
  EXPECT_DOUBLE_EQ(swarm_throughput(after, ServerState::online), 0.5);  // a still reloading
}

TEST(Strategy, UpperBoundIsAtLeastEveryOtherStrategy) {
  Rng rng(8);
  for (int trial = 0; trial < 30; ++trial) {
    const int total = 10 + static_cast<int>(uniform_index(rng, 30));
    Swarm base(total);
    std::vector<Swarm> swarms;
    std::vector<std::unique_ptr<Strategy>> strategies;
    for (StrategyKind k : {StrategyKind::none, StrategyKind::new_only, StrategyKind::full}) {
      strategies.push_back(make_strategy(k, {.balance_quality = 0.99}));
      swarms.emplace_back(total);
    }
    const int n = 3 + static_cast<int>(uniform_index(rng, 15));
    for (int i = 0; i < n; ++i) {
      const int k = 1 + static_cast<int>(uniform_index(rng, static_cast<std::uint64_t>(total)));
      const double t = uniform(rng, 1, 10);
      for (std::size_t s = 0; s < strategies.size(); ++s) {
        const Span span = strategies[s]->place_joiner(swarms[s], k, 0.0, rng);
        swarms[s].add({std::string("s").append(std::to_string(100 + i)), span, t, ServerState::online});
      }
    }
    std::vector<std::vector<Span>> hints;
    for (auto& sw : swarms) {
      std::vector<std::size_t> due(sw.size());
      for (std::size_t i = 0; i < due.size(); ++i) due[i] = i;
      auto r = strategies[0]->rebalance(sw, due, rng);
      std::vector<Span> spans;
      for (const auto& s : sw.servers()) spans.push_back(s.span);
      hints.push_back(spans);
    }
    auto ub = make_strategy(StrategyKind::upper_bound, {.placement_time_limit_s = 0.3});
    BoundaryContext context;
    context.hints = hints;
    const auto result = ub->rebalance(swarms[0], {}, rng, context);
    ASSERT_TRUE(result.placement.has_value());
    for (const auto& sw : swarms) {
      ASSERT_GE(result.placement->value, swarm_throughput(sw) - 1e-9) << "trial " << trial;
    }
    Swarm placed = swarms[0];
    apply_moves(placed, result.moves, ServerState::online);
    ASSERT_NEAR(swarm_throughput(placed), result.placement->value, 1e-9);
  }
}

}  // namespace
}  // namespace swarm
