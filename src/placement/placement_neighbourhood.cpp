#include "placement_neighbourhood.hpp"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "swarm/util/random.hpp"
#include "swarm/util/clock.hpp"

namespace swarm::detail {
namespace {


// Freed servers per attempt, drawn uniformly (docs/placement.md, "Tuned constants").
constexpr int kFewestFreed = 4;
constexpr int kMostFreed = 40;
constexpr int kWidestWindow = 16;  // blocks

// One server: its class and its index among the class's starts.
struct Member {
  std::size_t cls;
  std::size_t index;
};

// What every worker reads and none changes.
struct Swarm {
  int total_blocks;
  std::span<const SearchClass> classes;
  std::span<const double> coverage_values;
  std::vector<Member> all;  // every server
  const NeighbourhoodLimits& limits;
};

// What the workers count together.
struct Tally {
  std::atomic<long> work{0};
  std::atomic<long> attempts{0};
  std::atomic<long> improvements{0};
  std::atomic<bool> failed{false};  // a worker threw: the others stop too
};

// The bottleneck coverage of `starts`; `coverage` is scratch.
double bottleneck(const Swarm& swarm, const std::vector<std::vector<int>>& starts, std::vector<double>& coverage) {
  std::fill(coverage.begin(), coverage.end(), 0.0);
  for (std::size_t c = 0; c < swarm.classes.size(); ++c) {
    for (int s : starts[c]) {
      for (int b = s; b < s + swarm.classes[c].num_blocks; ++b) coverage[static_cast<std::size_t>(b)] += swarm.classes[c].throughput;
    }
  }
  return *std::min_element(coverage.begin(), coverage.end());
}

void run_worker(const Swarm& swarm, SharedPlacement& best, Tally& tally, unsigned long long seed) {
  const NeighbourhoodLimits& limits = swarm.limits;
  const std::span<const SearchClass> classes = swarm.classes;
  const auto L = static_cast<std::size_t>(swarm.total_blocks);
  std::vector<std::vector<int>> starts;
  double value = 0.0;
  long version = -1;
  long attempts = 0;  // this worker's: whole classes and windows alternate
  Rng rng(seed);
  std::vector<std::size_t> class_order(classes.size());
  std::vector<Member> freed;
  std::vector<double> fixed(L);
  std::vector<double> coverage(L);
  std::vector<SearchClass> free_classes;
  std::vector<std::vector<std::size_t>> free_members;  // per free class, the members' indices
  for (;;) {
    best.adopt(version, starts, value);
    if (!(value < limits.stop_at * (1 - 1e-12)) || tally.work.load() >= limits.max_work || tally.failed.load() ||
        Clock::now() >= limits.deadline) {
      return;
    }
    double target = 0.0;
    if (!swarm.coverage_values.empty()) {
      const auto it = std::upper_bound(swarm.coverage_values.begin(), swarm.coverage_values.end(), value * (1 + 1e-12));
      if (it == swarm.coverage_values.end()) return;
      target = *it;
    } else {
      if (limits.unit <= 0) return;
      target = value + limits.unit;
    }
    if (target > limits.stop_at * (1 + 1e-12)) return;

    // The neighbourhood: whole classes (alternate attempts), or servers over a window of blocks.
    const auto wanted = static_cast<std::size_t>(kFewestFreed + static_cast<int>(uniform_index(rng, kMostFreed - kFewestFreed + 1)));
    freed.clear();
    if (attempts % 2 == 0) {
      for (std::size_t c = 0; c < class_order.size(); ++c) class_order[c] = c;
      shuffle(std::span<std::size_t>(class_order), rng);
      for (std::size_t c : class_order) {
        if (freed.size() >= wanted) break;
        for (std::size_t m = 0; m < starts[c].size(); ++m) freed.push_back({c, m});
      }
    } else {
      const int first = static_cast<int>(uniform_index(rng, L));
      const int end = first + 1 + static_cast<int>(uniform_index(rng, kWidestWindow));
      for (const Member& s : swarm.all) {
        const int start = starts[s.cls][s.index];
        if (start < end && start + classes[s.cls].num_blocks > first) freed.push_back(s);
      }
      shuffle(std::span<Member>(freed), rng);
      if (freed.size() > wanted) freed.resize(wanted);
    }
    ++attempts;
    ++tally.attempts;

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
    const long work = std::min(limits.attempt_work, limits.max_work - tally.work.load());
    if (work <= 0) return;
    SearchLimits search{.deadline = attempt_deadline, .wide_deadline = attempt_deadline, .max_nodes = work,
                        .wide_max_nodes = work, .restart_work = 0, .threads = 1};
    const SearchResult r =
        reach_target(swarm.total_blocks, free_classes, target, swarm.coverage_values, search, fixed);
    tally.work += r.work;
    if (r.outcome != SearchOutcome::reached) continue;
    std::vector<std::vector<int>> candidate = starts;
    std::size_t at = 0;  // freed is sorted by class: free class f's members follow f - 1's
    for (std::size_t f = 0; f < free_classes.size(); ++f) {
      const std::size_t c = freed[at].cls;
      for (std::size_t i = 0; i < free_members[f].size(); ++i) candidate[c][free_members[f][i]] = r.starts[f][i];
      at += free_members[f].size();
    }
    // The exact sum decides (the search's sums may round); another worker may have gone higher.
    const double v = bottleneck(swarm, candidate, coverage);
    if (v > value && best.offer(std::move(candidate), v)) ++tally.improvements;
  }
}

}  // namespace

bool SharedPlacement::offer(std::vector<std::vector<int>>&& starts, double value) {
  const std::scoped_lock lock(mutex_);
  if (!(value > value_)) return false;
  starts_ = std::move(starts);
  value_ = value;
  ++version_;
  return true;
}

void SharedPlacement::adopt(long& version, std::vector<std::vector<int>>& starts, double& value) const {
  if (version_.load() == version) return;
  const std::scoped_lock lock(mutex_);
  starts = starts_;
  value = value_;
  version = version_.load();
}

std::vector<std::vector<int>> SharedPlacement::take(double& value) && {
  value = value_;
  return std::move(starts_);
}

NeighbourhoodResult improve_by_neighbourhoods(int total_blocks, std::span<const SearchClass> classes,
                                              std::span<const double> coverage_values,
                                              std::vector<std::vector<int>>& starts, const NeighbourhoodLimits& limits) {
  NeighbourhoodResult result;
  if (total_blocks < 1 || classes.empty()) return result;
  Swarm swarm{total_blocks, classes, coverage_values, {}, limits};
  for (std::size_t c = 0; c < classes.size(); ++c) {
    for (std::size_t m = 0; m < starts[c].size(); ++m) swarm.all.push_back({c, m});
  }
  std::vector<double> coverage(static_cast<std::size_t>(total_blocks));
  const double from = bottleneck(swarm, starts, coverage);
  SharedPlacement best(starts, from);
  Tally tally;

  const int threads = std::max(1, limits.threads);
  if (threads == 1) {
    run_worker(swarm, best, tally, limits.seed);
  } else {
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(threads));
    {
      std::vector<std::jthread> workers;
      for (int w = 0; w < threads; ++w) {
        // Worker 0 draws what a single worker would; the others their own streams.
        const unsigned long long seed = w == 0 ? limits.seed : derive_seed(limits.seed, "worker " + std::to_string(w));
        workers.emplace_back([&, w, seed] {
          try {
            run_worker(swarm, best, tally, seed);
          } catch (...) {
            errors[static_cast<std::size_t>(w)] = std::current_exception();
            tally.failed = true;
          }
        });
      }
    }
    for (const auto& e : errors) {
      if (e) std::rethrow_exception(e);
    }
  }
  starts = std::move(best).take(result.value);
  result.attempts = tally.attempts.load();
  result.improvements = tally.improvements.load();
  result.work = tally.work.load();
  return result;
}

}  // namespace swarm::detail
