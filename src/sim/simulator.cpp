// The simulator's event loop. Each strategy runs in its own lane (its own swarm and random
// stream) over the shared churn trace; lanes advance in lockstep to every period boundary.
#include <algorithm>
#include <cmath>
#include <memory>
#include <queue>
#include <tuple>

#include "swarm/sim/simulator.hpp"

namespace swarm::sim {
namespace {

// At equal times: leaves first (a server gone is gone), then loads completing, then joins
// (a joiner sees who just came online), then balance checks.
enum EventKind : int { kLeave = 0, kLoaded = 1, kJoin = 2, kCheck = 3 };

struct SharedEvent {
  double time;
  int kind;
  std::size_t plan;
};

struct LaneEvent {
  double time;
  int kind;
  std::uint64_t seq;
  std::size_t plan;
  int generation;
  bool operator>(const LaneEvent& o) const {
    return std::tie(time, kind, seq) > std::tie(o.time, o.kind, o.seq);
  }
};

struct Lane {
  StrategyKind kind;
  bool reported = true;  // false for the hidden lane that only computes the bound
  std::unique_ptr<Strategy> strategy;
  Swarm swarm;
  Rng rng;
  std::priority_queue<LaneEvent, std::vector<LaneEvent>, std::greater<>> events;
  std::vector<int> generation;  // per plan: bumps invalidate pending events of a server
  std::size_t next_shared = 0;
  std::uint64_t seq = 0;
  int moves = 0;
  double downtime = 0;
  double expected_gain = 0;  // move_aware: what its moves at the last boundary should add
  double planned = 0;        // move_aware: the swarm throughput it planned for
  // upper_bound: the last placement and the (throughput, span) multiset it was solved for
  std::optional<Placement> placement;
  std::vector<std::pair<double, int>> placement_key;
  // Time integral of the online swarm throughput since the last boundary.
  double last_time = 0;
  double current = 0;       // swarm throughput (online) since last_time
  bool dirty = false;       // the swarm changed: recompute `current` before integrating
  double integral = 0;
  double disjoint_time = 0;
  StrategySummary summary;
  double ratio_sum = 0;
  int ratio_periods = 0;
  double throughput_sum = 0;
  double gap_sum = 0;

  Lane(StrategyKind k, const SimConfig& c, std::size_t plans)
      : kind(k),
        strategy(make_strategy(k, {c.balance_quality, c.placement_time_limit, c.placement_reproducible,
                                   c.move_horizon, c.move_min_interval, c.move_min_gain})),
        swarm(c.blocks),
        rng(derive_seed(c.seed, to_string(k))),
        generation(plans, 0) {
    summary.kind = k;
  }
};

class Simulation {
 public:
  Simulation(const SimConfig& c, SimObserver& obs) : c_(c), obs_(obs), plans_(plan_servers(c)) {
    for (std::size_t i = 0; i < plans_.size(); ++i) {
      shared_.push_back({plans_[i].join_time, kJoin, i});
      if (std::isfinite(plans_[i].leave_time)) shared_.push_back({plans_[i].leave_time, kLeave, i});
    }
    std::stable_sort(shared_.begin(), shared_.end(), [](const SharedEvent& a, const SharedEvent& b) {
      return std::tie(a.time, a.kind, a.plan) < std::tie(b.time, b.kind, b.plan);
    });
    for (StrategyKind k : c.strategies) {
      if (k != StrategyKind::upper_bound) lanes_.push_back(std::make_unique<Lane>(k, c, plans_.size()));
    }
    // The bound lane goes last: it uses the others' spans as hints.
    bound_ = std::make_unique<Lane>(StrategyKind::upper_bound, c, plans_.size());
    bound_->reported = std::find(c.strategies.begin(), c.strategies.end(), StrategyKind::upper_bound) !=
                       c.strategies.end();
  }

  SimResult run(const std::function<bool()>& stop) {
    obs_.on_start(c_, plans_);
    SimResult result;
    const int periods = static_cast<int>(std::floor(c_.duration / c_.period + 1e-9));
    for (int p = 1; p <= periods; ++p) {
      if (stop && stop()) {
        result.stopped_early = true;
        break;
      }
      const double t = p * c_.period;
      for (auto& lane : lanes_) {
        advance(*lane, t);
        drift(*lane, p);
        if (lane->kind != StrategyKind::move_aware) boundary(*lane, t);
      }
      advance(*bound_, t);
      drift(*bound_, p);
      boundary(*bound_, t);
      // move_aware plans toward the placement the bound lane has just solved for the same servers.
      for (auto& lane : lanes_) {
        if (lane->kind == StrategyKind::move_aware) boundary(*lane, t);
      }
      for (auto& lane : lanes_) record(*lane, p, t);
      if (bound_->reported) record(*bound_, p, t);
      obs_.on_period_end(p);
      result.periods_run = p;
    }
    for (auto& lane : lanes_) result.summaries.push_back(finish(*lane));
    if (bound_->reported) result.summaries.push_back(finish(*bound_));
    // Report in the order the job file listed the strategies.
    std::vector<StrategySummary> ordered;
    for (StrategyKind k : c_.strategies) {
      for (const auto& s : result.summaries) {
        if (s.kind == k) ordered.push_back(s);
      }
    }
    result.summaries = std::move(ordered);
    return result;
  }

 private:
  static std::size_t plan_index(const std::string& id) { return std::stoul(id.substr(1)); }

  void push(Lane& lane, double time, int kind, std::size_t plan) {
    lane.events.push({time, kind, lane.seq++, plan, lane.generation[plan]});
  }

  // Integrates the throughput clients could get up to `now`; called before every change.
  static void account(Lane& lane, double now) {
    if (lane.dirty) {
      lane.current = swarm_throughput(lane.swarm, ServerState::online);
      lane.dirty = false;
    }
    const double dt = now - lane.last_time;
    lane.integral += lane.current * dt;
    if (lane.current <= 0) lane.disjoint_time += dt;
    lane.last_time = now;
  }

  void advance(Lane& lane, double until) {
    for (;;) {
      const bool has_shared = lane.next_shared < shared_.size() && shared_[lane.next_shared].time <= until;
      const bool has_own = !lane.events.empty() && lane.events.top().time <= until;
      if (!has_shared && !has_own) break;
      const bool shared_first =
          has_shared && (!has_own || std::tie(shared_[lane.next_shared].time, shared_[lane.next_shared].kind) <=
                                         std::tie(lane.events.top().time, lane.events.top().kind));
      if (shared_first) {
        account(lane, shared_[lane.next_shared].time);
        on_shared(lane, shared_[lane.next_shared++]);
      } else {
        const LaneEvent e = lane.events.top();
        lane.events.pop();
        account(lane, e.time);
        if (e.generation == lane.generation[e.plan]) on_own(lane, e);
      }
      lane.dirty = true;
    }
    account(lane, until);
  }

  // Speeds that drift change at boundaries, in every lane alike; strategies see them there.
  void drift(Lane& lane, int period) {
    for (std::size_t i = 0; i < lane.swarm.size(); ++i) {
      const ServerPlan& p = plans_[plan_index(lane.swarm[i].id)];
      if (p.drifted.empty()) continue;
      lane.swarm.set_throughput(i, p.drifted[static_cast<std::size_t>(period - 1)]);
      lane.dirty = true;
    }
  }

  // The announced throughput of a server now (its speed at the last boundary).
  double speed(const ServerPlan& p, double t) const {
    if (p.drifted.empty()) return p.throughput;
    const int k = static_cast<int>(std::floor(t / c_.period + 1e-9));
    return k < 1 ? p.throughput : p.drifted[static_cast<std::size_t>(std::min<int>(k, static_cast<int>(p.drifted.size())) - 1)];
  }

  void on_shared(Lane& lane, const SharedEvent& e) {
    const ServerPlan& p = plans_[e.plan];
    if (e.kind == kLeave) {
      if (const auto i = lane.swarm.find(p.id)) lane.swarm.remove(*i);
      ++lane.generation[e.plan];
      return;
    }
    const double throughput = speed(p, e.time);
    const Span span = lane.strategy->place_joiner(lane.swarm, p.span, throughput, lane.rng);
    // The yardstick loads for free; everybody else is joining for its load time.
    const bool instant = lane.kind == StrategyKind::upper_bound;
    lane.swarm.add({p.id, span, throughput, instant ? ServerState::online : ServerState::joining});
    if (!instant) push(lane, e.time + p.load_time, kLoaded, e.plan);
  }

  void on_own(Lane& lane, const LaneEvent& e) {
    const auto i = lane.swarm.find(plans_[e.plan].id);
    if (!i) return;
    if (e.kind == kLoaded) {
      lane.swarm.set_state(*i, ServerState::online);
      if (lane.kind == StrategyKind::full && c_.check == CheckMode::random) schedule_check(lane, e.time, e.plan);
      return;
    }
    if (e.kind == kCheck && lane.swarm[*i].state == ServerState::online) {
      const std::size_t due[] = {*i};
      const RebalanceResult r = lane.strategy->rebalance(lane.swarm, due, lane.rng);
      if (r.moves.empty()) {
        schedule_check(lane, e.time, e.plan);
      } else {
        reload(lane, r.moves, e.time);
      }
    }
  }

  // Petals waits U(0, 2 * mean_balance_check_period) between checks.
  void schedule_check(Lane& lane, double now, std::size_t plan) {
    push(lane, now + uniform(lane.rng, 0, 2 * c_.mean_check_period), kCheck, plan);
  }

  void reload(Lane& lane, const std::vector<Move>& moves, double now) {
    apply_moves(lane.swarm, moves, ServerState::joining);
    for (const Move& m : moves) {
      const std::size_t plan = plan_index(m.id);
      ++lane.generation[plan];
      push(lane, now + plans_[plan].load_time, kLoaded, plan);
      ++lane.moves;
      lane.downtime += plans_[plan].load_time;
    }
  }

  void boundary(Lane& lane, double t) {
    lane.dirty = true;  // whatever the strategy does below changes the swarm from now on
    if (lane.kind == StrategyKind::full && c_.check == CheckMode::every_boundary) {
      std::vector<std::size_t> due;
      for (std::size_t i = 0; i < lane.swarm.size(); ++i) {
        if (lane.swarm[i].state == ServerState::online) due.push_back(i);
      }
      shuffle(std::span<std::size_t>(due), lane.rng);
      reload(lane, lane.strategy->rebalance(lane.swarm, due, lane.rng).moves, t);
    } else if (lane.kind == StrategyKind::upper_bound) {
      place_optimally(lane);
    } else if (lane.kind == StrategyKind::move_aware) {
      std::vector<double> load(lane.swarm.size());
      std::vector<int> target(lane.swarm.size(), -1);
      for (std::size_t i = 0; i < lane.swarm.size(); ++i) {
        load[i] = plans_[plan_index(lane.swarm[i].id)].load_time;
        if (const auto j = bound_->swarm.find(lane.swarm[i].id)) target[i] = bound_->swarm[*j].span.start;
      }
      BoundaryContext context;
      context.now_s = t;
      context.load_seconds = load;
      context.target = target;
      const RebalanceResult r = lane.strategy->rebalance(lane.swarm, {}, lane.rng, context);
      if (r.plan) {
        lane.expected_gain = r.plan->expected_gain();
        lane.planned = r.plan->planned;
      }
      reload(lane, r.moves, t);
    }
  }

  void place_optimally(Lane& lane) {
    std::vector<std::pair<double, int>> key;
    for (const auto& s : lane.swarm.servers()) key.emplace_back(s.throughput, s.span.length());
    std::sort(key.begin(), key.end());
    std::vector<Move> moves;
    if (lane.placement && key == lane.placement_key) {
      // Same servers up to interchangeable ones: reuse the placement, class by class.
      std::vector<std::pair<std::pair<double, int>, int>> starts;
      for (std::size_t j = 0; j < lane.placement->starts.size(); ++j) {
        starts.push_back({last_servers_[j], lane.placement->starts[j]});
      }
      std::sort(starts.begin(), starts.end());
      std::vector<std::size_t> order(lane.swarm.size());
      for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return std::make_pair(lane.swarm[a].throughput, lane.swarm[a].span.length()) <
               std::make_pair(lane.swarm[b].throughput, lane.swarm[b].span.length());
      });
      std::vector<int> fresh(lane.swarm.size());
      for (std::size_t r = 0; r < order.size(); ++r) fresh[order[r]] = starts[r].second;
      for (std::size_t i = 0; i < lane.swarm.size(); ++i) {
        const Server& s = lane.swarm[i];
        if (fresh[i] != s.span.start) moves.push_back({s.id, s.span, {fresh[i], fresh[i] + s.span.length()}, {}});
      }
      lane.placement->starts = fresh;
    } else {
      std::vector<std::vector<Span>> hints;
      for (const auto& other : lanes_) {
        std::vector<Span> spans;
        for (const auto& s : lane.swarm.servers()) {
          const auto j = other->swarm.find(s.id);
          spans.push_back(j ? other->swarm[*j].span : s.span);
        }
        hints.push_back(std::move(spans));
      }
      BoundaryContext context;
      context.hints = hints;
      RebalanceResult r = lane.strategy->rebalance(lane.swarm, {}, lane.rng, context);
      moves = std::move(r.moves);
      lane.placement = std::move(r.placement);
      lane.placement_key = std::move(key);
    }
    last_servers_.clear();
    for (const auto& s : lane.swarm.servers()) last_servers_.emplace_back(s.throughput, s.span.length());
    apply_moves(lane.swarm, moves, ServerState::online);
    lane.moves += static_cast<int>(moves.size());
  }

  void record(Lane& lane, int period, double t) {
    PeriodRecord r;
    r.period = period;
    r.time = t;
    r.block_throughput = block_throughputs(lane.swarm, ServerState::online);
    r.swarm_throughput_sampled = swarm_throughput(r.block_throughput);
    r.disjoint = r.swarm_throughput_sampled <= 0;
    r.swarm_throughput = lane.integral / c_.period;
    r.disjoint_time = lane.disjoint_time;
    lane.integral = 0;
    lane.disjoint_time = 0;
    const Placement* best = bound_->placement ? &*bound_->placement : nullptr;
    r.upper_bound = best ? best->value : 0.0;
    r.upper_bound_certified = best ? best->bound : 0.0;
    r.moves = lane.moves;
    r.reload_downtime = lane.downtime;
    r.expected_gain = lane.expected_gain;
    r.planned_throughput = lane.planned;
    r.span_start.assign(plans_.size(), -1);
    r.span_end.assign(plans_.size(), -1);
    r.presence.assign(plans_.size(), static_cast<std::uint8_t>(Presence::absent));
    for (const auto& s : lane.swarm.servers()) {
      const std::size_t j = plan_index(s.id);
      r.span_start[j] = s.span.start;
      r.span_end[j] = s.span.end;
      r.presence[j] = static_cast<std::uint8_t>(1 + static_cast<int>(s.state));
      r.online += s.state == ServerState::online;
      ++r.present;
    }
    obs_.on_period(lane.kind, r);

    StrategySummary& sum = lane.summary;
    ++sum.periods;
    lane.throughput_sum += r.swarm_throughput;
    if (r.upper_bound > 0) {
      lane.ratio_sum += r.swarm_throughput / r.upper_bound;
      ++lane.ratio_periods;
    }
    if (r.upper_bound_certified > 0) lane.gap_sum += (r.upper_bound_certified - r.upper_bound) / r.upper_bound_certified;
    sum.disjoint_fraction += r.disjoint_time;
    sum.moves += lane.moves;
    sum.reload_downtime += lane.downtime;
    lane.moves = 0;
    lane.downtime = 0;
  }

  StrategySummary finish(const Lane& lane) const {
    const double period_ = c_.period;
    StrategySummary s = lane.summary;
    if (s.periods > 0) {
      s.mean_throughput = lane.throughput_sum / s.periods;
      s.disjoint_fraction /= s.periods * period_;
      s.mean_bound_gap = lane.gap_sum / s.periods;
    }
    if (lane.ratio_periods > 0) s.mean_ratio = lane.ratio_sum / lane.ratio_periods;
    return s;
  }

  const SimConfig& c_;
  SimObserver& obs_;
  std::vector<ServerPlan> plans_;
  std::vector<SharedEvent> shared_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::unique_ptr<Lane> bound_;
  std::vector<std::pair<double, int>> last_servers_;  // (throughput, span) per placement slot
};

}  // namespace

SimResult run(const SimConfig& config, SimObserver& observer, const std::function<bool()>& stop) {
  Simulation sim(config, observer);
  return sim.run(stop);
}

}  // namespace swarm::sim
