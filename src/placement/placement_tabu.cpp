#include "placement_tabu.hpp"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <numeric>

#include "swarm/util/random.hpp"
#include "swarm/util/clock.hpp"

namespace swarm::detail {
namespace {


constexpr std::size_t kMaxKicked = 16;  // servers a restart moves at random, at most (docs/placement.md)

struct Move {
  double delta = std::numeric_limits<double>::infinity();
  std::size_t cls = 0;
  std::size_t member = 0;
  int to = -1;
};

}  // namespace

TabuResult improve_by_tabu(int total_blocks, std::span<const SearchClass> classes,
                       std::span<const double> coverage_values, std::vector<std::vector<int>>& starts,
                       const TabuLimits& limits) {
  if (total_blocks < 1) return {};
  const auto L = static_cast<std::size_t>(total_blocks);
  std::vector<double> cov(L, 0.0);
  const auto cover = [&] {  // cov from starts
    std::fill(cov.begin(), cov.end(), 0.0);
    for (std::size_t c = 0; c < classes.size(); ++c) {
      for (int s : starts[c]) {
        for (int b = s; b < s + classes[c].num_blocks; ++b) cov[static_cast<std::size_t>(b)] += classes[c].throughput;
      }
    }
  };
  cover();
  const auto value_now = [&] { return *std::min_element(cov.begin(), cov.end()); };
  double best = value_now();
  std::vector<std::vector<int>> best_starts = starts;

  double target = 0.0;
  const auto raise_target = [&] {
    if (!coverage_values.empty()) {
      const auto it = std::upper_bound(coverage_values.begin(), coverage_values.end(), best * (1 + 1e-12));
      if (it == coverage_values.end()) return false;
      target = *it * (1 - 1e-12);
    } else {
      if (limits.unit <= 0) return false;
      target = best + limits.unit;
    }
    return target <= limits.stop_at * (1 + 1e-12);
  };
  if (best >= limits.stop_at * (1 - 1e-12) || !raise_target()) return {best, 0};

  const auto shortfall = [&](double c) { return c < target ? target - c : 0.0; };
  const auto total = [&] {
    double sum = 0.0;
    for (double c : cov) sum += shortfall(c);
    return sum;
  };
  double total_shortfall = total();

  // tabu[c][m * starts + s]: the move until which server m of class c may not go back to s.
  std::vector<std::vector<long>> tabu(classes.size());
  for (std::size_t c = 0; c < classes.size(); ++c) {
    tabu[c].assign(starts[c].size() * static_cast<std::size_t>(total_blocks - classes[c].num_blocks + 1), 0);
  }
  Rng rng(limits.seed);
  // Prefix sums over blocks of what adding one server of the class changes (gain) and what
  // taking one away from a block it covers changes (loss), so every relocation costs O(1).
  std::vector<double> gain(L + 1), loss(L + 1);
  std::vector<std::size_t> by_start;  // a class's members, by start
  const auto sum = [](const std::vector<double>& p, int lo, int hi) {
    return lo < hi ? p[static_cast<std::size_t>(hi)] - p[static_cast<std::size_t>(lo)] : 0.0;
  };
  std::size_t servers = 0;
  for (const auto& c : starts) servers += c.size();
  if (servers == 0) return {best, 0};
  long stale = 0;
  long move = 1;
  long work = 0;
  for (;; ++move, ++stale) {
    if (move > limits.max_moves || work > limits.max_work || ((move & 63) == 0 && Clock::now() >= limits.deadline)) break;
    if (stale >= limits.stale_iterations) {
      if (!limits.restart) break;
      // Stalled: start again from the best placement with a quarter of the servers moved at
      // random, a different neighbourhood of the same good region (a quarter and 100 stale
      // moves did best among 1/16..1/2 and 30..1000 on 64-server swarms of 4 and 10 classes),
      // but 16 at most: 50 of 200 servers moved at random are more than 100 moves repair (an
      // appendix-E swarm of 200 ended 3 s at 152,900-153,150 with 50, 153,360-153,400 with
      // 12-24, of a bound of 153,962).
      starts = best_starts;
      for (std::size_t r = 0; r < std::clamp<std::size_t>(servers / 4, 2, kMaxKicked); ++r) {
        std::size_t c = 0;
        do c = uniform_index(rng, classes.size()); while (starts[c].empty());
        starts[c][uniform_index(rng, starts[c].size())] =
            static_cast<int>(uniform_index(rng, static_cast<std::uint64_t>(total_blocks - classes[c].num_blocks + 1)));
      }
      cover();
      total_shortfall = total();
      for (auto& t : tabu) std::fill(t.begin(), t.end(), 0);
      stale = 0;
    }
    Move chosen;
    std::uint64_t ties = 0;
    for (std::size_t c = 0; c < classes.size(); ++c) {
      const double t = classes[c].throughput;
      const int k = classes[c].num_blocks;
      const auto positions = static_cast<std::size_t>(total_blocks - k + 1);
      if (t <= 0 || starts[c].empty()) continue;
      work += static_cast<long>(L);
      for (std::size_t b = 0; b < L; ++b) {
        gain[b + 1] = gain[b] + shortfall(cov[b] + t) - shortfall(cov[b]);
        loss[b + 1] = loss[b] + shortfall(cov[b] - t) - shortfall(cov[b]);
      }
      // Servers of a class at the same start are interchangeable, so each start is weighed
      // once, for a member there that the tabu lets go (in good placements of 200 servers half
      // of them share their start with another: 1.6x the moves a second; 1.15x at 64).
      by_start.resize(starts[c].size());
      std::iota(by_start.begin(), by_start.end(), std::size_t{0});
      std::sort(by_start.begin(), by_start.end(),
                [&](std::size_t x, std::size_t y) { return starts[c][x] < starts[c][y]; });
      for (std::size_t first = 0, last = 0; first < by_start.size(); first = last) {
        const int from = starts[c][by_start[first]];
        for (last = first + 1; last < by_start.size() && starts[c][by_start[last]] == from; ++last) {
        }
        const double removed = sum(loss, from, from + k);
        work += static_cast<long>(positions);
        for (int to = 0; to + k <= total_blocks; ++to) {
          if (to == from) continue;
          // Where the new span overlaps the old one the server stays: no change there.
          const int lo = std::max(from, to), hi = std::min(from, to) + k;
          const double delta = removed + sum(gain, to, to + k) - sum(loss, lo, hi) - sum(gain, lo, hi);
          std::size_t m = by_start[first];
          bool forbidden = true;
          for (std::size_t i = first; i < last && forbidden; ++i) {
            if (tabu[c][by_start[i] * positions + static_cast<std::size_t>(to)] <= move) {
              m = by_start[i];
              forbidden = false;
            }
          }
          if (forbidden && total_shortfall + delta > 1e-9 * target) continue;  // unless it meets the target
          if (delta < chosen.delta - 1e-12 * target) {
            chosen = {delta, c, m, to};
            ties = 1;
          } else if (delta <= chosen.delta + 1e-12 * target && uniform_index(rng, ++ties) == 0) {
            chosen = {delta, c, m, to};
          }
        }
      }
    }
    if (chosen.to < 0) continue;  // everything is tabu: wait for the tenures to run out

    const SearchClass& moved = classes[chosen.cls];
    int& start = starts[chosen.cls][chosen.member];
    for (int b = start; b < start + moved.num_blocks; ++b) cov[static_cast<std::size_t>(b)] -= moved.throughput;
    for (int b = chosen.to; b < chosen.to + moved.num_blocks; ++b) cov[static_cast<std::size_t>(b)] += moved.throughput;
    const auto positions = static_cast<std::size_t>(total_blocks - moved.num_blocks + 1);
    tabu[chosen.cls][chosen.member * positions + static_cast<std::size_t>(start)] =
        move + 10 + static_cast<long>(uniform_index(rng, 11));
    start = chosen.to;

    total_shortfall = total();
    const double value = value_now();
    if (value > best * (1 + 1e-12)) {
      best = value;
      best_starts = starts;
      stale = 0;
      if (best >= limits.stop_at * (1 - 1e-12) || !raise_target()) break;
      total_shortfall = total();  // against the raised target
    }
  }
  starts = std::move(best_starts);
  return {best, move - 1, work};
}

}  // namespace swarm::detail
