#include "swarm/balance/move_planner.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <numeric>

#include "swarm/balance/rules.hpp"

namespace swarm {
namespace {

// Values that differ by rounding only (sums taken in another order) compare equal.
constexpr double kRelTol = 1e-9;

bool above(double a, double b) { return a > b + kRelTol * std::max(std::abs(a), std::abs(b)); }

struct Score {
  double value = 0;  // min over blocks
  int at_min = 0;    // blocks at that minimum (fewer is better: the next move can lift them)
};

Score score(std::span<const double> cov) {
  Score s{std::numeric_limits<double>::infinity(), 0};
  for (double c : cov) s.value = std::min(s.value, c);
  if (cov.empty()) s.value = 0;
  const double limit = s.value + kRelTol * std::abs(s.value);
  for (double c : cov) s.at_min += c <= limit;
  return s;
}

bool better(const Score& a, const Score& b) {
  if (above(a.value, b.value)) return true;
  if (above(b.value, a.value)) return false;
  return a.at_min < b.at_min;
}

void add_over(std::vector<double>& cov, Span span, double amount) {
  for (int b = span.start; b < span.end; ++b) cov[static_cast<std::size_t>(b)] += amount;
}

struct Candidate {
  std::size_t server;
  Span to;
};

// Throughput x seconds the swarm delivers over `horizon` when `moves` start together now: each
// mover is off from the start (`trans` already lacks it on its old span) and serves its new span
// once its load ends. This is where a move pays for its reload: on the blocks it leaves, as
// much of its throughput as the swarm's minimum loses there.
double transition_value(std::vector<double> trans, const Swarm& swarm, std::span<const PlannedMove> moves,
                        std::span<const double> loads, double horizon) {
  std::vector<std::size_t> by_load(moves.size());
  std::iota(by_load.begin(), by_load.end(), std::size_t{0});
  std::stable_sort(by_load.begin(), by_load.end(), [&](std::size_t a, std::size_t b) { return loads[a] < loads[b]; });
  double total = 0, t = 0;
  for (std::size_t k : by_load) {
    const double until = std::min(loads[k], horizon);
    if (until > t) {
      total += swarm_throughput(trans) * (until - t);
      t = until;
    }
    add_over(trans, moves[k].to, swarm[moves[k].server].throughput);
  }
  if (horizon > t) total += swarm_throughput(trans) * (horizon - t);
  return total;
}

}  // namespace

MovePlan plan_moves(const Swarm& swarm, std::span<const int> target, std::span<const double> load_seconds,
                    const MovePlanOptions& options) {
  const int blocks = swarm.total_blocks();
  std::vector<double> cov = block_throughputs(swarm, ServerState::joining);
  std::vector<int> online(static_cast<std::size_t>(blocks), 0);
  for (const Server& s : swarm.servers()) {
    if (s.state != ServerState::online) continue;
    for (int b = s.span.start; b < s.span.end; ++b) ++online[static_cast<std::size_t>(b)];
  }
  MovePlan plan;
  plan.current = swarm_throughput(cov);
  plan.planned = plan.current;
  plan.target = plan.current;

  auto cost_of = [&](std::size_t i) {
    const double load = i < load_seconds.size() ? std::max(0.0, load_seconds[i]) : 0.0;
    return swarm[i].throughput * load;
  };

  // Candidates: the target span and the best response of every server that may move.
  std::vector<Candidate> candidates;
  if (target.size() == swarm.size()) {
    std::vector<PlacementServer> servers;
    std::vector<int> starts;
    for (std::size_t i = 0; i < swarm.size(); ++i) {
      if (!swarm[i].counted()) continue;
      const int k = swarm[i].span.length();
      servers.push_back({swarm[i].throughput, k});
      starts.push_back(target[i] >= 0 && target[i] + k <= blocks ? target[i] : swarm[i].span.start);
    }
    if (!servers.empty()) plan.target = placement_value(blocks, servers, starts);
  }
  for (std::size_t i = 0; i < swarm.size(); ++i) {
    const Server& s = swarm[i];
    if (s.state != ServerState::online || s.span.length() <= 0 || s.throughput <= 0) continue;
    if (!options.movable.empty() && (i >= options.movable.size() || !options.movable[i])) continue;
    const int k = s.span.length();
    if (target.size() == swarm.size() && target[i] >= 0 && target[i] + k <= blocks && target[i] != s.span.start) {
      candidates.push_back({i, {target[i], target[i] + k}});
    }
    std::vector<double> others = cov;
    add_over(others, s.span, -s.throughput);
    const int br = best_start(others, k);
    if (br != s.span.start && !(target.size() == swarm.size() && br == target[i])) {
      candidates.push_back({i, {br, br + k}});
    }
  }

  // Greedy order, then the best prefix. `trans` is the swarm while the chosen movers reload:
  // gone from their old spans, not yet on their new ones.
  std::vector<double> trans = cov;
  std::vector<char> moved(swarm.size(), 0);
  std::vector<PlannedMove> order;
  std::vector<double> loads;  // per chosen move
  Score now = score(cov);
  double best_net = 0;
  std::size_t best_len = 0;
  double best_value = plan.current;
  std::vector<double> trial(cov.size());
  for (;;) {
    std::optional<std::size_t> pick;
    Score pick_score;
    double pick_dip = 0, pick_cost = 0;
    for (std::size_t c = 0; c < candidates.size(); ++c) {
      const Candidate& cand = candidates[c];
      if (moved[cand.server]) continue;
      const Server& s = swarm[cand.server];
      bool strands = false;  // its old span would lose its last online server
      for (int b = s.span.start; b < s.span.end && !strands; ++b) strands = online[static_cast<std::size_t>(b)] == 1;
      if (strands) continue;
      trial = cov;
      add_over(trial, s.span, -s.throughput);
      add_over(trial, cand.to, s.throughput);
      const Score sc = score(trial);
      // The swarm while it reloads, with this mover gone too (higher is better).
      double dip = std::numeric_limits<double>::infinity();
      for (int b = 0; b < blocks; ++b) {
        const bool leaves = s.span.start <= b && b < s.span.end;
        dip = std::min(dip, trans[static_cast<std::size_t>(b)] - (leaves ? s.throughput : 0.0));
      }
      const double cost = cost_of(cand.server);
      const bool wins = !pick || better(sc, pick_score) ||
                        (!better(pick_score, sc) && (above(dip, pick_dip) || (!above(pick_dip, dip) && cost < pick_cost)));
      if (wins) {
        pick = c;
        pick_score = sc;
        pick_dip = dip;
        pick_cost = cost;
      }
    }
    if (!pick || !better(pick_score, now)) break;
    const Candidate& cand = candidates[*pick];
    const Server& s = swarm[cand.server];
    add_over(cov, s.span, -s.throughput);
    add_over(cov, cand.to, s.throughput);
    add_over(trans, s.span, -s.throughput);
    for (int b = s.span.start; b < s.span.end; ++b) --online[static_cast<std::size_t>(b)];
    moved[cand.server] = 1;
    now = pick_score;
    order.push_back({cand.server, cand.to, pick_cost});
    loads.push_back(cand.server < load_seconds.size() ? std::max(0.0, load_seconds[cand.server]) : 0.0);
    const double net = transition_value(trans, swarm, order, loads, options.horizon_s) - plan.current * options.horizon_s;
    const bool enough = now.value - plan.current >= options.min_gain * plan.current;
    if (enough && net > best_net) {
      best_net = net;
      best_len = order.size();
      best_value = now.value;
    }
  }
  order.resize(best_len);
  plan.moves = std::move(order);
  plan.planned = best_value;
  plan.net = best_net;
  for (const PlannedMove& m : plan.moves) plan.cost += m.cost;
  return plan;
}

void keep_current_where_optimal(int total_blocks, std::span<const PlacementServer> servers,
                                std::span<const int> current, std::span<const double> cost,
                                Placement& placement) {
  const std::size_t n = servers.size();
  if (placement.starts.size() != n || current.size() != n) return;
  // Identical servers are interchangeable: give each its own start where the class has it.
  std::map<std::pair<double, int>, std::vector<std::size_t>> classes;
  for (std::size_t j = 0; j < n; ++j) classes[{servers[j].throughput, servers[j].num_blocks}].push_back(j);
  for (const auto& [key, members] : classes) {
    if (members.size() < 2) continue;
    std::multiset<int> starts;
    for (std::size_t j : members) starts.insert(placement.starts[j]);
    std::vector<std::size_t> rest;
    for (std::size_t j : members) {
      const auto hit = starts.find(current[j]);
      if (hit == starts.end()) {
        rest.push_back(j);
        continue;
      }
      placement.starts[j] = current[j];
      starts.erase(hit);
    }
    auto next = starts.begin();
    for (std::size_t j : rest) placement.starts[j] = *next++;
  }
  // Then each server that still moves is tried back where it is.
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const double ca = a < cost.size() ? cost[a] : 0.0, cb = b < cost.size() ? cost[b] : 0.0;
    return ca > cb;
  });
  double value = placement_value(total_blocks, servers, placement.starts);
  const double keep = value - kRelTol * std::abs(value);
  for (std::size_t j : order) {
    const int start = current[j];
    if (start == placement.starts[j] || start < 0 || start + servers[j].num_blocks > total_blocks) continue;
    const int was = placement.starts[j];
    placement.starts[j] = start;
    const double v = placement_value(total_blocks, servers, placement.starts);
    if (v >= keep) {
      value = std::max(value, v);
    } else {
      placement.starts[j] = was;
    }
  }
  placement.value = value;
}

}  // namespace swarm
