// The simulator: determinism, churn applied exactly once, the bound above every strategy.
#include <gtest/gtest.h>

#include <map>

#include "swarm/sim/simulator.hpp"

namespace swarm::sim {
namespace {

struct Recorder final : SimObserver {
  std::map<StrategyKind, std::vector<PeriodRecord>> records;
  std::vector<ServerPlan> plans;
  void on_start(const SimConfig&, const std::vector<ServerPlan>& p) override { plans = p; }
  void on_period(StrategyKind k, const PeriodRecord& r) override { records[k].push_back(r); }
};

SimConfig small_config() {
  SimConfig c;
  c.blocks = 20;
  c.hidden_size = 4096;
  c.duration = 1200;
  c.period = 60;
  c.seed = 7;
  c.balance_quality = 0.9;
  c.placement_time_limit = 0.2;
  c.initial_servers = 12;
  c.initial_join_window = 30;
  c.arrival_rate = 0.01;
  c.mean_lifetime = 600;
  c.classes = {{"big", 1, 8, 20000, 1000, 0, 2, 0.1}, {"small", 2, 3, 5000, 200, 0.3, 2, 0.2}};
  c.joins = {{300, "big"}, {300, "small"}};
  return c;
}

bool same(const PeriodRecord& a, const PeriodRecord& b) {
  return a.time == b.time && a.swarm_throughput == b.swarm_throughput &&
         a.swarm_throughput_sampled == b.swarm_throughput_sampled && a.upper_bound == b.upper_bound &&
         a.moves == b.moves && a.block_throughput == b.block_throughput && a.span_start == b.span_start &&
         a.span_end == b.span_end && a.presence == b.presence;
}

TEST(Sim, SameSeedSameTrace) {
  Recorder a, b;
  const SimConfig c = small_config();
  (void)run(c, a);
  (void)run(c, b);
  ASSERT_EQ(a.records.size(), c.strategies.size());  // the default list: all five
  for (const auto& [k, list] : a.records) {
    ASSERT_EQ(list.size(), b.records[k].size());
    for (std::size_t i = 0; i < list.size(); ++i) ASSERT_TRUE(same(list[i], b.records[k][i])) << to_string(k) << " " << i;
  }
  SimConfig other = c;
  other.seed = 8;
  Recorder d;
  (void)run(other, d);
  EXPECT_NE(d.plans.size() == a.plans.size() && d.plans[0].throughput == a.plans[0].throughput, true);
}

// Servers with jittered compute all differ, so the placement is never proven within its 50 ms
// and stops on its budget: counted in work, the trace is still the same on every run.
TEST(Sim, UnprovenPlacementsStillGiveTheSameTrace) {
  SimConfig c;
  c.blocks = 80;
  c.duration = 300;
  c.period = 60;
  c.seed = 11;
  c.strategies = {StrategyKind::upper_bound};
  c.placement_time_limit = 0.05;
  c.placement_reproducible = true;
  c.initial_servers = 64;
  c.classes = {{"a", 1, 13, 3000, 800, 0.2, 2, 0.3}, {"b", 1, 23, 1500, 300, 0.1, 2, 0.3}};
  Recorder a, b;
  (void)run(c, a);
  (void)run(c, b);
  const auto& list = a.records[StrategyKind::upper_bound];
  ASSERT_EQ(list.size(), 5U);
  for (std::size_t i = 0; i < list.size(); ++i) {
    ASSERT_TRUE(same(list[i], b.records[StrategyKind::upper_bound][i])) << "period " << i;
  }
}

TEST(Sim, ChurnIsAppliedExactlyOnceInEveryStrategy) {
  Recorder r;
  SimConfig c = small_config();
  c.leaves = {{600, "s00003"}};
  (void)run(c, r);
  ASSERT_FALSE(r.plans.empty());
  for (const auto& [k, list] : r.records) {
    for (const PeriodRecord& p : list) {
      int expected = 0;
      for (std::size_t j = 0; j < r.plans.size(); ++j) {
        const bool alive = r.plans[j].join_time <= p.time && p.time < r.plans[j].leave_time;
        expected += alive;
        ASSERT_EQ(p.presence[j] != static_cast<std::uint8_t>(Presence::absent), alive)
            << to_string(k) << " t=" << p.time << " server " << r.plans[j].id;
      }
      ASSERT_EQ(p.present, expected);
    }
  }
  EXPECT_LE(r.plans[3].leave_time, 600.0);
}

TEST(Sim, BoundIsAboveEveryStrategyAndCertified) {
  Recorder r;
  (void)run(small_config(), r);
  for (const auto& [k, list] : r.records) {
    for (const PeriodRecord& p : list) {
      ASSERT_GE(p.upper_bound + 1e-9, p.swarm_throughput_sampled) << to_string(k) << " t=" << p.time;
      ASSERT_GE(p.upper_bound_certified + 1e-9, p.upper_bound);
    }
  }
  // The yardstick reaches the bound it reports.
  for (const PeriodRecord& p : r.records[StrategyKind::upper_bound]) {
    ASSERT_NEAR(p.swarm_throughput_sampled, p.upper_bound, 1e-9);
  }
}

TEST(Sim, OnlyFullAndUpperBoundMove) {
  Recorder r;
  (void)run(small_config(), r);
  for (StrategyKind k : {StrategyKind::none, StrategyKind::new_only}) {
    for (const PeriodRecord& p : r.records[k]) ASSERT_EQ(p.moves, 0);
  }
  int full_moves = 0;
  for (const PeriodRecord& p : r.records[StrategyKind::full]) full_moves += p.moves;
  EXPECT_GT(full_moves, 0);
}

TEST(Sim, JoinersLoadBeforeServing) {
  SimConfig c = small_config();
  c.initial_servers = 0;
  c.arrival_rate = 0;
  c.mean_lifetime = 0;
  c.joins = {{0, "big"}};
  c.classes[0].span = c.blocks;               // one server holds the whole model
  c.classes[0].load_seconds_per_block = 4;   // 20 blocks: online at t = 80 s
  c.strategies = {StrategyKind::new_only};
  Recorder r;
  (void)run(c, r);
  const auto& list = r.records[StrategyKind::new_only];
  EXPECT_EQ(list[0].presence[0], static_cast<std::uint8_t>(Presence::joining));  // t = 60
  EXPECT_EQ(list[1].presence[0], static_cast<std::uint8_t>(Presence::online));   // t = 120
  EXPECT_TRUE(list[0].disjoint);
  // Online from t = 80 s: the first period saw nothing, the second 40 of its 60 s.
  EXPECT_DOUBLE_EQ(list[0].swarm_throughput, 0.0);
  EXPECT_DOUBLE_EQ(list[0].disjoint_time, 60.0);
  EXPECT_NEAR(list[1].swarm_throughput, list[1].swarm_throughput_sampled * 40.0 / 60.0, 1e-9);
  EXPECT_NEAR(list[1].disjoint_time, 20.0, 1e-9);
  EXPECT_NEAR(list[2].swarm_throughput, list[2].swarm_throughput_sampled, 1e-9);
}

TEST(Sim, StopsAtABoundaryWhenAsked) {
  Recorder r;
  int calls = 0;
  const SimResult res = run(small_config(), r, [&] { return ++calls > 3; });
  EXPECT_TRUE(res.stopped_early);
  EXPECT_EQ(res.periods_run, 3);
  for (const auto& [k, list] : r.records) EXPECT_EQ(list.size(), 3U);
}

TEST(Sim, RandomCheckPeriodsAlsoBalance) {
  SimConfig c = small_config();
  c.check = CheckMode::random;
  c.mean_check_period = 30;
  c.strategies = {StrategyKind::full};
  Recorder r;
  const SimResult res = run(c, r);
  EXPECT_GT(res.summaries.at(0).moves, 0);
}

// move_aware in the simulator: its downtime is its moves' load times, no server moves twice
// within run.move_min_interval, and what it planned never exceeds the bound for the servers.
TEST(Sim, MoveAwareChargesItsReloadsAndDoesNotFlap) {
  SimConfig c = small_config();
  c.duration = 3600;
  c.strategies = {StrategyKind::move_aware};
  c.move_min_interval = 300;
  c.arrival_rate = 0;  // joiners come at boundaries only, so every move shows between two records
  Recorder r;
  (void)run(c, r);
  const auto& list = r.records.at(StrategyKind::move_aware);
  ASSERT_EQ(list.size(), 60U);
  std::vector<double> last_move(r.plans.size(), -1e18);
  int moves = 0;
  for (std::size_t p = 1; p < list.size(); ++p) {
    double downtime = 0;
    int moved = 0;
    for (std::size_t j = 0; j < r.plans.size(); ++j) {
      const bool both = list[p - 1].span_start[j] >= 0 && list[p].span_start[j] >= 0;
      if (!both || list[p - 1].span_start[j] == list[p].span_start[j]) continue;
      ASSERT_GE(list[p].time - last_move[j], c.move_min_interval) << r.plans[j].id << " at " << list[p].time;
      last_move[j] = list[p].time;
      downtime += r.plans[j].load_time;
      ++moved;
    }
    EXPECT_EQ(list[p].moves, moved) << "period " << p;
    EXPECT_NEAR(list[p].reload_downtime, downtime, 1e-6) << "period " << p;
    EXPECT_LE(list[p].planned_throughput, list[p].upper_bound_certified * (1 + 1e-9) + 1e-9);
    EXPECT_GE(list[p].expected_gain, 0);
    moves += moved;
  }
  EXPECT_GT(moves, 0) << "a churned swarm of mixed servers needs some moves";
}

TEST(Churn, FlashCrowdJoinsWithinItsWindow) {
  SimConfig c = small_config();
  const std::size_t before = plan_servers(c).size();
  c.flash_crowd = {600, 40, 120};
  const std::vector<ServerPlan> plans = plan_servers(c);
  ASSERT_EQ(plans.size(), before + 40);
  int inside = 0;
  for (const auto& p : plans) inside += p.join_time >= 600 && p.join_time <= 720;
  EXPECT_GE(inside, 40);
}

TEST(Churn, AClassThatLeavesLeavesAtOnceAndSendsNoMore) {
  SimConfig c = small_config();
  c.arrival_rate = 0.05;
  c.classes[0].leave_at = 500;
  int big = 0;
  for (const auto& p : plan_servers(c)) {
    if (p.device_class != 0) continue;
    ++big;
    EXPECT_LT(p.join_time, 500);
    EXPECT_LE(p.leave_time, 500);
  }
  EXPECT_GT(big, 0);
  // Swarm throughput after the class left: only the small class's servers remain.
  Recorder r;
  (void)run(c, r);
  const auto& rec = r.records[StrategyKind::new_only];
  for (const auto& p : rec) {
    if (p.time <= 500) continue;
    for (std::size_t j = 0; j < r.plans.size(); ++j) {
      if (r.plans[j].device_class == 0) {
        EXPECT_EQ(p.presence[j], static_cast<std::uint8_t>(Presence::absent)) << p.time;
      }
    }
  }
}

TEST(Churn, DriftingSpeedsReachEveryLaneAtBoundaries) {
  SimConfig c = small_config();
  const std::vector<ServerPlan> fixed = plan_servers(c);
  c.classes[1].speed_drift = 1.0;
  const std::vector<ServerPlan> drifting = plan_servers(c);
  ASSERT_EQ(fixed.size(), drifting.size());
  const auto periods = static_cast<std::size_t>(c.duration / c.period);
  bool changed = false;
  for (std::size_t i = 0; i < fixed.size(); ++i) {
    // Drift has its own stream: the churn trace itself does not change.
    EXPECT_EQ(fixed[i].join_time, drifting[i].join_time);
    EXPECT_EQ(fixed[i].throughput, drifting[i].throughput);
    if (drifting[i].device_class == 1) {
      ASSERT_EQ(drifting[i].drifted.size(), periods);
      for (double t : drifting[i].drifted) changed = changed || t != drifting[i].throughput;
    } else {
      EXPECT_TRUE(drifting[i].drifted.empty());
    }
  }
  EXPECT_TRUE(changed);
  // The swarm the lanes see follows: `none` never moves, so its throughput changes only by
  // churn and drift; the same seed gives the same drift.
  Recorder a, b, still;
  (void)run(c, a);
  (void)run(c, b);
  SimConfig no_drift = c;
  no_drift.classes[1].speed_drift = 0;
  (void)run(no_drift, still);
  bool differs = false;
  const auto& ra = a.records[StrategyKind::none];
  for (std::size_t k = 0; k < ra.size(); ++k) {
    EXPECT_TRUE(same(ra[k], b.records[StrategyKind::none][k])) << k;
    differs = differs || ra[k].swarm_throughput != still.records[StrategyKind::none][k].swarm_throughput;
  }
  EXPECT_TRUE(differs);
}

}  // namespace
}  // namespace swarm::sim
