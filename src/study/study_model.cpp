// The dispatch study's model of the swarm: servers placed by the Petals rules, their changing
// speeds, and the routes (chains covering every block) that the dispatch policies treat as
// workers. Pure: no I/O. Every random draw comes from a stream derived from the seed and a
// name, so changing one part of the model does not reshuffle another.
#include <algorithm>
#include <cmath>
#include <map>
#include <queue>
#include <stdexcept>
#include <tuple>

#include "swarm/dispatch/diffusion.hpp"
#include "swarm/study/dispatch_study.hpp"
#include "swarm/util/random.hpp"
#include "swarm/balance/rules.hpp"

namespace swarm::study {

using dispatch::SpeedChange;

sim::SimConfig churn_config(const StudyConfig& c) {
  sim::SimConfig s;
  s.blocks = c.blocks;
  s.hidden_size = c.hidden_size;
  s.duration = c.horizon_s;
  s.seed = c.seed;
  s.initial_servers = c.initial_servers;
  s.initial_join_window = 0.0;  // the swarm exists before the sessions: everybody at t = 0
  s.arrival_rate = c.arrival_rate;
  s.mean_lifetime = c.mean_lifetime;
  s.joins = c.joins;
  s.leaves = c.leaves;
  for (const ServerClass& k : c.classes) s.classes.push_back(k.device);
  return s;
}

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Speed factor of one server: 1 when it comes online, then a fresh mean-one lognormal draw
// after every exponential gap, until it leaves or the horizon ends.
std::vector<SpeedChange> draw_factor(const ServerClass& k, const sim::ServerPlan& p, double online,
                                     double horizon, std::uint64_t seed) {
  std::vector<SpeedChange> out;
  if (!(k.speed_sigma > 0.0) || !std::isfinite(online)) return out;
  Rng rng(derive_seed(seed, "speed/" + p.id));
  const double end = std::min(p.leave_time, horizon);
  const double s = k.speed_sigma;
  for (double t = online + exponential(rng, k.speed_interval_s); t < end;
       t += exponential(rng, k.speed_interval_s)) {
    out.push_back({t, std::exp(s * standard_normal(rng) - 0.5 * s * s)});
  }
  return out;
}

double factor_at(const std::vector<SpeedChange>& f, double t) {
  // Last change at or before t; 1 before the first.
  const auto it = std::upper_bound(f.begin(), f.end(), t,
                                   [](double x, const SpeedChange& c) { return x < c.time; });
  return it == f.begin() ? 1.0 : std::prev(it)->speed;
}

enum EventKind : int { kLeave = 0, kOnline = 1, kJoin = 2 };

struct Event {
  double time;
  int kind;
  std::uint64_t seq;
  std::uint32_t server;
  bool operator>(const Event& o) const { return std::tie(time, kind, seq) > std::tie(o.time, o.kind, o.seq); }
};

class Builder {
 public:
  explicit Builder(const StudyConfig& c)
      : c_(c), swarm_(c.blocks), strategy_(make_strategy(c.placement, {})), rng_(derive_seed(c.seed, "placement")) {
    const std::vector<sim::ServerPlan> plans = sim::plan_servers(churn_config(c));
    m_.servers.reserve(plans.size());
    for (const auto& p : plans) m_.servers.push_back({p, {}, kInf, {}});
    residual_.assign(plans.size(), 0.0);
    online_.assign(plans.size(), false);
    routes_of_.resize(plans.size());
  }

  SwarmModel build() {
    for (std::uint32_t i = 0; i < m_.servers.size(); ++i) {
      const sim::ServerPlan& p = m_.servers[i].plan;
      if (p.join_time > c_.horizon_s || !(p.leave_time > p.join_time)) continue;  // never in the swarm
      push(p.join_time, kJoin, i);
      if (p.leave_time <= c_.horizon_s) push(p.leave_time, kLeave, i);
    }
    while (!events_.empty()) {
      const double t = events_.top().time;
      while (!events_.empty() && events_.top().time == t) {
        const Event e = events_.top();
        events_.pop();
        handle(e);
      }
      form_routes(t);
      if (t == 0.0) snapshot_start();
    }
    finish_workers();
    return std::move(m_);
  }

 private:
  void push(double t, int kind, std::uint32_t server) { events_.push({t, kind, seq_++, server}); }

  void handle(const Event& e) {
    ServerRecord& s = m_.servers[e.server];
    const sim::ServerPlan& p = s.plan;
    switch (e.kind) {
      case kJoin: {
        // Rule 1 (or a random span for `none`) on the swarm of servers joining or online.
        s.span = strategy_->place_joiner(swarm_, p.span, p.throughput, rng_);
        // Initial servers were loaded before the sessions came; joiners load their blocks.
        const double online = p.join_time == 0.0 ? 0.0 : p.join_time + p.load_time;
        const bool now = online == e.time;
        swarm_.add({p.id, s.span, p.throughput, now ? ServerState::online : ServerState::joining});
        if (now) {
          go_online(e.server, e.time);
        } else if (online < p.leave_time && online <= c_.horizon_s) {
          push(online, kOnline, e.server);
        }
        break;
      }
      case kOnline:
        if (const auto i = swarm_.find(p.id)) {
          swarm_.set_state(*i, ServerState::online);
          go_online(e.server, e.time);
        }
        break;
      case kLeave:
        if (const auto i = swarm_.find(p.id)) swarm_.remove(*i);
        if (online_[e.server]) leave(e.server, e.time);
        break;
    }
  }

  void go_online(std::uint32_t i, double t) {
    ServerRecord& s = m_.servers[i];
    s.online_time = t;
    s.factor = draw_factor(c_.classes[s.plan.device_class], s.plan, t, c_.horizon_s, c_.seed);
    online_[i] = true;
    residual_[i] = s.plan.throughput;
  }

  // Every route through the leaver ends now; the other hops get their reservation back.
  void leave(std::uint32_t i, double t) {
    online_[i] = false;
    residual_[i] = 0.0;
    for (std::uint32_t r : routes_of_[i]) {
      Route& route = m_.routes[r];
      if (route.worker.leave_time != kInf) continue;  // already ended (two hops left at t)
      route.worker.leave_time = t;
      ++m_.routes_broken;
      for (std::uint32_t h : route.hops) {
        if (h != i && online_[h]) residual_[h] += route.allocation;
      }
    }
    routes_of_[i].clear();
  }

  // Widest chain over the capacity not yet reserved: best[p] is the largest bottleneck with
  // which a chain reaches block boundary p; a server s with start <= p < end takes it to end.
  bool widest_chain(std::vector<std::uint32_t>& hops, double& width) {
    const int L = c_.blocks;
    covering_.resize(static_cast<std::size_t>(L));
    for (auto& list : covering_) list.clear();
    for (std::uint32_t s = 0; s < m_.servers.size(); ++s) {
      if (!online_[s] || residual_[s] < c_.min_route_speed) continue;
      for (int b = m_.servers[s].span.start; b < m_.servers[s].span.end; ++b) covering_[b].push_back(s);
    }
    best_.assign(static_cast<std::size_t>(L) + 1, -1.0);
    hops_.assign(static_cast<std::size_t>(L) + 1, 0);
    pred_.assign(static_cast<std::size_t>(L) + 1, {-1, 0});
    best_[0] = kInf;
    for (int p = 0; p < L; ++p) {
      if (best_[p] < 0.0) continue;
      for (std::uint32_t s : covering_[p]) {  // ascending server index: ties keep the lowest
        const double w = std::min(best_[p], residual_[s]);
        const int q = m_.servers[s].span.end;
        if (w > best_[q] || (w == best_[q] && hops_[p] + 1 < hops_[q])) {
          best_[q] = w;
          hops_[q] = hops_[p] + 1;
          pred_[q] = {p, s};
        }
      }
    }
    if (!(best_[L] >= c_.min_route_speed) || best_[L] == kInf) return false;
    width = best_[L];
    hops.clear();
    for (int q = L; q > 0; q = pred_[q].first) hops.push_back(pred_[q].second);
    std::reverse(hops.begin(), hops.end());
    return true;
  }

  void form_routes(double t) {
    std::vector<std::uint32_t> hops;
    double width = 0.0;
    while (widest_chain(hops, width)) {
      const auto r = static_cast<std::uint32_t>(m_.routes.size());
      Route route;
      route.hops = hops;
      route.allocation = width;
      route.worker.join_time = t;
      route.worker.announced_speed = width;
      for (std::uint32_t h : hops) {
        residual_[h] -= width;
        if (residual_[h] < 1e-9 * width) residual_[h] = 0.0;  // the bottleneck, exactly spent
        routes_of_[h].push_back(r);
      }
      std::string name;
      for (std::uint32_t h : hops) {
        if (!name.empty()) name += '>';
        name += m_.servers[h].plan.id;
      }
      const int copies = names_[name]++;
      if (copies > 0) {  // the same chain formed again
        name += '#';
        name += std::to_string(copies);
      }
      route.worker.name = std::move(name);
      m_.routes.push_back(std::move(route));
    }
  }

  void snapshot_start() {
    m_.swarm_throughput_at_start = swarm_throughput(swarm_, ServerState::online);
    for (const Route& r : m_.routes) {
      m_.route_capacity_at_start += r.allocation;
      ++m_.routes_at_start;
    }
  }

  // Real speeds: allocation * min over hops of their factor, on [join, min(leave, horizon)).
  void finish_workers() {
    for (Route& r : m_.routes) {
      dispatch::WorkerSpec& w = r.worker;
      const double end = std::min(w.leave_time, c_.horizon_s);
      std::vector<double> times;
      for (std::uint32_t h : r.hops) {
        for (const SpeedChange& f : m_.servers[h].factor) {
          if (f.time > w.join_time && f.time < end) times.push_back(f.time);
        }
      }
      std::sort(times.begin(), times.end());
      times.erase(std::unique(times.begin(), times.end()), times.end());
      const auto speed_at = [&](double t) {
        double f = kInf;
        for (std::uint32_t h : r.hops) f = std::min(f, factor_at(m_.servers[h].factor, t));
        return r.allocation * f;
      };
      w.speed = speed_at(w.join_time);
      double last = w.speed;
      for (double t : times) {
        const double v = speed_at(t);
        if (v != last) w.speed_changes.push_back({t, v});
        last = v;
      }
    }
  }

  const StudyConfig& c_;
  SwarmModel m_;
  Swarm swarm_;
  std::unique_ptr<Strategy> strategy_;
  Rng rng_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  std::uint64_t seq_ = 0;
  std::vector<double> residual_;
  std::vector<bool> online_;
  std::vector<std::vector<std::uint32_t>> routes_of_;
  std::map<std::string, int> names_;
  // scratch of widest_chain
  std::vector<std::vector<std::uint32_t>> covering_;
  std::vector<double> best_;
  std::vector<int> hops_;
  std::vector<std::pair<int, std::uint32_t>> pred_;
};

}  // namespace

SwarmModel build_swarm(const StudyConfig& config) {
  if (config.placement != StrategyKind::none && config.placement != StrategyKind::new_only) {
    throw std::invalid_argument("dispatch study: placement '" + std::string(to_string(config.placement)) +
                                "' is not modelled (servers never move here): use none or new_only");
  }
  if (config.classes.empty()) throw std::invalid_argument("dispatch study: no server class");
  return Builder(config).build();
}

Sessions make_sessions(const StudyConfig& c) {
  Sessions s;
  Rng rng(derive_seed(c.seed, "workload"));
  s.tasks.reserve(c.sessions);
  double t = 0.0;
  const auto draw = [&](int lo, int hi) {
    return lo + static_cast<int>(uniform_index(rng, static_cast<std::uint64_t>(hi - lo) + 1));
  };
  for (std::size_t i = 0; i < c.sessions; ++i) {
    if (c.session_rate > 0.0) t += exponential(rng, 1.0 / c.session_rate);
    const int prompt = draw(c.prompt_tokens_min, c.prompt_tokens_max);
    const int fresh = draw(c.new_tokens_min, c.new_tokens_max);
    dispatch::Task task;
    task.session = rng();
    task.arrival = t;
    task.work = c.prompt_weight * prompt + fresh;
    s.tasks.push_back(task);
    s.prompt_tokens.push_back(prompt);
    s.new_tokens.push_back(fresh);
  }
  return s;
}

dispatch::DispatchOptions dispatch_options(const StudyConfig& c, const SwarmModel& swarm) {
  dispatch::DispatchOptions o = c.dispatch;
  switch (c.diffusion_graph) {
    case DiffusionGraphKind::ring:
      o.diffusion.neighbours = {};
      break;
    case DiffusionGraphKind::routes: {
      std::vector<std::vector<std::string>> routes;
      routes.reserve(swarm.routes.size());
      for (const Route& r : swarm.routes) {
        std::vector<std::string> ids;
        for (std::uint32_t h : r.hops) ids.push_back(swarm.servers[h].plan.id);
        routes.push_back(std::move(ids));
      }
      o.diffusion.neighbours = dispatch::graph_from_routes(routes);
      break;
    }
    case DiffusionGraphKind::random: {
      Rng rng(derive_seed(c.seed, "diffusion-graph"));
      o.diffusion.neighbours = dispatch::random_graph(swarm.routes.size(), swarm.routes.size(), rng);
      break;
    }
  }
  return o;
}

}  // namespace swarm::study
