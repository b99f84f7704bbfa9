#include "swarm/balance/rules.hpp"

#include <algorithm>
#include <limits>
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

namespace {

// min over a non-empty array with four independent accumulators: the compiler vectorises this,
// while std::min_element tracks a position and runs one compare at a time (a quarter of rule
// 2's time on large swarms). Throughputs are finite, so min is exact.
double minimum(std::span<const double> t) {
  double m[4] = {t[0], t[0], t[0], t[0]};
  std::size_t i = 0;
  for (; i + 4 <= t.size(); i += 4) {
    for (int j = 0; j < 4; ++j) m[j] = t[i + j] < m[j] ? t[i + j] : m[j];
  }
  for (; i < t.size(); ++i) m[0] = t[i] < m[0] ? t[i] : m[0];
  return std::min(std::min(m[0], m[1]), std::min(m[2], m[3]));
}

}  // namespace

double swarm_throughput(std::span<const double> block_throughput) {
  return block_throughput.empty() ? 0.0 : minimum(block_throughput);
}

double swarm_throughput(const Swarm& swarm, ServerState min_state) {
  return swarm_throughput(block_throughputs(swarm, min_state));
}

// Sorted windows compare like this: at the smallest value whose count differs between two
// windows, the window holding more copies of it is the smaller one. So the best window is found
// by walking the distinct values upwards and keeping, at each value, the candidate windows that
// hold the most copies of it. A value decides something only where it lies in some candidate
// windows but not all: in the union minus the intersection of the candidates, a region that
// shrinks with them. Throughputs are piecewise constant (plateaus between span ends), so values
// repeat and the walk must handle ties; it is exact for any input.
namespace {

// Keeps the candidates (sorted starts) whose window [c, c+k) holds the most of `blocks`.
void keep_most(std::vector<int>& candidates, std::span<const int> blocks, int k, std::vector<int>& hits) {
  // Block p lies in the windows starting at p-k+1..p: a difference array over candidates.
  hits.assign(candidates.size() + 1, 0);
  for (const int p : blocks) {
    const auto lo = std::lower_bound(candidates.begin(), candidates.end(), p - k + 1);
    const auto hi = std::upper_bound(candidates.begin(), candidates.end(), p);
    ++hits[static_cast<std::size_t>(lo - candidates.begin())];
    --hits[static_cast<std::size_t>(hi - candidates.begin())];
  }
  int run = 0, best = 0;
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    run += hits[c];
    hits[c] = run;
    best = std::max(best, run);
  }
  std::size_t kept = 0;
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    if (hits[c] == best) candidates[kept++] = candidates[c];
  }
  candidates.resize(kept);
}

// Rounds that rescan the shrinking region before handing the rest to a heap.
constexpr int kScanRounds = 24;

}  // namespace

int best_start(std::span<const double> t, int k) {
  const int total = static_cast<int>(t.size());
  if (k < 1 || k > total) {
    throw std::invalid_argument("num_blocks " + std::to_string(k) + " is outside 1.." +
                                std::to_string(total));
  }
  const int windows = total - k + 1;
  if (windows == 1) return 0;

  // Every block lies in some window, so the first deciding value is the global minimum, and
  // all windows are candidates for it.
  std::vector<int> candidates(static_cast<std::size_t>(windows));
  for (int i = 0; i < windows; ++i) candidates[static_cast<std::size_t>(i)] = i;
  std::vector<int> group, hits;
  double value = minimum(t);
  for (int b = 0; b < total; ++b) {
    if (t[b] == value) group.push_back(b);
  }
  if (group.size() == 1) {  // the windows holding it form an interval
    const int p = group.front();
    candidates.assign(candidates.begin() + std::max(0, p - k + 1), candidates.begin() + std::min(p, windows - 1) + 1);
  } else {
    keep_most(candidates, group, k, hits);
  }

  for (int round = 0; candidates.size() > 1; ++round) {
    const int first = candidates.front();
    const int last = candidates.back();
    // The deciding blocks: [first, last + k) without [last, first + k) (held by every candidate).
    const bool overlap = last < first + k;
    const int a_end = overlap ? last : last + k;
    const int b_begin = overlap ? first + k : last + k;
    if (round == kScanRounds) {
      // Slow progress: take the remaining values smallest first from a heap.
      std::vector<std::pair<double, int>> rest;
      for (int p = first; p < last + k; ++p) {
        if ((p < a_end || p >= b_begin) && t[p] > value) rest.emplace_back(t[p], p);
      }
      const auto later = [](const std::pair<double, int>& x, const std::pair<double, int>& y) { return x > y; };
      std::make_heap(rest.begin(), rest.end(), later);
      for (auto end = rest.end(); end != rest.begin() && candidates.size() > 1;) {
        group.clear();
        const double v = rest.front().first;
        while (end != rest.begin() && rest.front().first == v) {
          group.push_back(rest.front().second);
          std::pop_heap(rest.begin(), end, later);
          --end;
        }
        keep_most(candidates, group, k, hits);
      }
      break;
    }
    // The next value: the smallest above the last one among the deciding blocks.
    double next = std::numeric_limits<double>::infinity();
    group.clear();
    const auto scan = [&](int from, int to) {
      for (int p = from; p < to; ++p) {
        const double x = t[p];
        if (x <= value || x > next) continue;
        if (x < next) {
          next = x;
          group.clear();
        }
        group.push_back(p);
      }
    };
    scan(first, a_end);
    scan(b_begin, last + k);
    if (group.empty()) break;  // nothing tells the candidates apart
    value = next;
    keep_most(candidates, group, k, hits);
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
