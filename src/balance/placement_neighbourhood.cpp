#include "placement_neighbourhood.hpp"

#include <algorithm>
#include <cstddef>
#include <utility>

#include "swarm/random.hpp"

namespace swarm::detail {
namespace {

using Clock = std::chrono::steady_clock;

// Freed servers per attempt, drawn uniformly. Measured on appendix-E swarms (64 servers, 10
// classes): up to 16 freed around a window improved them once in thousands of attempts; whole
// classes of up to 40 servers improved them 10-20 times in 500, and the search still decides
// most such attempts within milliseconds (the fixed servers leave it little to choose).
constexpr int kFewestFreed = 4;
constexpr int kMostFreed = 40;
constexpr int kWidestWindow = 16;  // blocks

// One server: its class and its index among the class's starts.
struct Member {
  std::size_t cls;
  std::size_t index;
};

}  // namespace

NeighbourhoodResult improve_by_neighbourhoods(int total_blocks, std::span<const SearchClass> classes,
                                              std::span<const double> coverage_values,
                                              std::vector<std::vector<int>>& starts, const NeighbourhoodLimits& limits) {
  NeighbourhoodResult result;
  if (total_blocks < 1 || classes.empty()) return result;
  const auto L = static_cast<std::size_t>(total_blocks);
  std::vector<double> coverage(L, 0.0);
  const auto cover = [&] {
    std::fill(coverage.begin(), coverage.end(), 0.0);
    for (std::size_t c = 0; c < classes.size(); ++c) {
      for (int s : starts[c]) {
        for (int b = s; b < s + classes[c].num_blocks; ++b) coverage[static_cast<std::size_t>(b)] += classes[c].throughput;
      }
    }
    return *std::min_element(coverage.begin(), coverage.end());
  };
  result.value = cover();

  std::vector<Member> all;
  for (std::size_t c = 0; c < classes.size(); ++c) {
    for (std::size_t m = 0; m < starts[c].size(); ++m) all.push_back({c, m});
  }
  std::vector<std::size_t> class_order(classes.size());
  Rng rng(limits.seed);
  std::vector<Member> freed;
  std::vector<double> fixed(L);
  std::vector<SearchClass> free_classes;
  std::vector<std::vector<std::size_t>> free_members;  // per free class, the members' indices
  while (result.value < limits.stop_at * (1 - 1e-12) && result.work < limits.max_work &&
         Clock::now() < limits.deadline) {
    double target = 0.0;
    if (!coverage_values.empty()) {
      const auto it = std::upper_bound(coverage_values.begin(), coverage_values.end(), result.value * (1 + 1e-12));
      if (it == coverage_values.end()) break;
      target = *it;
    } else {
      if (limits.unit <= 0) break;
      target = result.value + limits.unit;
    }
    if (target > limits.stop_at * (1 + 1e-12)) break;

    // The neighbourhood: whole classes (alternate attempts), or servers over a window of blocks.
    const auto wanted = static_cast<std::size_t>(kFewestFreed + static_cast<int>(uniform_index(rng, kMostFreed - kFewestFreed + 1)));
    freed.clear();
    if (result.attempts % 2 == 0) {
      for (std::size_t c = 0; c < class_order.size(); ++c) class_order[c] = c;
      shuffle(std::span<std::size_t>(class_order), rng);
      for (std::size_t c : class_order) {
        if (freed.size() >= wanted) break;
        for (std::size_t m = 0; m < starts[c].size(); ++m) freed.push_back({c, m});
      }
    } else {
      const int first = static_cast<int>(uniform_index(rng, L));
      const int end = first + 1 + static_cast<int>(uniform_index(rng, kWidestWindow));
      for (const Member& s : all) {
        const int start = starts[s.cls][s.index];
        if (start < end && start + classes[s.cls].num_blocks > first) freed.push_back(s);
      }
      shuffle(std::span<Member>(freed), rng);
      if (freed.size() > wanted) freed.resize(wanted);
    }
    ++result.attempts;

    // What the servers that stay bring (summed afresh: subtracting the freed ones' would round).
    std::sort(freed.begin(), freed.end(), [](const Member& a, const Member& b) {
      return std::pair(a.cls, a.index) < std::pair(b.cls, b.index);
    });
    std::fill(fixed.begin(), fixed.end(), 0.0);
    for (std::size_t c = 0, f = 0; c < classes.size(); ++c) {
      for (std::size_t m = 0; m < starts[c].size(); ++m) {
        if (f < freed.size() && freed[f].cls == c && freed[f].index == m) {
          ++f;
          continue;
        }
        for (int b = starts[c][m]; b < starts[c][m] + classes[c].num_blocks; ++b) {
          fixed[static_cast<std::size_t>(b)] += classes[c].throughput;
        }
      }
    }
    free_classes.clear();
    free_members.clear();
    for (std::size_t i = 0; i < freed.size();) {
      std::size_t j = i;
      free_members.emplace_back();
      while (j < freed.size() && freed[j].cls == freed[i].cls) free_members.back().push_back(freed[j++].index);
      const SearchClass& k = classes[freed[i].cls];
      free_classes.push_back({k.throughput, k.num_blocks, static_cast<int>(j - i)});
      i = j;
    }

    // Without a deadline (work caps: reproducible runs) no attempt reads the clock either.
    const auto attempt_deadline =
        limits.deadline == Clock::time_point::max()
            ? limits.deadline
            : std::min(limits.deadline, Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                           std::chrono::duration<double>(limits.attempt_seconds)));
    const long work = std::min(limits.attempt_work, limits.max_work - result.work);
    SearchLimits search{.deadline = attempt_deadline, .wide_deadline = attempt_deadline, .max_nodes = work,
                        .wide_max_nodes = work, .restart_work = 0, .threads = 1};
    const SearchResult r = reach_target(total_blocks, free_classes, target, coverage_values, search, fixed);
    result.work += r.work;
    if (r.outcome != SearchOutcome::reached) continue;
    const std::vector<std::vector<int>> before = starts;
    std::size_t at = 0;  // freed is sorted by class: free class f's members follow f - 1's
    for (std::size_t f = 0; f < free_classes.size(); ++f) {
      const std::size_t c = freed[at].cls;
      for (std::size_t i = 0; i < free_members[f].size(); ++i) starts[c][free_members[f][i]] = r.starts[f][i];
      at += free_members[f].size();
    }
    const double value = cover();
    if (value > result.value) {
      result.value = value;
      ++result.improvements;
    } else {  // the search's sums said yes, the exact sum says no (rounding): keep the old one
      starts = before;
      cover();
    }
  }
  return result;
}

}  // namespace swarm::detail
