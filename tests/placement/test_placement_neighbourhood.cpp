// The exact search around servers held in place, and the large-neighbourhood search built on it.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "../../src/placement/placement_neighbourhood.hpp"
#include "../../src/placement/placement_search.hpp"
#include "swarm/placement/placement.hpp"
#include "swarm/util/random.hpp"
#include "placement_enumeration.hpp"

namespace swarm {
namespace {

using detail::SearchClass;
using detail::SearchOutcome;

const auto kFar = std::chrono::steady_clock::now() + std::chrono::hours(1);

using test_support::enumerate_on_top;

std::vector<SearchClass> random_classes(Rng& rng, int total, int most_classes, int most_count) {
  std::vector<SearchClass> classes;
  const int n = 1 + static_cast<int>(uniform_index(rng, static_cast<std::uint64_t>(most_classes)));
  for (int c = 0; c < n; ++c) {
    classes.push_back({1.0 + static_cast<double>(uniform_index(rng, 4)),
                       1 + static_cast<int>(uniform_index(rng, static_cast<std::uint64_t>(total))),
                       1 + static_cast<int>(uniform_index(rng, static_cast<std::uint64_t>(most_count)))});
  }
  return classes;
}

// Servers held in place only add coverage: the search around them reaches exactly the targets
// some placement of the free servers reaches (by enumeration), and what it returns does.
TEST(PlacementSearch, AroundFixedServersReachesExactlyWhatSomePlacementReaches) {
  Rng rng(41);
  for (int trial = 0; trial < 300; ++trial) {
    const int total = 2 + static_cast<int>(uniform_index(rng, 9));
    std::vector<double> fixed(static_cast<std::size_t>(total), 0.0);
    const int held = static_cast<int>(uniform_index(rng, 4));
    for (int i = 0; i < held; ++i) {
      const int k = 1 + static_cast<int>(uniform_index(rng, static_cast<std::uint64_t>(total)));
      const int s = static_cast<int>(uniform_index(rng, static_cast<std::uint64_t>(total - k + 1)));
      const double t = 1.0 + static_cast<double>(uniform_index(rng, 4));
      for (int b = s; b < s + k; ++b) fixed[static_cast<std::size_t>(b)] += t;
    }
    const auto classes = random_classes(rng, total, 3, 3);
    const double truth = enumerate_on_top(fixed, classes);
    for (double target : {truth, truth + 0.5, truth + 1.0, truth - 1.0}) {
      if (target <= 0) continue;
      const auto r = detail::reach_target(total, classes, target, {}, {kFar, kFar}, fixed);
      ASSERT_EQ(r.outcome == SearchOutcome::reached, target <= truth)
          << "trial " << trial << " target " << target << " truth " << truth;
      if (r.outcome != SearchOutcome::reached) continue;
      std::vector<double> coverage = fixed;
      for (std::size_t c = 0; c < classes.size(); ++c) {
        ASSERT_EQ(r.starts[c].size(), static_cast<std::size_t>(classes[c].count));
        for (int s : r.starts[c]) {
          ASSERT_GE(s, 0);
          ASSERT_LE(s + classes[c].num_blocks, total);
          for (int b = s; b < s + classes[c].num_blocks; ++b) coverage[static_cast<std::size_t>(b)] += classes[c].throughput;
        }
      }
      ASSERT_GE(*std::min_element(coverage.begin(), coverage.end()), target - 1e-9) << "trial " << trial;
    }
  }
}

TEST(PlacementSearch, RejectsFixedCoverageOfAnotherModel) {
  const std::vector<SearchClass> classes{{1.0, 2, 2}};
  const std::vector<double> fixed(5, 0.0);
  EXPECT_THROW((void)detail::reach_target(4, classes, 1.0, {}, {kFar, kFar}, fixed), std::invalid_argument);
}

double value_of(int total, const std::vector<SearchClass>& classes, const std::vector<std::vector<int>>& starts) {
  std::vector<PlacementServer> servers;
  std::vector<int> flat;
  for (std::size_t c = 0; c < classes.size(); ++c) {
    EXPECT_EQ(starts[c].size(), static_cast<std::size_t>(classes[c].count));
    for (int s : starts[c]) {
      EXPECT_GE(s, 0);
      EXPECT_LE(s + classes[c].num_blocks, total);
      servers.push_back({classes[c].throughput, classes[c].num_blocks});
      flat.push_back(s);
    }
  }
  return placement_value(total, servers, flat);
}

// From every server at block 0 (the worst placement) to the optimum by enumeration: attempts
// free at most 40 servers, and these swarms have at most 9, so one that frees all of them
// decides the optimum; it runs until it gets there, so a wrong write-back shows as a timeout or a
// wrong value. With three workers too, which share what each finds (a worker publishing a
// placement it did not improve, or adopting a stale one, fails it the same way).
TEST(PlacementNeighbourhood, ReachesTheOptimumFromTheWorstPlacement) {
  for (const int threads : {1, 3}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    Rng rng(43);
    for (int trial = 0; trial < 200; ++trial) {
    const int total = 2 + static_cast<int>(uniform_index(rng, 8));
      const auto classes = random_classes(rng, total, 3, 3);
      const std::vector<double> none(static_cast<std::size_t>(total), 0.0);
      const double truth = enumerate_on_top(none, classes);
      std::vector<std::vector<int>> starts;
      for (const auto& c : classes) starts.emplace_back(static_cast<std::size_t>(c.count), 0);
      const auto r = detail::improve_by_neighbourhoods(
          total, classes, {}, starts,
          {.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10), .stop_at = truth, .unit = 0.5,
           .seed = 5, .threads = threads});
      ASSERT_DOUBLE_EQ(value_of(total, classes, starts), r.value) << "trial " << trial;
      ASSERT_DOUBLE_EQ(r.value, truth) << "trial " << trial;
    }
  }
}

// 64 servers of six GPU classes, and a placement of them spread over 80 blocks to climb from.
std::vector<SearchClass> six_gpu_classes() {
  return {{2500, 22, 11}, {2400, 40, 11}, {3000, 33, 11}, {2500, 5, 11}, {1200, 36, 10}, {2800, 31, 10}};
}

std::vector<std::vector<int>> spread_over_80_blocks(const std::vector<SearchClass>& classes) {
  std::vector<std::vector<int>> starts(classes.size());
  for (std::size_t c = 0; c < classes.size(); ++c) {
    for (int m = 0; m < classes[c].count; ++m) {
      starts[c].push_back(static_cast<int>((m * 29 + c * 7) % static_cast<std::size_t>(80 - classes[c].num_blocks + 1)));
    }
  }
  return starts;
}

// At the scale of the issue, each attempt capped in work so that neither a whole-swarm attempt
// nor the clock decides: it must climb from a spread placement, never down, and give the same
// placement on every run of the same work.
TEST(PlacementNeighbourhood, ClimbsAt64ServersAndRepeatsUnderWorkCaps) {
  const std::vector<SearchClass> classes = six_gpu_classes();
  const std::vector<std::vector<int>> spread = spread_over_80_blocks(classes);
  const double from = value_of(80, classes, spread);
  const detail::NeighbourhoodLimits limits{.deadline = std::chrono::steady_clock::time_point::max(),
                                           .max_work = 200'000, .attempt_work = 5'000, .stop_at = 1e18,
                                           .unit = 100, .seed = 7};
  auto first = spread, second = spread;
  const auto a = detail::improve_by_neighbourhoods(80, classes, {}, first, limits);
  const auto b = detail::improve_by_neighbourhoods(80, classes, {}, second, limits);
  EXPECT_GT(a.improvements, 0);
  EXPECT_GT(a.value, from);
  EXPECT_DOUBLE_EQ(value_of(80, classes, first), a.value);
  EXPECT_EQ(first, second);
  EXPECT_EQ(a.attempts, b.attempts);
  EXPECT_GE(a.work, 200'000);  // it stopped on its work cap, not on a clock
}

// Workers at 64 servers, by the clock: they share one work cap (each attempt may overrun it by
// at most its own cap), and what comes back is the best placement any of them published, never
// below where they started.
TEST(PlacementNeighbourhood, WorkersShareTheirBestPlacementAndOneWorkCap) {
  const std::vector<SearchClass> classes = six_gpu_classes();
  std::vector<std::vector<int>> starts = spread_over_80_blocks(classes);
  const double from = value_of(80, classes, starts);
  const int threads = 4;
  const detail::NeighbourhoodLimits limits{.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60),
                                           .max_work = 200'000, .attempt_work = 5'000, .stop_at = 1e18,
                                           .unit = 100, .seed = 7, .threads = threads};
  const auto r = detail::improve_by_neighbourhoods(80, classes, {}, starts, limits);
  EXPECT_GT(r.improvements, 0);
  EXPECT_GT(r.value, from);
  EXPECT_DOUBLE_EQ(value_of(80, classes, starts), r.value);
  EXPECT_GE(r.work, 200'000);
  EXPECT_LE(r.work, 200'000 + threads * 5'000);
}

// The workers' meeting point: a worker that adopted a placement before another improved on it
// may offer one between the two, which must not replace the better.
TEST(PlacementNeighbourhood, SharedPlacementKeepsTheBestOffered) {
  detail::SharedPlacement best({{0, 1}}, 5.0);
  long version = -1;
  std::vector<std::vector<int>> starts;
  double value = 0.0;
  best.adopt(version, starts, value);
  EXPECT_EQ(starts, (std::vector<std::vector<int>>{{0, 1}}));
  EXPECT_DOUBLE_EQ(value, 5.0);
  EXPECT_TRUE(best.offer({{2, 3}}, 7.0));
  EXPECT_FALSE(best.offer({{4, 5}}, 6.0));  // stale: above what its worker had, below the best
  EXPECT_FALSE(best.offer({{4, 5}}, 7.0));
  best.adopt(version, starts, value);
  EXPECT_EQ(starts, (std::vector<std::vector<int>>{{2, 3}}));
  EXPECT_DOUBLE_EQ(value, 7.0);
  starts = {{9, 9}};  // nothing offered since: adopting leaves the worker's own placement alone
  best.adopt(version, starts, value);
  EXPECT_EQ(starts, (std::vector<std::vector<int>>{{9, 9}}));
  double taken = 0.0;
  EXPECT_EQ(std::move(best).take(taken), (std::vector<std::vector<int>>{{2, 3}}));
  EXPECT_DOUBLE_EQ(taken, 7.0);
}

TEST(PlacementNeighbourhood, ReturnsAtOnceWithNothingToImprove) {
  std::vector<std::vector<int>> none;
  const detail::NeighbourhoodLimits limits{.deadline = std::chrono::steady_clock::now() + std::chrono::hours(1),
                                           .stop_at = 5.0, .unit = 0.5};
  EXPECT_EQ(detail::improve_by_neighbourhoods(8, {}, {}, none, limits).attempts, 0);
  // Already at the bound.
  const std::vector<SearchClass> one{{5.0, 8, 1}};
  std::vector<std::vector<int>> at_bound{{0}};
  const auto r = detail::improve_by_neighbourhoods(8, one, {}, at_bound, limits);
  EXPECT_EQ(r.attempts, 0);
  EXPECT_DOUBLE_EQ(r.value, 5.0);
}

// bench_placement's appendix-E swarm of seed 10: 64 servers, ten classes, in this order.
std::vector<PlacementServer> appendix_e_seed_10() {
  const std::vector<SearchClass> classes{{152.587890625, 7, 2},  {305.17578125, 11, 3},   {457.763671875, 11, 5},
                                         {762.939453125, 7, 14}, {1525.87890625, 11, 9},  {1525.87890625, 23, 2},
                                         {2288.818359375, 11, 6}, {3625, 15, 6},          {5948.7179487179483, 38, 8},
                                         {7250, 23, 9}};
  std::vector<PlacementServer> servers;
  for (const auto& c : classes) servers.insert(servers.end(), static_cast<std::size_t>(c.count), {c.throughput, c.num_blocks});
  return servers;
}

// In optimal_placement: the appendix-E swarm of seed 10, reproducible, 10 s. Its last phase with tabu rounds alone ends at 49,747.5;
// alternating with the neighbourhood rounds, at 49,897.9 (the bound is 50,004.2). Fails if the
// rounds stop running or stop improving; the same on every machine (work, not the clock).
TEST(PlacementNeighbourhood, LiftAnAppendixESwarmBeyondTabuRoundsAlone) {
  const std::vector<PlacementServer> servers = appendix_e_seed_10();
  const Placement p = optimal_placement(80, servers, {.time_limit_s = 10, .reproducible = true, .hints = {}});
  EXPECT_GT(p.value, 49'800.0) << "bound " << p.bound << ", method " << p.method;
  EXPECT_GE(p.bound, p.value);
}

// By the clock with three workers, the last phase's rounds run one attempt stream and one tabu
// chain a worker: whatever the timing, the placement that comes back is a real one of these
// servers at the value reported, under a sound bound (a worker writing back a torn or another
// class's placement, or an exception lost in a thread, fails it). Clean under ThreadSanitizer
// (OpenBLAS's own threads, which Clp's dense factorization uses, excepted).
TEST(PlacementNeighbourhood, WorkersOfTheLastPhaseReturnARealPlacement) {
  const std::vector<PlacementServer> servers = appendix_e_seed_10();
  const Placement p = optimal_placement(80, servers, {.time_limit_s = 3, .threads = 3, .hints = {}});
  ASSERT_EQ(p.starts.size(), servers.size());
  for (std::size_t i = 0; i < servers.size(); ++i) {
    ASSERT_GE(p.starts[i], 0);
    ASSERT_LE(p.starts[i] + servers[i].num_blocks, 80);
  }
  EXPECT_DOUBLE_EQ(placement_value(80, servers, p.starts), p.value);
  EXPECT_GE(p.bound, p.value);
  EXPECT_GT(p.value, 0.0);  // how close it gets depends on the machine's speed: bench_placement measures that
}

}  // namespace
}  // namespace swarm
