// Diffusion: conservation, convergence on a ring and on a random graph, second order faster
// than first order where the theory says so, and the graphs the policies use.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "swarm/dispatch/diffusion.hpp"

namespace swarm::dispatch {
namespace {

constexpr double kPi = 3.14159265358979323846;

double total(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }

// max_i |h_i - mean h| / mean h, with h = load / speed (1 when speeds are empty).
double spread(const std::vector<double>& load, const std::vector<double>& speed = {}) {
  std::vector<double> h(load);
  for (std::size_t i = 0; i < h.size() && !speed.empty(); ++i) h[i] /= speed[i];
  const double mean = total(h) / static_cast<double>(h.size());
  double worst = 0.0;
  for (double x : h) worst = std::max(worst, std::abs(x - mean));
  return worst / mean;
}

// Steps of first order (beta unused) or second order until spread <= tol; -1 past max_steps.
int steps_to_balance(const Graph& g, std::vector<double> load, double alpha, bool second,
                     double beta, double tol, int max_steps, const std::vector<double>& speed = {}) {
  std::vector<double> previous;
  for (int step = 0; step < max_steps; ++step) {
    if (spread(load, speed) <= tol) return step;
    auto flow = diffusion_flows(g, load, speed, alpha, beta, previous);
    apply_flows(g, flow, load);
    if (second) previous = std::move(flow);
  }
  return -1;
}

std::vector<double> random_loads(std::size_t n, Rng& rng) {
  std::vector<double> load(n);
  for (double& x : load) x = uniform(rng, 0.0, 1000.0);
  return load;
}

TEST(Graphs, RingRandomRoutesAndSwarm) {
  const Graph ring = ring_graph(6);
  EXPECT_EQ(ring.edges().size(), 6U);
  for (WorkerId i = 0; i < 6; ++i) EXPECT_EQ(ring.degree(i), 2U);
  EXPECT_EQ(ring_graph(2).edges().size(), 1U);
  EXPECT_TRUE(ring_graph(1).edges().empty());

  Rng rng(11);
  for (int trial = 0; trial < 20; ++trial) EXPECT_TRUE(random_graph(40, 10, rng).connected());

  const std::vector<std::vector<std::string>> routes{{"a", "b"}, {"b", "c"}, {"d", "e"}, {"e", "a"}};
  const Graph r = graph_from_routes(routes);
  EXPECT_EQ(std::vector<Graph::Edge>(r.edges().begin(), r.edges().end()),
            (std::vector<Graph::Edge>{{0, 1}, {0, 3}, {2, 3}}));

  const Swarm swarm(8, {{"s0", {0, 4}, 1.0, ServerState::online},
                        {"s1", {2, 6}, 1.0, ServerState::online},
                        {"s2", {6, 8}, 1.0, ServerState::online},
                        {"s3", {4, 8}, 1.0, ServerState::online}});
  const Graph s = graph_from_swarm(swarm);  // overlaps: s0-s1, s1-s3, s2-s3
  EXPECT_EQ(std::vector<Graph::Edge>(s.edges().begin(), s.edges().end()),
            (std::vector<Graph::Edge>{{0, 1}, {1, 3}, {2, 3}}));

  EXPECT_THROW(Graph(3, {{1, 1}}), std::invalid_argument);
  EXPECT_THROW(Graph(3, {{0, 3}}), std::invalid_argument);
}

TEST(Diffusion, BothOrdersConserveTheTotalWork) {
  Rng rng(21);
  const Graph g = random_graph(40, 40, rng);
  std::vector<double> speed(40);
  for (double& s : speed) s = uniform(rng, 0.5, 4.0);
  for (const bool second : {false, true}) {
    for (const bool hetero : {false, true}) {
      std::vector<double> load = random_loads(40, rng);
      const double before = total(load);
      std::vector<double> previous;
      for (int step = 0; step < 300; ++step) {
        auto flow = diffusion_flows(g, load, hetero ? speed : std::vector<double>{}, default_alpha(g), 1.7, previous);
        apply_flows(g, flow, load);
        if (second) previous = std::move(flow);
        ASSERT_NEAR(total(load), before, 1e-12 * before) << "step " << step;
      }
    }
  }
}

TEST(Diffusion, FirstOrderNeverDrivesALoadNegative) {
  // With alpha <= 1/(max degree + 1) the step matrix is stochastic: a node never sends more
  // than it has, so loads stay non-negative (second order gives this up for speed).
  Rng rng(22);
  const Graph g = random_graph(30, 30, rng);
  std::vector<double> load(30, 0.0);
  load[0] = 1000.0;
  for (int step = 0; step < 200; ++step) {
    apply_flows(g, diffusion_flows(g, load, {}, default_alpha(g), 1.0, {}), load);
    for (double x : load) ASSERT_GE(x, -1e-12);
  }
}

TEST(Diffusion, ConvergesOnARing) {
  const Graph g = ring_graph(16);
  std::vector<double> load(16, 0.0);
  load[3] = 1600.0;  // everything on one node
  const double alpha = default_alpha(g);
  EXPECT_GT(steps_to_balance(g, load, alpha, false, 1.0, 1e-6, 5000), 0);
  const double gamma = 1.0 - alpha * (2.0 - 2.0 * std::cos(2.0 * kPi / 16.0));
  EXPECT_GT(steps_to_balance(g, load, alpha, true, optimal_beta(gamma), 1e-6, 5000), 0);
}

TEST(Diffusion, ConvergesOnARandomConnectedGraph) {
  Rng rng(23);
  const Graph g = random_graph(50, 25, rng);
  ASSERT_TRUE(g.connected());
  const std::vector<double> load = random_loads(50, rng);
  EXPECT_GT(steps_to_balance(g, load, default_alpha(g), false, 1.0, 1e-6, 20000), 0);
  EXPECT_GT(steps_to_balance(g, load, default_alpha(g), true, 1.5, 1e-6, 20000), 0);
}

TEST(Diffusion, HeterogeneousSpeedsConvergeToLoadProportionalToSpeed) {
  Rng rng(24);
  const Graph g = random_graph(20, 20, rng);
  std::vector<double> speed(20);
  for (double& s : speed) s = uniform(rng, 0.5, 5.0);
  EXPECT_GT(steps_to_balance(g, random_loads(20, rng), default_alpha(g), false, 1.0, 1e-6, 50000, speed), 0);
}

TEST(Diffusion, SecondOrderWithOptimalBetaIsMuchFasterOnARing) {
  // Ring of 32: the first-order matrix M = I - L/3 has gamma = 1 - (2/3)(1 - cos(2 pi / 32))
  // = 0.987, so first order needs O(1/(1 - gamma)) steps; second order with Ghosh et al.'s
  // beta = 2/(1 + sqrt(1 - gamma^2)) needs O(1/sqrt(1 - gamma)).
  const Graph g = ring_graph(32);
  std::vector<double> load(32, 0.0);
  load[0] = 3200.0;
  const double alpha = default_alpha(g);
  const double gamma = 1.0 - alpha * (2.0 - 2.0 * std::cos(2.0 * kPi / 32.0));
  const double beta = optimal_beta(gamma);
  const int first = steps_to_balance(g, load, alpha, false, 1.0, 1e-6, 100000);
  const int second = steps_to_balance(g, load, alpha, true, beta, 1e-6, 100000);
  ASSERT_GT(first, 0);
  ASSERT_GT(second, 0);
  EXPECT_LT(4 * second, first) << "first order " << first << " steps, second order " << second;
}

TEST(Diffusion, OptimalBeta) {
  EXPECT_DOUBLE_EQ(optimal_beta(0.0), 1.0);  // nothing to accelerate: first order
  EXPECT_NEAR(optimal_beta(0.99), 2.0 / (1.0 + std::sqrt(1.0 - 0.9801)), 1e-15);
  EXPECT_THROW((void)optimal_beta(1.0), std::invalid_argument);
}

}  // namespace
}  // namespace swarm::dispatch
