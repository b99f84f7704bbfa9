// The Petals rules, case by case (as Petals' petals/server/block_selection.py states them) and against naive
// reference computations on random inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "swarm/balance/rules.hpp"

namespace swarm {
namespace {

// The spec's definition, literally: sort every window, take the lexicographically smallest.
int naive_best_start(const std::vector<double>& t, int k) {
  int best = 0;
  std::vector<double> best_window;
  for (int i = 0; i + k <= static_cast<int>(t.size()); ++i) {
    std::vector<double> w(t.begin() + i, t.begin() + i + k);
    std::sort(w.begin(), w.end());
    if (i == 0 || w < best_window) {
      best = i;
      best_window = w;
    }
  }
  return best;
}

Server server(std::string id, int start, int end, double t, ServerState st = ServerState::online) {
  return {std::move(id), {start, end}, t, st};
}

TEST(BestStart, MatchesSortingEveryWindowOnRandomInputs) {
  Rng rng(7);
  for (int trial = 0; trial < 20000; ++trial) {
    const int total = 1 + static_cast<int>(uniform_index(rng, 40));
    const int k = 1 + static_cast<int>(uniform_index(rng, static_cast<std::uint64_t>(total)));
    const int levels = 1 + static_cast<int>(uniform_index(rng, 5));  // few levels: many ties
    std::vector<double> t(static_cast<std::size_t>(total));
    for (double& x : t) {
      x = trial % 3 == 0 ? uniform01(rng) : static_cast<double>(uniform_index(rng, levels));
    }
    ASSERT_EQ(best_start(t, k), naive_best_start(t, k)) << "trial " << trial << " L=" << total << " k=" << k;
  }
}

TEST(BestStart, MatchesOnPlateausValleysAndLongInputs) {
  // Real block throughputs are sums of spans: plateaus of equal values. Valleys make the walk
  // take many rounds (it then finishes from a heap).
  Rng rng(13);
  for (int trial = 0; trial < 3000; ++trial) {
    const int total = 1 + static_cast<int>(uniform_index(rng, 400));
    const int k = 1 + static_cast<int>(uniform_index(rng, static_cast<std::uint64_t>(total)));
    std::vector<double> t(static_cast<std::size_t>(total), 0.0);
    if (trial % 2 == 0) {
      const int spans = 1 + static_cast<int>(uniform_index(rng, 40));
      for (int s = 0; s < spans; ++s) {
        const int len = 1 + static_cast<int>(uniform_index(rng, static_cast<std::uint64_t>(total)));
        const int at = static_cast<int>(uniform_index(rng, static_cast<std::uint64_t>(total - len + 1)));
        const double add = static_cast<double>(1 + uniform_index(rng, 3)) * 0.5;
        for (int b = at; b < at + len; ++b) t[static_cast<std::size_t>(b)] += add;
      }
    } else {
      const int centre = static_cast<int>(uniform_index(rng, static_cast<std::uint64_t>(total)));
      for (int b = 0; b < total; ++b) {
        t[static_cast<std::size_t>(b)] = std::abs(b - centre) + (trial % 4 == 1 ? 1e-9 * uniform01(rng) : 0.0);
      }
    }
    ASSERT_EQ(best_start(t, k), naive_best_start(t, k)) << "trial " << trial << " L=" << total << " k=" << k;
  }
}

TEST(BestStart, IsLeximinNotMinimumNorSum) {
  // Windows of 3 at 0 and 3: (0,4,5) vs (0,1,9): equal minimum, the second smallest decides
  // (start 3), although the window at 0 has the smaller sum.
  const std::vector<double> t = {0, 5, 4, 9, 1, 0};
  EXPECT_EQ(naive_best_start(t, 3), 3);
  EXPECT_EQ(best_start(t, 3), 3);
  // More copies of the minimum win: (0,0,4) at 2 beats (0,4,4) at 0.
  EXPECT_EQ(best_start(std::vector<double>{0, 4, 4, 0, 0, 4}, 3), 2);
}

TEST(BestStart, CompleteTieGoesToSmallestStart) {
  EXPECT_EQ(best_start(std::vector<double>(10, 0.0), 3), 0);
  EXPECT_EQ(best_start(std::vector<double>{1, 2, 1, 2, 1, 2}, 2), 0);
  EXPECT_EQ(best_start(std::vector<double>{2, 1, 1, 2}, 2), 1);
}

TEST(BestStart, RejectsLengthsOutsideTheModel) {
  const std::vector<double> t(4, 1.0);
  EXPECT_THROW((void)best_start(t, 0), std::invalid_argument);
  EXPECT_THROW((void)best_start(t, 5), std::invalid_argument);
  EXPECT_EQ(best_start(t, 4), 0);
}

TEST(BlockThroughputs, SumsCountedServersOnly) {
  const Swarm s(5, {server("b", 0, 3, 2.0), server("a", 2, 5, 1.0, ServerState::joining),
                    server("c", 0, 5, 100.0, ServerState::offline), server("d", 1, 1, 50.0)});
  EXPECT_EQ(block_throughputs(s), (std::vector<double>{2, 2, 3, 1, 1}));
  EXPECT_EQ(block_throughputs(s, ServerState::online), (std::vector<double>{2, 2, 2, 0, 0}));
  EXPECT_DOUBLE_EQ(swarm_throughput(s), 1.0);
  EXPECT_DOUBLE_EQ(swarm_throughput(s, ServerState::online), 0.0);  // disjoint for clients
}

TEST(BlockThroughputs, AccumulatesInIdOrder) {
  // 0.1 + 0.2 + 0.3 rounds differently from 0.3 + 0.2 + 0.1; ids fix the order.
  const Swarm s(1, {server("c", 0, 1, 0.3), server("a", 0, 1, 0.1), server("b", 0, 1, 0.2)});
  EXPECT_EQ(block_throughputs(s)[0], (0.1 + 0.2) + 0.3);
  EXPECT_NE((0.1 + 0.2) + 0.3, (0.3 + 0.2) + 0.1);
}

TEST(Swarm, RejectsBadServers) {
  EXPECT_THROW(Swarm(0), SwarmError);
  EXPECT_THROW(Swarm(4, {server("a", 0, 5, 1)}), SwarmError);
  EXPECT_THROW(Swarm(4, {server("a", 3, 2, 1)}), SwarmError);
  EXPECT_THROW(Swarm(4, {server("a", -1, 2, 1)}), SwarmError);
  EXPECT_THROW(Swarm(4, {server("a", 0, 2, -1)}), SwarmError);
  EXPECT_THROW(Swarm(4, {server("a", 0, 2, NAN)}), SwarmError);
  EXPECT_THROW(Swarm(4, {server("a", 0, 2, INFINITY)}), SwarmError);
  EXPECT_THROW(Swarm(4, {server("a", 0, 2, 1), server("a", 1, 2, 1)}), SwarmError);
  try {
    Swarm(4, {server("x", 0, 9, 1)});
  } catch (const SwarmError& e) {
    EXPECT_EQ(e.field(), "end");
  }
}

TEST(RuleOne, EmptySwarmStartsAtZeroAndOfflineServersDoNotCount) {
  EXPECT_EQ(choose_best_blocks(Swarm(10), 4), (Span{0, 4}));
  const Swarm s(10, {server("a", 0, 6, 5.0), server("b", 6, 10, 5.0, ServerState::offline)});
  EXPECT_EQ(choose_best_blocks(s, 4), (Span{6, 10}));
  const Swarm j(10, {server("a", 0, 6, 5.0), server("b", 6, 10, 5.0, ServerState::joining)});
  EXPECT_EQ(choose_best_blocks(j, 4).start, 0);  // joining counts: blocks 0..5 and 6..9 tie
}

TEST(RuleOne, ChoosesTheNeediestWindowOnRandomSwarms) {
  Rng rng(11);
  for (int trial = 0; trial < 2000; ++trial) {
    const int total = 1 + static_cast<int>(uniform_index(rng, 30));
    std::vector<Server> servers;
    const int n = static_cast<int>(uniform_index(rng, 8));
    for (int i = 0; i < n; ++i) {
      const int k = 1 + static_cast<int>(uniform_index(rng, static_cast<std::uint64_t>(total)));
      const int start = static_cast<int>(uniform_index(rng, static_cast<std::uint64_t>(total - k + 1)));
      servers.push_back(server(std::string("s").append(std::to_string(i)), start, start + k,
                               static_cast<double>(uniform_index(rng, 4)),
                               static_cast<ServerState>(uniform_index(rng, 3))));
    }
    const Swarm swarm(total, servers);
    const int k = 1 + static_cast<int>(uniform_index(rng, static_cast<std::uint64_t>(total)));
    const Span chosen = choose_best_blocks(swarm, k);
    const std::vector<double> t = block_throughputs(swarm);
    std::vector<double> mine(t.begin() + chosen.start, t.begin() + chosen.end);
    std::sort(mine.begin(), mine.end());
    for (int i = 0; i + k <= total; ++i) {
      std::vector<double> other(t.begin() + i, t.begin() + i + k);
      std::sort(other.begin(), other.end());
      ASSERT_TRUE(mine < other || (mine == other && chosen.start <= i)) << "trial " << trial;
    }
  }
}

TEST(RuleTwo, BalanceQualityAboveOneAlwaysMoves) {
  const Swarm s(4, {server("a", 0, 4, 1.0)});
  Rng rng(1);
  const auto d = should_choose_other_blocks(s, 0, 1.01, rng);
  EXPECT_TRUE(d.move);
  EXPECT_EQ(d.reason, RebalanceReason::forced);
  EXPECT_FALSE(d.quality.has_value());
}

TEST(RuleTwo, OneServerStaysThanksToTheEpsBias) {
  // Leaving subtracts t*(1+eps), so its own blocks look neediest and it stays.
  const Swarm s(10, {server("a", 3, 7, 1.0)});
  Rng rng(1);
  const auto d = should_choose_other_blocks(s, 0, 0.75, rng);
  EXPECT_FALSE(d.move);
  EXPECT_EQ(d.reason, RebalanceReason::already_best);
}

TEST(RuleTwo, NeverDisconnectsTheSwarm) {
  // a is the only server of blocks 0..1: leaving would make the swarm disjoint.
  const Swarm s(4, {server("a", 0, 2, 1.0), server("b", 2, 4, 1.0), server("c", 2, 4, 1.0)});
  Rng rng(1);
  const auto d = should_choose_other_blocks(s, 0, 0.75, rng);
  EXPECT_FALSE(d.move);
  EXPECT_EQ(d.reason, RebalanceReason::would_disjoin);
}

TEST(RuleTwo, MovesWhenTheSimulatedSwarmIsEnoughFaster) {
  // T = [2,2,0.5,0.5]: a moving to blocks 2..3 gives [1,1,1.5,1.5]; quality 0.5/1.
  const Swarm s(4, {server("a", 0, 2, 1.0), server("b", 0, 2, 1.0), server("c", 2, 4, 0.5)});
  Rng rng(1);
  const auto d = should_choose_other_blocks(s, 0, 0.75, rng);
  EXPECT_TRUE(d.move);
  EXPECT_EQ(d.reason, RebalanceReason::compared);
  ASSERT_TRUE(d.quality.has_value());
  EXPECT_NEAR(*d.quality, 0.5, 1e-12);
  // The same improvement does not clear a stricter threshold: 0.5 < 0.5 - eps is false.
  const auto strict = should_choose_other_blocks(s, 0, 0.5, rng);
  EXPECT_FALSE(strict.move);
  EXPECT_NEAR(*strict.quality, 0.5, 1e-12);
}

TEST(RuleTwo, OfflineOrEmptyServersHaveNothingToMove) {
  const Swarm s(4, {server("a", 0, 2, 1.0, ServerState::offline), server("b", 2, 2, 1.0)});
  Rng rng(1);
  EXPECT_EQ(should_choose_other_blocks(s, 0, 0.75, rng).reason, RebalanceReason::not_counted);
  EXPECT_EQ(should_choose_other_blocks(s, 1, 0.75, rng).reason, RebalanceReason::not_counted);
}

TEST(RuleTwo, ZeroThroughputSwarmNeverMoves) {
  const Swarm s(6, {server("a", 3, 6, 0.0), server("b", 0, 3, 0.0)});
  Rng rng(3);
  const auto d = should_choose_other_blocks(s, 0, 0.75, rng);
  EXPECT_FALSE(d.move);  // a's best start is 0, but the new minimum stays 0 < eps
  EXPECT_EQ(d.reason, RebalanceReason::no_improvement);
}

TEST(RuleTwo, SameSeedSameDecision) {
  Rng gen(5);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<Server> servers;
    for (int i = 0; i < 12; ++i) {
      const int k = 1 + static_cast<int>(uniform_index(gen, 10));
      const int start = static_cast<int>(uniform_index(gen, static_cast<std::uint64_t>(20 - k + 1)));
      servers.push_back(server(std::string("s").append(std::to_string(i)), start, start + k, uniform(gen, 0, 10)));
    }
    const Swarm s(20, servers);
    Rng a(trial), b(trial);
    const auto da = should_choose_other_blocks(s, 0, 0.9, a);
    const auto db = should_choose_other_blocks(s, 0, 0.9, b);
    ASSERT_EQ(da.move, db.move);
    ASSERT_EQ(da.quality, db.quality);
  }
}

}  // namespace
}  // namespace swarm
