#include "swarm/job/balancer.hpp"

#include <algorithm>
#include <cstdio>

#include "swarm/balance/announce.hpp"

namespace swarm::job {

std::string Balancer::server_id(int rank) {
  char id[16];
  std::snprintf(id, sizeof id, "r%05d", rank);  // string order = rank order
  return id;
}

Balancer::Balancer(const JobConfig& config, int blocks, std::vector<int> span_lengths)
    : config_(config),
      blocks_(blocks),
      span_lengths_(std::move(span_lengths)),
      strategy_(make_strategy(config.strategy, {config.balance_quality, config.placement_time_limit, false,
                                                config.move_horizon, config.move_min_interval,
                                                config.move_min_gain})),
      rng_(derive_seed(config.seed, "balancer")),
      churn_rng_(derive_seed(config.seed, "churn")),
      swarm_(blocks) {
  const int n = static_cast<int>(span_lengths_.size());
  for (int r = 0; r < n; ++r) swarm_.add({server_id(r), {0, 0}, 0.0, ServerState::offline});
  block_tps_.assign(static_cast<std::size_t>(n), 0.0);
  compute_ = network_ = announced_ = load_per_block_ = block_tps_;
  next_check_.assign(static_cast<std::size_t>(n), 0.0);
}

// Measurements -> announced throughputs (Petals' get_server_throughput) in the rules' swarm.
void Balancer::update(std::span<const Measurement> measured, double traffic_seconds) {
  for (const Measurement& m : measured) {
    const auto r = static_cast<std::size_t>(m.rank);
    const double free = traffic_seconds > 0 ? std::clamp(1.0 - m.client_seconds / traffic_seconds, 0.0, 1.0) : 1.0;
    if (m.block_tokens_per_s > 0) block_tps_[r] = m.block_tokens_per_s * free;
    if (m.network_tokens_per_s > 0) network_[r] = m.network_tokens_per_s;
    // The span it reloaded at the last boundary is the one it holds now.
    if (m.reload_seconds > 0 && swarm_[r].span.length() > 0) load_per_block_[r] = m.reload_seconds / swarm_[r].span.length();
    compute_[r] = compute_throughput(block_tps_[r], span_lengths_[r]);
    // An unmeasured link (no traffic yet, no cap) does not limit the announcement.
    announced_[r] = network_[r] > 0 ? announced_throughput(compute_[r], network_[r]) : compute_[r];
    swarm_.set_throughput(r, announced_[r]);
  }
}

std::vector<Assignment> Balancer::assignments(const std::vector<int>& reload) const {
  std::vector<Assignment> out(swarm_.size());
  for (std::size_t r = 0; r < swarm_.size(); ++r) {
    const Server& s = swarm_[r];
    const bool serving = s.state != ServerState::offline;
    out[r] = {s.span.start, s.span.end, serving ? ServerState::online : ServerState::offline, false};
  }
  for (int r : reload) out[static_cast<std::size_t>(r)].reload = true;
  return out;
}

void Balancer::place_joiners(const std::vector<int>& ranks, BoundaryDecision& d) {
  for (int r : ranks) {
    const auto i = static_cast<std::size_t>(r);
    const Span span = strategy_->place_joiner(swarm_, span_lengths_[i], announced_[i], rng_);
    swarm_.set_span(i, span);
    swarm_.set_state(i, ServerState::joining);  // counted by the rules while it loads
    next_check_[i] = 0;
    d.joined.push_back(r);
  }
}

BoundaryDecision Balancer::initial() {
  BoundaryDecision d;
  std::vector<int> everyone(swarm_.size());
  for (std::size_t r = 0; r < everyone.size(); ++r) everyone[r] = static_cast<int>(r);
  place_joiners(everyone, d);
  d.assignment = assignments(d.joined);
  for (std::size_t r = 0; r < swarm_.size(); ++r) swarm_.set_state(r, ServerState::online);
  return d;
}

BoundaryDecision Balancer::boundary(int epoch) {
  BoundaryDecision d;
  const auto n = static_cast<int>(swarm_.size());
  // Churn first: scheduled, then random (seeded) for the ranks without a scheduled event.
  std::vector<char> leaves(static_cast<std::size_t>(n), 0), joins(static_cast<std::size_t>(n), 0);
  // The job file counts epochs from 1, as the progress lines do; `epoch` counts from 0.
  for (const auto& e : config_.churn.leaves) {
    if (e.epoch == epoch + 1) leaves[static_cast<std::size_t>(e.rank)] = 1;
  }
  for (const auto& e : config_.churn.joins) {
    if (e.epoch == epoch + 1) joins[static_cast<std::size_t>(e.rank)] = 1;
  }
  for (int r = 0; r < n; ++r) {
    const bool serving = swarm_[static_cast<std::size_t>(r)].state != ServerState::offline;
    const double u = uniform01(churn_rng_);  // drawn for every rank: the stream depends on neither states nor strategy
    if (leaves[r] || joins[r]) continue;  // a scheduled event wins over a random one
    if (serving && config_.churn.leave_probability > 0 && u < config_.churn.leave_probability) leaves[r] = 2;
    if (!serving && config_.churn.join_probability > 0 && u < config_.churn.join_probability) joins[r] = 1;
  }
  // Random churn never takes the last server: a swarm with none would serve nothing for the rest
  // of the run (scheduled churn that empties the swarm is refused at start-up).
  {
    int staying = 0, random_leaver = -1;
    bool anyone_joins = false;
    for (int r = 0; r < n; ++r) {
      const auto i = static_cast<std::size_t>(r);
      const bool serving = swarm_[i].state != ServerState::offline;
      if (serving && !leaves[i]) ++staying;
      if (serving && leaves[i] == 2 && random_leaver < 0) random_leaver = r;
      if (!serving && joins[i]) anyone_joins = true;
    }
    if (staying == 0 && !anyone_joins && random_leaver >= 0) leaves[static_cast<std::size_t>(random_leaver)] = 0;
  }
  std::vector<int> joiners;
  for (int r = 0; r < n; ++r) {
    const auto i = static_cast<std::size_t>(r);
    const bool serving = swarm_[i].state != ServerState::offline;
    if (serving && leaves[i]) {
      swarm_.set_state(i, ServerState::offline);
      d.left.push_back(r);
    } else if (!serving && joins[i]) {
      joiners.push_back(r);
    }
  }
  place_joiners(joiners, d);

  // Then the strategy: rule 2 for the servers whose check is due, or the optimal placement.
  std::vector<std::size_t> due;
  for (std::size_t r = 0; r < swarm_.size(); ++r) {
    if (swarm_[r].state != ServerState::online) continue;
    if (config_.check == CheckMode::every_boundary || next_check_[r] <= epoch) due.push_back(r);
  }
  shuffle(std::span<std::size_t>(due), rng_);
  std::vector<double> load(swarm_.size());
  for (std::size_t r = 0; r < swarm_.size(); ++r) load[r] = load_per_block_[r] * span_lengths_[r];
  BoundaryContext context;
  context.now_s = epoch * config_.epoch_seconds;
  context.load_seconds = load;
  RebalanceResult result = strategy_->rebalance(swarm_, due, rng_, context);
  if (config_.check == CheckMode::random) {
    for (std::size_t r : due) next_check_[r] = epoch + uniform(rng_, 0, 2 * config_.mean_check_epochs);
  }
  apply_moves(swarm_, result.moves, ServerState::joining);
  d.moves = std::move(result.moves);
  d.placement = std::move(result.placement);
  d.plan = std::move(result.plan);

  std::vector<int> reload = d.joined;
  // A server's index in the swarm is its rank (server_id sorts in rank order).
  for (const Move& m : d.moves) reload.push_back(static_cast<int>(*swarm_.find(m.id)));
  std::sort(reload.begin(), reload.end());
  reload.erase(std::unique(reload.begin(), reload.end()), reload.end());
  d.assignment = assignments(reload);
  // Reloads happen at the boundary: everybody serving is online when the epoch starts.
  for (std::size_t r = 0; r < swarm_.size(); ++r) {
    if (swarm_[r].state == ServerState::joining) swarm_.set_state(r, ServerState::online);
  }
  return d;
}

double Balancer::predicted() const { return route_capacity(blocks_, route_servers()); }

std::vector<RouteServer> Balancer::route_servers() const {
  std::vector<RouteServer> out;
  for (std::size_t r = 0; r < swarm_.size(); ++r) {
    const Server& s = swarm_[r];
    RouteServer v;
    v.rank = static_cast<int>(r);
    v.span = s.span;
    v.online = s.state == ServerState::online && s.span.length() > 0;
    v.block_tokens_per_s = block_tps_[r];
    v.network_tokens_per_s = network_[r];
    v.latency_s = config_.class_of(static_cast<int>(r)).latency_ms / 1000.0;
    out.push_back(v);
  }
  return out;
}

}  // namespace swarm::job
