// The churn trace: who joins when, with what device, and when they leave. Drawn once from the
// seed so that every strategy sees the same servers.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "swarm/balance/announce.hpp"
#include "swarm/sim/simulator.hpp"

namespace swarm::sim {
namespace {

std::size_t draw_class(const SimConfig& c, Rng& rng) {
  double total = 0;
  for (const auto& k : c.classes) total += k.share;
  double x = uniform01(rng) * total;
  for (std::size_t i = 0; i < c.classes.size(); ++i) {
    if (x < c.classes[i].share) return i;
    x -= c.classes[i].share;
  }
  return c.classes.size() - 1;
}

ServerPlan make_server(const SimConfig& c, std::size_t cls, double join, double lifetime, Rng& rng) {
  const DeviceClass& d = c.classes[cls];
  ServerPlan p;
  p.device_class = cls;
  p.span = d.span;
  // Mean-one lognormal: exp(sigma * N - sigma^2 / 2).
  const double factor = d.compute_jitter > 0
                            ? std::exp(d.compute_jitter * standard_normal(rng) - 0.5 * d.compute_jitter * d.compute_jitter)
                            : 1.0;
  p.relay = d.relay_fraction > 0 && uniform01(rng) < d.relay_fraction;
  p.compute_rps = d.block_rps * factor;
  p.throughput = announced_throughput(compute_throughput(p.compute_rps, d.span),
                                      network_throughput(d.bandwidth_mbps * 1e6, c.hidden_size, p.relay));
  p.load_time = d.load_seconds_per_block * d.span;
  p.join_time = join;
  p.leave_time = std::min(join + lifetime, d.leave_at);
  return p;
}

// A mean-one geometric random walk of the server's compute, one step per period boundary
// (sigma per sqrt(hour)); the network side of its announced throughput does not drift.
void drift(const SimConfig& c, ServerPlan& p, Rng& rng) {
  const DeviceClass& d = c.classes[p.device_class];
  if (d.speed_drift <= 0) return;
  const double sigma = d.speed_drift * std::sqrt(c.period / 3600.0);
  const double network = network_throughput(d.bandwidth_mbps * 1e6, c.hidden_size, p.relay);
  const double compute0 = p.compute_rps;
  const int periods = static_cast<int>(std::floor(c.duration / c.period + 1e-9));
  double factor = 1;
  for (int k = 1; k <= periods; ++k) {
    factor *= std::exp(sigma * standard_normal(rng) - 0.5 * sigma * sigma);
    p.drifted.push_back(announced_throughput(compute_throughput(compute0 * factor, d.span), network));
  }
}

}  // namespace

std::vector<ServerPlan> plan_servers(const SimConfig& c) {
  if (c.classes.empty()) throw std::invalid_argument("no device classes");
  Rng rng(derive_seed(c.seed, "churn"));
  const double forever = std::numeric_limits<double>::infinity();
  const auto lifetime = [&] { return c.mean_lifetime > 0 ? exponential(rng, c.mean_lifetime) : forever; };
  std::vector<ServerPlan> plans;
  for (int i = 0; i < c.initial_servers; ++i) {
    const double join = c.initial_join_window > 0 ? uniform(rng, 0, c.initial_join_window) : 0.0;
    const std::size_t cls = draw_class(c, rng);
    plans.push_back(make_server(c, cls, join, lifetime(), rng));
  }
  if (c.arrival_rate > 0) {
    for (double t = exponential(rng, 1 / c.arrival_rate); t < c.duration; t += exponential(rng, 1 / c.arrival_rate)) {
      const std::size_t cls = draw_class(c, rng);
      plans.push_back(make_server(c, cls, t, lifetime(), rng));
    }
  }
  for (int i = 0; i < c.flash_crowd.count; ++i) {
    const double join = c.flash_crowd.time + uniform(rng, 0, c.flash_crowd.window);
    const std::size_t cls = draw_class(c, rng);
    plans.push_back(make_server(c, cls, join, lifetime(), rng));
  }
  for (const auto& j : c.joins) {
    const auto it = std::find_if(c.classes.begin(), c.classes.end(),
                                 [&](const DeviceClass& d) { return d.name == j.device_class; });
    if (it == c.classes.end()) throw std::invalid_argument("scheduled join of unknown class '" + j.device_class + "'");
    plans.push_back(make_server(c, static_cast<std::size_t>(it - c.classes.begin()), j.time, forever, rng));
  }
  // A class that has left the swarm sends no more servers.
  std::erase_if(plans, [&](const ServerPlan& p) { return p.join_time >= c.classes[p.device_class].leave_at; });
  std::stable_sort(plans.begin(), plans.end(),
                   [](const ServerPlan& a, const ServerPlan& b) { return a.join_time < b.join_time; });
  // Drift from its own stream, so that scenarios without it keep their churn trace.
  Rng drift_rng(derive_seed(c.seed, "drift"));
  for (auto& p : plans) drift(c, p, drift_rng);
  const int width = plans.size() > 100000 ? 7 : 5;  // ids sort like their numbers
  for (std::size_t i = 0; i < plans.size(); ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "s%0*zu", width, i);
    plans[i].id = id;
  }
  for (const auto& l : c.leaves) {
    const auto it = std::find_if(plans.begin(), plans.end(), [&](const ServerPlan& p) { return p.id == l.server_id; });
    if (it == plans.end()) throw std::invalid_argument("scheduled leave of unknown server '" + l.server_id + "'");
    it->leave_time = std::min(it->leave_time, std::max(l.time, it->join_time));
  }
  return plans;
}

}  // namespace swarm::sim
