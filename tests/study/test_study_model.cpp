// The dispatch study's pure model: routes derived from a swarm with churn and changing speeds,
// and the sessions. Every property here is one the study's numbers rely on.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "swarm/study/dispatch_study.hpp"

namespace swarm::study {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

ServerClass make_class(const char* name, int span, double block_rps, double share, double sigma = 0.0) {
  ServerClass k;
  k.device.name = name;
  k.device.span = span;
  k.device.block_rps = block_rps;
  k.device.bandwidth_mbps = 1000;
  k.device.share = share;
  k.device.load_seconds_per_block = 2;
  k.speed_sigma = sigma;
  k.speed_interval_s = 20;
  return k;
}

// A small "hardest" swarm: two classes, changing speeds, joins and leaves.
StudyConfig churning() {
  StudyConfig c;
  c.seed = 11;
  c.horizon_s = 900;
  c.blocks = 24;
  c.hidden_size = 4096;
  c.min_route_speed = 20;
  c.initial_servers = 40;
  c.arrival_rate = 0.05;
  c.mean_lifetime = 400;
  c.classes = {make_class("big", 8, 20000, 1, 0.4), make_class("small", 4, 6000, 2, 0.6)};
  c.sessions = 500;
  c.policies = {dispatch::PolicyKind::static_split};
  return c;
}

double factor_at(const ServerRecord& s, double t) {
  double f = 1.0;
  for (const auto& c : s.factor) {
    if (c.time <= t) f = c.speed;
  }
  return f;
}

TEST(StudyModel, EveryRouteIsAChainCoveringAllBlocks) {
  const StudyConfig c = churning();
  const SwarmModel m = build_swarm(c);
  ASSERT_GT(m.routes.size(), 0u);
  for (const Route& r : m.routes) {
    int pos = 0;
    for (std::uint32_t h : r.hops) {
      const Span s = m.servers[h].span;
      EXPECT_TRUE(s.start <= pos && pos < s.end) << r.worker.name << " hop " << h << " at block " << pos;
      pos = s.end;
    }
    EXPECT_EQ(pos, c.blocks) << r.worker.name;
    EXPECT_GE(r.allocation, c.min_route_speed);
    EXPECT_EQ(r.worker.announced_speed, r.allocation);
  }
}

TEST(StudyModel, RoutesLiveOnlyWhileEveryHopIsOnlineAndNeverOverbookAServer) {
  const StudyConfig c = churning();
  const SwarmModel m = build_swarm(c);
  EXPECT_GT(m.routes_broken, 0u) << "the config is meant to have churn";
  for (const Route& r : m.routes) {
    const dispatch::WorkerSpec& w = r.worker;
    EXPECT_LT(w.join_time, w.leave_time);
    double first_leave = kInf;
    for (std::uint32_t h : r.hops) {
      EXPECT_LE(m.servers[h].online_time, w.join_time);
      const double leave = m.servers[h].plan.leave_time;
      if (leave <= c.horizon_s) first_leave = std::min(first_leave, leave);
    }
    EXPECT_EQ(w.leave_time, first_leave) << w.name;
  }
  // At every instant a route starts, the routes alive through each server reserve at most its
  // announced throughput.
  for (const Route& probe : m.routes) {
    const double t = probe.worker.join_time;
    std::map<std::uint32_t, double> reserved;
    for (const Route& r : m.routes) {
      if (r.worker.join_time <= t && t < r.worker.leave_time) {
        for (std::uint32_t h : r.hops) reserved[h] += r.allocation;
      }
    }
    for (const auto& [h, v] : reserved) {
      EXPECT_LE(v, m.servers[h].plan.throughput * (1 + 1e-9)) << "server " << h << " at t = " << t;
    }
  }
}

TEST(StudyModel, RealSpeedIsTheAllocationTimesTheSlowestHop) {
  const StudyConfig c = churning();
  const SwarmModel m = build_swarm(c);
  std::size_t changes = 0;
  for (const Route& r : m.routes) {
    const auto expect = [&](double t) {
      double f = kInf;
      for (std::uint32_t h : r.hops) f = std::min(f, factor_at(m.servers[h], t));
      return r.allocation * f;
    };
    EXPECT_DOUBLE_EQ(r.worker.speed, expect(r.worker.join_time));
    double last = r.worker.join_time;
    for (const auto& ch : r.worker.speed_changes) {
      EXPECT_GT(ch.time, last);
      EXPECT_LT(ch.time, std::min(r.worker.leave_time, c.horizon_s));
      EXPECT_DOUBLE_EQ(ch.speed, expect(ch.time));
      last = ch.time;
      ++changes;
    }
  }
  EXPECT_GT(changes, 0u);
}

TEST(StudyModel, StaticSwarmWithoutChurnHasFixedRoutesAtTimeZero) {
  StudyConfig c = churning();
  c.arrival_rate = 0;
  c.mean_lifetime = 0;
  c.classes = {make_class("one", 6, 12000, 1)};
  const SwarmModel m = build_swarm(c);
  ASSERT_GT(m.routes.size(), 0u);
  EXPECT_EQ(m.routes_at_start, m.routes.size());
  EXPECT_EQ(m.routes_broken, 0u);
  double capacity = 0;
  for (const Route& r : m.routes) {
    EXPECT_EQ(r.worker.join_time, 0.0);
    EXPECT_EQ(r.worker.leave_time, kInf);
    EXPECT_TRUE(r.worker.speed_changes.empty());
    EXPECT_EQ(r.worker.speed, r.allocation);
    capacity += r.allocation;
  }
  EXPECT_DOUBLE_EQ(capacity, m.route_capacity_at_start);
  // Routes can carry no more than the swarm's bottleneck block.
  EXPECT_LE(m.route_capacity_at_start, m.swarm_throughput_at_start * (1 + 1e-9));
  EXPECT_GT(m.route_capacity_at_start, 0.5 * m.swarm_throughput_at_start);
}

TEST(StudyModel, SameSeedSameModelOtherSeedOtherModel) {
  const StudyConfig c = churning();
  const SwarmModel a = build_swarm(c);
  const SwarmModel b = build_swarm(c);
  ASSERT_EQ(a.routes.size(), b.routes.size());
  for (std::size_t i = 0; i < a.routes.size(); ++i) {
    EXPECT_EQ(a.routes[i].worker.name, b.routes[i].worker.name);
    EXPECT_EQ(a.routes[i].worker.speed, b.routes[i].worker.speed);
    EXPECT_EQ(a.routes[i].worker.leave_time, b.routes[i].worker.leave_time);
  }
  StudyConfig other = c;
  other.seed = 12;
  const SwarmModel d = build_swarm(other);
  bool differs = d.routes.size() != a.routes.size();
  for (std::size_t i = 0; !differs && i < a.routes.size(); ++i) differs = a.routes[i].worker.name != d.routes[i].worker.name;
  EXPECT_TRUE(differs);
}

TEST(StudyModel, MinRouteSpeedDropsThinChains) {
  StudyConfig c = churning();
  c.min_route_speed = 1e9;
  EXPECT_TRUE(build_swarm(c).routes.empty());
}

TEST(StudyModel, MovingPlacementsAreRejected) {
  StudyConfig c = churning();
  c.placement = StrategyKind::full;
  EXPECT_THROW((void)build_swarm(c), std::invalid_argument);
}

TEST(StudySessions, BatchAndPoissonWithTheWorkFormula) {
  StudyConfig c = churning();
  c.prompt_tokens_min = 10;
  c.prompt_tokens_max = 20;
  c.new_tokens_min = 1;
  c.new_tokens_max = 3;
  c.prompt_weight = 0.5;
  const Sessions batch = make_sessions(c);
  ASSERT_EQ(batch.tasks.size(), c.sessions);
  for (std::size_t i = 0; i < batch.tasks.size(); ++i) {
    EXPECT_EQ(batch.tasks[i].arrival, 0.0);
    EXPECT_GE(batch.prompt_tokens[i], 10);
    EXPECT_LE(batch.prompt_tokens[i], 20);
    EXPECT_GE(batch.new_tokens[i], 1);
    EXPECT_LE(batch.new_tokens[i], 3);
    EXPECT_DOUBLE_EQ(batch.tasks[i].work, 0.5 * batch.prompt_tokens[i] + batch.new_tokens[i]);
  }
  c.session_rate = 10;
  const Sessions poisson = make_sessions(c);
  for (std::size_t i = 1; i < poisson.tasks.size(); ++i) {
    EXPECT_GT(poisson.tasks[i].arrival, poisson.tasks[i - 1].arrival);
  }
  // 500 arrivals at 10/s: about 50 s (the sum of 500 exponential gaps: sd ~ 2.2 s).
  EXPECT_NEAR(poisson.tasks.back().arrival, 50.0, 10.0);
}

TEST(StudyDiffusion, NeighbourGraphsCoverEveryWorker) {
  StudyConfig c = churning();
  const SwarmModel m = build_swarm(c);
  c.diffusion_graph = DiffusionGraphKind::ring;
  EXPECT_TRUE(dispatch_options(c, m).diffusion.neighbours.empty());
  c.diffusion_graph = DiffusionGraphKind::routes;
  EXPECT_EQ(dispatch_options(c, m).diffusion.neighbours.nodes(), m.routes.size());
  c.diffusion_graph = DiffusionGraphKind::random;
  const auto g = dispatch_options(c, m).diffusion.neighbours;
  EXPECT_EQ(g.nodes(), m.routes.size());
  EXPECT_TRUE(g.connected());
}

}  // namespace
}  // namespace swarm::study
