#include "swarm/rules.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

namespace swarm {

std::vector<double> block_throughputs(const Swarm& swarm, ServerState min_state) {
  std::vector<double> t(static_cast<std::size_t>(swarm.total_blocks()), 0.0);
  for (const Server& s : swarm.servers()) {  // ascending id order: fixes the rounding
    if (s.state < min_state || s.span.length() <= 0) continue;
    for (int b = s.span.start; b < s.span.end; ++b) t[static_cast<std::size_t>(b)] += s.throughput;
  }
  return t;
}

double swarm_throughput(std::span<const double> block_throughput) {
  return block_throughput.empty() ? 0.0
                                  : *std::min_element(block_throughput.begin(), block_throughput.end());
}

double swarm_throughput(const Swarm& swarm, ServerState min_state) {
  return swarm_throughput(block_throughputs(swarm, min_state));
}

// Sorted windows compare like this: at the smallest value whose count differs between two
// windows, the window holding more copies of it is the smaller one. So the best window is found
// by walking the distinct values upwards and keeping, at each value, the candidate windows that
// hold the most copies of it. Values held by every candidate, or by none, decide nothing, so
// only the blocks in the union minus the intersection of the candidate windows are sorted.
int best_start(std::span<const double> t, int k) {
  const int total = static_cast<int>(t.size());
  if (k < 1 || k > total) {
    throw std::invalid_argument("num_blocks " + std::to_string(k) + " is outside 1.." +
                                std::to_string(total));
  }
  const int windows = total - k + 1;
  if (windows == 1) return 0;

  // Every block lies in some window, so the smallest window minimum is the global minimum.
  const double lowest = *std::min_element(t.begin(), t.end());
  std::vector<int> candidates;
  int copies = 0;
  for (int b = 0; b < k; ++b) copies += (t[b] == lowest);
  int most = copies;
  candidates.push_back(0);
  for (int i = 1; i < windows; ++i) {
    copies += (t[i + k - 1] == lowest) - (t[i - 1] == lowest);
    if (copies > most) {
      most = copies;
      candidates.assign(1, i);
    } else if (copies == most) {
      candidates.push_back(i);
    }
  }
  if (candidates.size() == 1) return candidates.front();

  const int first = candidates.front();
  const int last = candidates.back();
  std::vector<std::pair<double, int>> deciding;  // (value, block) outside the common part
  for (int p = first; p < last + k; ++p) {
    if (p >= last && p < first + k) continue;  // in every candidate window
    if (t[p] == lowest) continue;              // already counted
    deciding.emplace_back(t[p], p);
  }
  std::sort(deciding.begin(), deciding.end());

  std::vector<int> hits;
  for (std::size_t g = 0; g < deciding.size();) {
    std::size_t e = g;
    while (e < deciding.size() && deciding[e].first == deciding[g].first) ++e;
    // Block p lies in the windows starting at p-k+1..p: a difference array over candidates.
    hits.assign(candidates.size() + 1, 0);
    for (std::size_t q = g; q < e; ++q) {
      const int p = deciding[q].second;
      const auto lo = std::lower_bound(candidates.begin(), candidates.end(), p - k + 1);
      const auto hi = std::upper_bound(candidates.begin(), candidates.end(), p);
      ++hits[static_cast<std::size_t>(lo - candidates.begin())];
      --hits[static_cast<std::size_t>(hi - candidates.begin())];
    }
    int best = 0;
    int run = 0;
    for (std::size_t c = 0; c < candidates.size(); ++c) {
      run += hits[c];
      hits[c] = run;
      best = std::max(best, hits[c]);
    }
    std::size_t kept = 0;
    for (std::size_t c = 0; c < candidates.size(); ++c) {
      if (hits[c] == best) candidates[kept++] = candidates[c];
    }
    candidates.resize(kept);
    if (kept == 1) break;
    g = e;
  }
  return candidates.front();  // a complete tie goes to the smallest start
}

Span choose_best_blocks(const Swarm& swarm, int num_blocks) {
  const std::vector<double> t = block_throughputs(swarm, ServerState::joining);
  const int start = best_start(t, num_blocks);
  return {start, start + num_blocks};
}

namespace {

void add_over(std::vector<double>& t, int start, int length, double amount) {
  for (int b = start; b < start + length; ++b) t[static_cast<std::size_t>(b)] += amount;
}

// Petals' loop has no bound; this one exists only so that a pathological input cannot spin
// forever. No swarm seen in testing needed more than a few dozen passes.
constexpr int kMaxPasses = 100000;

}  // namespace

RebalanceDecision should_choose_other_blocks(const Swarm& swarm, std::size_t index,
                                             double balance_quality, Rng& rng) {
  if (balance_quality > 1.0) return {true, std::nullopt, RebalanceReason::forced, 0};
  const Server& self = swarm[index];
  if (!self.counted()) return {false, std::nullopt, RebalanceReason::not_counted, 0};

  std::vector<double> t = block_throughputs(swarm, ServerState::joining);
  const double initial = swarm_throughput(t);

  // The counted servers, in id order, as (start, length, throughput) that the passes move.
  struct Placed {
    int start;
    int length;
    double throughput;
  };
  std::vector<Placed> placed;
  std::size_t self_slot = 0;
  for (std::size_t i = 0; i < swarm.size(); ++i) {
    const Server& s = swarm[i];
    if (!s.counted()) continue;
    if (i == index) self_slot = placed.size();
    placed.push_back({s.span.start, s.span.length(), s.throughput});
  }

  // Take this server out, slightly biased towards staying (subtract t * (1 + eps)).
  Placed& me = placed[self_slot];
  add_over(t, me.start, me.length, -(me.throughput * (1 + kEps)));
  if (initial > kEps && swarm_throughput(t) <= 0) {
    return {false, std::nullopt, RebalanceReason::would_disjoin, 0};
  }
  const int new_start = best_start(t, me.length);
  if (new_start == me.start) return {false, std::nullopt, RebalanceReason::already_best, 0};
  add_over(t, me.start, me.length, me.throughput * kEps);
  me.start = new_start;
  add_over(t, me.start, me.length, me.throughput);

  // Everybody re-chooses, in a random order per pass, until a pass moves nobody.
  std::vector<std::size_t> order(placed.size());
  int passes = 0;
  for (bool moved = true; moved && passes < kMaxPasses;) {
    ++passes;
    std::iota(order.begin(), order.end(), std::size_t{0});
    shuffle(std::span<std::size_t>(order), rng);
    moved = false;
    for (std::size_t i : order) {
      Placed& p = placed[i];
      add_over(t, p.start, p.length, -(p.throughput * (1 + kEps)));
      const int chosen = best_start(t, p.length);
      add_over(t, p.start, p.length, p.throughput * kEps);
      if (chosen != p.start) {
        p.start = chosen;
        moved = true;
      }
      add_over(t, p.start, p.length, p.throughput);
    }
  }

  const double after = swarm_throughput(t);
  if (after < initial || after < kEps) {
    return {false, std::nullopt, RebalanceReason::no_improvement, passes};
  }
  const double quality = initial / after;
  return {quality < balance_quality - kEps, quality, RebalanceReason::compared, passes};
}

}  // namespace swarm
