// The job's pure pieces: routes, the boundary decisions, the configuration.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "swarm/job/admission.hpp"
#include "swarm/job/balancer.hpp"
#include "swarm/job/config.hpp"
#include "swarm/job/dispatcher.hpp"
#include "swarm/job/protocol.hpp"
#include "swarm/job/routing.hpp"

namespace swarm::job {
namespace {

RouteServer server(int rank, int start, int end, double tps, int sessions = 0) {
  RouteServer s;
  s.rank = rank;
  s.span = {start, end};
  s.online = true;
  s.block_tokens_per_s = tps;
  s.sessions = sessions;
  return s;
}

void expect_chain(const std::vector<Hop>& route, int blocks) {
  ASSERT_FALSE(route.empty());
  EXPECT_EQ(route.front().first, 0);
  EXPECT_EQ(route.back().last, blocks);
  for (std::size_t i = 1; i < route.size(); ++i) EXPECT_EQ(route[i].first, route[i - 1].last);
}

TEST(Routing, CoversAllBlocksAndPrefersFastServers) {
  const std::vector<RouteServer> servers = {server(0, 0, 4, 100), server(1, 0, 4, 1000), server(2, 4, 8, 100),
                                            server(3, 2, 8, 1000)};
  const auto route = shortest_route(8, servers, 1);
  ASSERT_TRUE(route.has_value());
  expect_chain(*route, 8);
  EXPECT_EQ(route->front().rank, 1);  // the fast one
}

TEST(Routing, DisjointSwarmHasNoRoute) {
  const std::vector<RouteServer> servers = {server(0, 0, 3, 100), server(1, 4, 8, 100)};
  EXPECT_FALSE(shortest_route(8, servers, 1).has_value());
  std::vector<RouteServer> offline = {server(0, 0, 8, 100)};
  offline[0].online = false;
  EXPECT_FALSE(shortest_route(8, offline, 1).has_value());
}

TEST(Routing, LoadSpreadsSessionsOverReplicas) {
  std::vector<RouteServer> servers = {server(0, 0, 8, 100), server(1, 0, 8, 100)};
  const auto first = shortest_route(8, servers, 1);
  ++servers[static_cast<std::size_t>(first->front().rank)].sessions;
  const auto second = shortest_route(8, servers, 1);
  EXPECT_NE(first->front().rank, second->front().rank);
}

TEST(Routing, PartialSpansEnterWhereThePreviousHopEnded) {
  const std::vector<RouteServer> servers = {server(0, 0, 5, 100), server(1, 3, 8, 100)};
  const auto route = shortest_route(8, servers, 1);
  ASSERT_TRUE(route.has_value());
  ASSERT_EQ(route->size(), 2U);
  EXPECT_EQ((*route)[1], (Hop{1, 5, 8}));
}

JobConfig config_with(StrategyKind strategy) {
  JobConfig c;
  c.strategy = strategy;
  c.balance_quality = 0.99;
  return c;
}

std::vector<Measurement> measurements(const std::vector<double>& tps) {
  std::vector<Measurement> out;
  for (std::size_t r = 0; r < tps.size(); ++r) {
    Measurement m;
    m.rank = static_cast<int>(r);
    m.block_tokens_per_s = tps[r];
    out.push_back(m);
  }
  return out;
}

TEST(Balancer, InitialPlacementCoversTheModelWithRuleOne) {
  const JobConfig c = config_with(StrategyKind::new_only);
  Balancer b(c, 8, {4, 4, 4, 4});
  b.update(measurements({100, 100, 100, 100}));
  const BoundaryDecision d = b.initial();
  ASSERT_EQ(d.assignment.size(), 4U);
  EXPECT_EQ(d.joined.size(), 4U);
  std::vector<int> cover(8, 0);
  for (const Assignment& a : d.assignment) {
    EXPECT_TRUE(a.reload);
    EXPECT_EQ(a.span_end - a.span_start, 4);
    for (int x = a.span_start; x < a.span_end; ++x) ++cover[static_cast<std::size_t>(x)];
  }
  for (int x : cover) EXPECT_EQ(x, 2);  // rule 1 spreads two replicas evenly
  EXPECT_GT(swarm_throughput(b.swarm(), ServerState::online), 0);
}

TEST(Balancer, ScheduledChurnActsAtItsBoundary) {
  JobConfig c = config_with(StrategyKind::new_only);
  c.churn.leaves = {{3, 1}};  // rank 1 leaves before epoch 3 (counted from 1)
  c.churn.joins = {{4, 1}};
  Balancer b(c, 8, {4, 4, 4, 4});
  b.update(measurements({100, 100, 100, 100}));
  (void)b.initial();
  EXPECT_TRUE(b.boundary(1).left.empty());  // before epoch 2
  const BoundaryDecision leave = b.boundary(2);  // before epoch 3
  EXPECT_EQ(leave.left, (std::vector<int>{1}));
  EXPECT_EQ(leave.assignment[1].state, ServerState::offline);
  const BoundaryDecision join = b.boundary(3);
  EXPECT_EQ(join.joined, (std::vector<int>{1}));
  EXPECT_TRUE(join.assignment[1].reload);
  EXPECT_EQ(join.assignment[1].state, ServerState::online);
}

TEST(Balancer, RandomChurnNeverTakesTheLastServer) {
  JobConfig c = config_with(StrategyKind::new_only);
  c.churn.leave_probability = 1.0;  // every serving rank draws a leave at every boundary
  Balancer b(c, 8, {8, 8, 8});
  b.update(measurements({100, 100, 100}));
  (void)b.initial();
  for (int epoch = 1; epoch < 6; ++epoch) {
    const BoundaryDecision d = b.boundary(epoch);
    int serving = 0;
    for (const Assignment& a : d.assignment) serving += a.state != ServerState::offline;
    EXPECT_EQ(serving, 1) << "boundary " << epoch;  // all but one leave; the last one stays
  }
}

TEST(Balancer, FullBalancingMovesAServerOffACrowdedSpan) {
  const JobConfig c = config_with(StrategyKind::full);
  Balancer b(c, 8, {4, 4, 4});
  b.update(measurements({100, 100, 100}));
  (void)b.initial();  // ranks 0 and 2 on blocks 0-3, rank 1 alone on 4-7
  // Rank 1 turns out slow: rule 2 should move rank 0 or 2 to the starved half.
  b.update(measurements({1000, 50, 1000}));
  const BoundaryDecision d = b.boundary(1);
  ASSERT_FALSE(d.moves.empty());
  for (const Move& m : d.moves) {
    const int r = std::stoi(m.id.substr(1));
    EXPECT_EQ(d.assignment[static_cast<std::size_t>(r)].reload, 1);
    EXPECT_EQ(d.assignment[static_cast<std::size_t>(r)].span_start, m.to.start);
  }
}

// What the job predicts: every hop runs its server's whole span, so a server of one-block rate
// R on k blocks passes R / k; rank 0's rate counts for the share of the epoch its client left.
TEST(Balancer, PredictsTheRateTheSpansCanPass) {
  const JobConfig c = config_with(StrategyKind::new_only);
  Balancer b(c, 8, {4, 4, 4, 4});
  b.update(measurements({100, 100, 100, 100}));
  (void)b.initial();  // two replicas of every block
  EXPECT_DOUBLE_EQ(b.predicted(), 2 * 100.0 / 4);
  std::vector<Measurement> m = measurements({400, 400, 400, 400});
  m[0].client_seconds = 0.5;  // rank 0 was the client half of a 1-second epoch
  b.update(m, 1.0);
  // Rank 0's half of the model is served by it (200/4) and by its replica (400/4).
  EXPECT_DOUBLE_EQ(b.predicted(), 200.0 / 4 + 400.0 / 4);
  m[1].network_tokens_per_s = 10;  // a measured link caps its server
  b.update(m, 1.0);
  EXPECT_LT(b.predicted(), 200.0 / 4 + 400.0 / 4);
  EXPECT_DOUBLE_EQ(b.predicted(), route_capacity(8, b.route_servers()));  // what the client routes on
}

TEST(Protocol, HeadersOfAnyLengthRoundTrip) {
  Header h;
  h.kind = PacketKind::batch;
  h.batch = 77;
  h.hop = 69;
  for (int r = 0; r < 70; ++r) h.route.push_back({r, r, r + 1});
  h.segments = {{5, 1, 16, 0}, {9, 4, 1, 33}};
  const std::vector<std::byte> bytes = encode(h);
  EXPECT_EQ(bytes.size(), max_header_bytes(70, 2));
  EXPECT_EQ(decode(bytes, 3), h);
  EXPECT_EQ(h.next_peer(), 0) << "after the last hop: the client";
  h.hop = 3;
  EXPECT_EQ(h.next_peer(), 4);
  EXPECT_EQ(h.rows(), 16 + 4);
}

TEST(Protocol, BytesThatAreNotAHeaderAreRefusedNamingTheSource) {
  Header h;
  h.route = {{1, 0, 8}};
  std::vector<std::byte> bytes = encode(h);
  for (const std::vector<std::byte>& bad :
       {std::vector<std::byte>(bytes.begin(), bytes.end() - 1), std::vector<std::byte>(3), [&] {
          auto b = bytes;
          b[0] = std::byte{0};  // magic
          return b;
        }()}) {
    try {
      (void)decode(bad, 5);
      ADD_FAILURE() << "accepted " << bad.size() << " bytes";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("from rank 5"), std::string::npos) << e.what();
    }
  }
}

TEST(Balancer, UpperBoundReportsItsPlacement) {
  const JobConfig c = config_with(StrategyKind::upper_bound);
  Balancer b(c, 8, {4, 4, 4, 4});
  b.update(measurements({100, 200, 300, 400}));
  (void)b.initial();
  const BoundaryDecision d = b.boundary(1);
  ASSERT_TRUE(d.placement.has_value());
  EXPECT_NEAR(d.placement->value, swarm_throughput(b.swarm(), ServerState::online), 1e-9);
}

std::string config_error(const std::string& text, std::vector<std::string> args = {}, int world = 4) {
  // Tests run as parallel processes: the pid keeps their files apart.
  const auto path = std::filesystem::temp_directory_path() / (std::to_string(::getpid()) + "_swarm_job_test.ini");
  std::ofstream(path) << text;
  const std::string tables[] = {"class"};
  try {
    const JobFile job(path, schema(), tables, std::move(args));
    (void)load_config(job, world);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(JobConfig, RejectsBadValuesNamingKeyAndValue) {
  const auto expect = [](const std::string& msg, std::initializer_list<const char*> parts) {
    ASSERT_FALSE(msg.empty());
    EXPECT_NE(msg.find("swarm_job_test.ini"), std::string::npos) << msg;
    for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << p << " not in " << msg;
  };
  expect(config_error("[run]\nepochs = 0\n"), {"run.epochs", "0"});
  expect(config_error("[run]\nstrategy = magic\n"), {"run.strategy", "magic"});
  expect(config_error("[run]\nbogus = 1\n"), {"run.bogus"});
  expect(config_error("[model]\nheads = 3\n"), {"model.heads", "3"});
  expect(config_error("[model]\nkv_heads = 3\n"), {"model.kv_heads", "3"});
  expect(config_error("[servers]\nspan = 99\n"), {"servers.span", "99"});
  expect(config_error("[servers]\nclasses = fast\n"), {"servers.classes", "fast"});
  expect(config_error("[class.fast]\ncompute_factor = 0.5\n"), {"class.fast.compute_factor", "0.5"});
  expect(config_error("[churn]\nleaves = 2 9\n"), {"churn.leaves", "2 9"});
  expect(config_error("[churn]\nleaves = 1 0\n"), {"churn.leaves", "1 0"});
  expect(config_error("[workload]\narrival = bursty\n"), {"workload.arrival", "bursty"});
  // Byte counts of the cache and memory budgets must stay exact in 64 bits.
  expect(config_error("[servers]\nmax_cache_mb = 1e300\n"), {"servers.max_cache_mb", "1e+300", "[0, 1099511627776]"});
  expect(config_error("[servers]\nmemory_mb = -1\n"), {"servers.memory_mb", "-1"});
  EXPECT_NE(config_error("", {"--prompt-tokens", "1,x"}).find("prompt-tokens"), std::string::npos);
  EXPECT_EQ(config_error("[run]\nepochs = 3\n"), "");
}

TEST(JobConfig, SpansAndClassesPerRank) {
  JobConfig c;
  c.classes = {{"fast", 1, 0, 0, 6}, {"slow", 3, 0, 0, 0}};
  c.rank_classes = {"fast", "slow"};
  c.span = 3;
  EXPECT_EQ(c.span_of(0, 4, 8), 6);
  EXPECT_EQ(c.span_of(1, 4, 8), 3);
  EXPECT_EQ(c.class_of(3).name, "slow");
  JobConfig automatic;
  EXPECT_EQ(automatic.span_of(0, 4, 8), 4);  // ceil(2 * 8 / 4): two replicas per block
  EXPECT_EQ(automatic.span_of(0, 1, 8), 8);
}

TEST(JobConfig, AClassSlowsDownFromItsEpochOn) {
  JobConfig c;
  DeviceClass fast, drifting, standard;
  fast.name = "fast";
  fast.slowdown_from = 3;  // 1-based: epochs 0 and 1 (0-based) at full speed
  fast.slowdown_factor = 6;
  drifting.name = "drifting";
  drifting.slowdown_sigma = 0.5;
  drifting.slowdown_from = 2;
  drifting.slowdown_factor = 2;
  standard.name = "standard";
  c.classes = {fast, drifting, standard};
  c.rank_classes = {"fast", "drifting", "standard"};
  EXPECT_EQ(c.slowdown_of(0, 0), 1.0);
  EXPECT_EQ(c.slowdown_of(0, 1), 1.0);
  EXPECT_EQ(c.slowdown_of(0, 2), 6.0);
  EXPECT_EQ(c.slowdown_of(0, 9), 6.0);
  EXPECT_EQ(c.slowdown_of(2, 5), 1.0);
  // The random draw is the same per rank and epoch, and the factor multiplies it.
  const double before = c.slowdown_of(1, 0), after = c.slowdown_of(1, 1);
  EXPECT_GE(before, 1.0);
  EXPECT_EQ(before, c.slowdown_of(1, 0));
  JobConfig no_factor = c;
  no_factor.classes[1].slowdown_from = 0;
  EXPECT_DOUBLE_EQ(after, 2.0 * no_factor.slowdown_of(1, 1));
}

}  // namespace
}  // namespace swarm::job

namespace swarm::job {
namespace {

// Drives a Dispatcher as the client does: sessions start when the policy says, finish after a
// while, routes break and appear at boundaries. Every session must finish exactly once.
TEST(Dispatcher, EverySessionFinishesOnceThroughRouteChangesForEveryPolicy) {
  for (dispatch::PolicyKind kind : dispatch::all_policies()) {
    dispatch::DispatchOptions options;
    options.message_latency_s = 0;
    Dispatcher d(kind, options, 3);
    const auto route = [](int a, int b, double speed) {
      return RouteShare{{{a, 0, 4}, {b, 4, 8}}, speed};
    };
    d.set_routes({route(0, 1, 100), route(2, 3, 50), route(4, 5, 70)}, 0);
    const int n = 60;
    for (int i = 0; i < n; ++i) d.arrive(1000 + i, 24, 0);
    std::map<std::uint64_t, int> finished;
    std::map<std::uint64_t, std::vector<Hop>> running;
    double now = 0;
    for (int step = 0; step < 5000 && static_cast<int>(finished.size()) < n; ++step) {
      now += 0.01;
      d.tick(now);
      for (std::uint64_t s : d.take_preempts()) running.erase(s);
      for (auto& s : d.take_starts()) running[s.session] = s.route;
      if (step == 20) {  // a boundary: one route breaks, another appears
        d.set_routes({route(0, 1, 100), route(4, 5, 70), route(6, 7, 90)}, now);
        for (std::uint64_t s : d.take_preempts()) running.erase(s);
        for (auto& s : d.take_starts()) running[s.session] = s.route;
      }
      if (!running.empty() && step % 2 == 0) {  // the oldest running session finishes
        const auto it = running.begin();
        const std::uint64_t s = it->first;
        running.erase(it);
        ++finished[s];
        d.finished(s, 0.02, 24, now);
      }
    }
    ASSERT_EQ(static_cast<int>(finished.size()), n) << dispatch::to_string(kind);
    for (const auto& [s, count] : finished) ASSERT_EQ(count, 1) << dispatch::to_string(kind) << " session " << s;
    const auto stats = d.take_stats();
    EXPECT_EQ(stats.routes, 3);
  }
}

TEST(CapacityRoutes, SplitTheSwarmIntoChainsWithinEachServersCapacity) {
  std::vector<RouteServer> servers = {server(0, 0, 4, 400), server(1, 4, 8, 400), server(2, 0, 4, 200),
                                      server(3, 4, 8, 100)};
  const auto routes = capacity_routes(8, servers, 10, 0.01);
  ASSERT_GE(routes.size(), 2U);
  std::vector<double> used(4, 0.0);
  for (const RouteShare& r : routes) {
    expect_chain(r.hops, 8);
    for (const Hop& h : r.hops) used[static_cast<std::size_t>(h.rank)] += r.speed * (h.last - h.first) / servers[static_cast<std::size_t>(h.rank)].block_tokens_per_s;
  }
  for (double u : used) EXPECT_LE(u, 1.0 + 1e-9);  // no server gives more than all of its time
  EXPECT_DOUBLE_EQ(routes.front().speed, 100.0);  // 400/4 on both hops
  EXPECT_NE(routes[0].key(), routes[1].key());
}

// A hop runs from where the last ended to the end of its server's span: where spans overlap, a
// server runs fewer blocks a token than it holds, and passes more than R / k.
TEST(CapacityRoutes, TheCapacityCountsTheBlocksEachHopRuns) {
  std::vector<RouteServer> servers = {server(0, 0, 3, 300), server(1, 3, 6, 300), server(2, 5, 8, 240)};
  // Rank 2 holds 3 blocks (240 / 3 = 80 if it ran them all) but runs blocks 6-7 of every chain:
  // 120. Ranks 0 and 1 (100 each) are the bottleneck.
  EXPECT_NEAR(route_capacity(8, servers), 100.0, 1e-9);
  servers[2].network_tokens_per_s = 60;  // its measured link caps it below its compute
  EXPECT_NEAR(route_capacity(8, servers), 60.0, 1e-9);
  servers.push_back(server(3, 5, 8, 240));  // a replica of rank 2: chains split over both
  servers[3].network_tokens_per_s = 0;      // no link measured: compute alone
  EXPECT_NEAR(route_capacity(8, servers), 100.0, 1e-9);
  servers[0].online = false;  // no chain covers block 0
  EXPECT_EQ(route_capacity(8, servers), 0.0);
}

}  // namespace
}  // namespace swarm::job

namespace swarm::job {
namespace {

TEST(CacheLedger, ReservesOnEveryHopOrNone) {
  CacheLedger ledger(100, 3);
  const std::vector<Hop> route = {{0, 0, 2}, {2, 2, 4}};
  ASSERT_TRUE(ledger.reserve(route, 20));  // 40 bytes on ranks 0 and 2
  EXPECT_EQ(ledger.reserved(0), 40U);
  EXPECT_EQ(ledger.reserved(1), 0U);
  EXPECT_EQ(ledger.reserved(2), 40U);
  const std::vector<Hop> other = {{1, 0, 3}, {2, 3, 4}};
  EXPECT_FALSE(ledger.reserve(other, 35));  // rank 1 would hold 105; rank 2 (75) would fit
  EXPECT_EQ(ledger.reserved(1), 0U);
  EXPECT_EQ(ledger.reserved(2), 40U) << "all or nothing";
  EXPECT_TRUE(ledger.reserve(other, 20));  // rank 1: 60, rank 2: 60
  EXPECT_FALSE(ledger.fits(2, 41));
  EXPECT_TRUE(ledger.fits(2, 40));
  ledger.release(route, 20);
  EXPECT_EQ(ledger.reserved(0), 0U);
  EXPECT_EQ(ledger.reserved(2), 20U);
  EXPECT_THROW(ledger.release(route, 20), std::logic_error) << "released twice";
  EXPECT_THROW((void)ledger.reserved(3), std::out_of_range);
}

TEST(CacheLedger, NoBudgetFitsEverything) {
  CacheLedger ledger(0, 2);
  EXPECT_FALSE(ledger.limited());
  EXPECT_TRUE(ledger.fits(1, ~0ULL));
  EXPECT_TRUE(ledger.reserve(std::vector<Hop>{{1, 0, 8}}, 1ULL << 40));
}

TEST(CacheLedger, ARankOnSeveralHopsIsCountedOnce) {
  CacheLedger ledger(100, 2);
  // Both hops on rank 0: 2 x 30 = 60 blocks' worth checked together, not 30 twice.
  EXPECT_FALSE(ledger.reserve(std::vector<Hop>{{0, 0, 2}, {0, 2, 4}}, 30));
  EXPECT_TRUE(ledger.reserve(std::vector<Hop>{{0, 0, 2}, {0, 2, 3}}, 30));
  EXPECT_EQ(ledger.reserved(0), 90U);
}

}  // namespace
}  // namespace swarm::job
