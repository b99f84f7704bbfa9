#include "swarm/placement/placement.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "placement_milp.hpp"
#include "placement_neighbourhood.hpp"
#include "placement_projection.hpp"
#include "placement_search.hpp"
#include "placement_tabu.hpp"
#include "placement_targets.hpp"
#include "placement_values.hpp"
#include "swarm/util/random.hpp"
#include "swarm/balance/rules.hpp"
#include "swarm/util/clock.hpp"

namespace swarm {
namespace {

using detail::Candidate;
using detail::classify;
using detail::kUnbounded;
using detail::server_starts;
using detail::ServerClass;
using detail::solve_milp;

std::vector<double> coverage(int total_blocks, std::span<const PlacementServer> servers,
                             std::span<const int> starts) {
  std::vector<double> t(static_cast<std::size_t>(total_blocks), 0.0);
  for (std::size_t i = 0; i < servers.size(); ++i) {
    for (int b = starts[i]; b < starts[i] + servers[i].num_blocks; ++b) {
      t[static_cast<std::size_t>(b)] += servers[i].throughput;
    }
  }
  return t;
}

bool valid_starts(int total_blocks, std::span<const PlacementServer> servers,
                  std::span<const int> starts) {
  if (starts.size() != servers.size()) return false;
  for (std::size_t i = 0; i < servers.size(); ++i) {
    if (starts[i] < 0 || starts[i] + servers[i].num_blocks > total_blocks) return false;
  }
  return true;
}

// Servers in decreasing order of the coverage they bring (t * k), then id: the order in which
// greedy placement and the polishing passes visit them.
std::vector<std::size_t> by_weight(std::span<const PlacementServer> servers) {
  std::vector<std::size_t> order(servers.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return servers[a].throughput * servers[a].num_blocks > servers[b].throughput * servers[b].num_blocks;
  });
  return order;
}

// Best-response passes: each server leaves (biased to stay, as in Petals) and takes the best
// start for the others, until a pass moves nobody (at most 64 passes).
void polish(int total_blocks, std::span<const PlacementServer> servers, std::vector<int>& starts) {
  std::vector<double> t = coverage(total_blocks, servers, starts);
  const std::vector<std::size_t> order = by_weight(servers);
  for (int pass = 0; pass < 64; ++pass) {
    bool moved = false;
    for (std::size_t i : order) {
      const auto& s = servers[i];
      for (int b = starts[i]; b < starts[i] + s.num_blocks; ++b) t[b] -= s.throughput * (1 + kEps);
      const int chosen = best_start(t, s.num_blocks);
      for (int b = starts[i]; b < starts[i] + s.num_blocks; ++b) t[b] += s.throughput * kEps;
      if (chosen != starts[i]) {
        starts[i] = chosen;
        moved = true;
      }
      for (int b = starts[i]; b < starts[i] + s.num_blocks; ++b) t[b] += s.throughput;
    }
    if (!moved) break;
  }
}

// Petals' placement from scratch: servers join one by one (heaviest first) with rule 1.
std::vector<int> greedy(int total_blocks, std::span<const PlacementServer> servers) {
  std::vector<int> starts(servers.size(), 0);
  std::vector<double> t(static_cast<std::size_t>(total_blocks), 0.0);
  for (std::size_t i : by_weight(servers)) {
    starts[i] = best_start(t, servers[i].num_blocks);
    for (int b = starts[i]; b < starts[i] + servers[i].num_blocks; ++b) t[b] += servers[i].throughput;
  }
  return starts;
}

// Can every block reach `target`? Sweep left to right; at the first short block start servers
// there (longest first, so each covers as far right as possible) until it reaches the target.
// Servers left over go where rule 1 puts them. Exact for one class, a heuristic otherwise.
bool sweep_reaches(int total_blocks, std::span<const PlacementServer> servers,
                   std::span<const std::size_t> priority, double target, std::vector<int>& starts) {
  std::vector<double> delta(static_cast<std::size_t>(total_blocks) + 1, 0.0);
  std::vector<char> used(servers.size(), 0);
  std::size_t next = 0;
  double level = 0.0;
  const double need = target * (1 - 1e-12);
  for (int b = 0; b < total_blocks; ++b) {
    level += delta[b];
    while (level < need) {
      if (next == priority.size()) return false;
      const std::size_t i = priority[next++];
      const int start = std::min(b, total_blocks - servers[i].num_blocks);
      starts[i] = start;
      used[i] = 1;
      level += servers[i].throughput;  // it covers b whether it starts at b or earlier
      delta[static_cast<std::size_t>(start + servers[i].num_blocks)] -= servers[i].throughput;
    }
  }
  std::vector<double> t = coverage(total_blocks, servers, starts);  // unused ones still at 0
  for (std::size_t i = 0; i < servers.size(); ++i) {
    if (used[i]) continue;
    for (int b = 0; b < servers[i].num_blocks; ++b) t[b] -= servers[i].throughput;
    starts[i] = best_start(t, servers[i].num_blocks);
    for (int b = starts[i]; b < starts[i] + servers[i].num_blocks; ++b) t[b] += servers[i].throughput;
  }
  return true;
}

std::vector<int> sweep(int total_blocks, std::span<const PlacementServer> servers,
                       std::span<const std::size_t> priority, double upper) {
  std::vector<int> best(servers.size(), 0);
  std::vector<int> trial(servers.size(), 0);
  double lo = 0.0;
  double hi = upper;
  for (int iter = 0; iter < 60 && hi - lo > 1e-9 * hi; ++iter) {
    const double mid = 0.5 * (lo + hi);
    std::fill(trial.begin(), trial.end(), 0);
    if (sweep_reaches(total_blocks, servers, priority, mid, trial)) {
      lo = mid;
      best = trial;
    } else {
      hi = mid;
    }
  }
  return best;
}

// The orchestration's tuned constants: docs/placement.md, "Tuned constants", gives the
// measurement behind each.
constexpr double kRootFirstLimit = 1.0;    // seconds: from this limit on, CBC's roots go first on dense sums
constexpr long kDenseValues = 64;          // more coverage values open than this: dense sums
constexpr double kWideShareDense = 0.05;   // of the time limit: all wide searches together, dense sums
constexpr double kWideShare = 0.2;         // of the time limit: all wide searches together, otherwise
constexpr double kRootShare = 0.05;        // of the time limit: the least a root gets, and what roots count in work
constexpr double kMilpShare = 0.5;         // of the time left after the search: CBC's tree and heuristics
constexpr double kMilpShareRooted = 0.25;  // the same where its roots went first (root only)
constexpr double kLeastMilpSeconds = 0.01;         // less left: CBC is not started
constexpr std::size_t kProjections = 2;            // projections asked before the swarm itself
constexpr double kProjectionShare = 0.25;          // of a probe's time, for each projection
constexpr double kTopSlices = 16;                  // a top probe's first slice: a search phase's time / kTopSlices
constexpr long kFirstRoundStale = 300;             // tabu moves without a better placement that end the first round
constexpr long kRestartStale = 100;                // the same, for rounds that restart
constexpr int kFinalRounds = 3;                    // large-neighbourhood and tabu rounds that end a placement, of each
constexpr std::size_t kNeighbourhoodServers = 80;  // more servers: the last phase runs tabu rounds alone
constexpr double kNeighbourhoodSlice = 0.5;        // seconds: shorter slices, tabu rounds alone

// The time limit, measured by the clock, or (reproducible) by the work done: search nodes and
// tabu moves converted to seconds at rates measured on the development machine (2 cores, 2026),
// so that the same swarm gets the same placement on every run and every machine.
class Budget {
 public:
  // Search nodes: 2.5e5 a second where the search decides (each node checks dominance and
  // builds a lookahead; the cheap leaves the lookahead removes no longer count).
  static constexpr double kSearchNodesPerSecond = 2.5e5;
  static constexpr double kTabuEvaluationsPerSecond = 4.0e8;  // blocks summed, relocations weighed

  Budget(Clock::time_point began, double limit_s, bool reproducible)
      : began_(began), limit_s_(limit_s), reproducible_(reproducible) {}
  [[nodiscard]] bool reproducible() const { return reproducible_; }
  [[nodiscard]] double elapsed() const {
    return reproducible_ ? spent_s_ : std::chrono::duration<double>(Clock::now() - began_).count();
  }
  [[nodiscard]] double left() const { return limit_s_ - elapsed(); }
  /// The clock's deadline `seconds` from now; none when the work is what counts.
  [[nodiscard]] Clock::time_point deadline(double seconds) const {
    if (reproducible_) return Clock::time_point::max();
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(std::max(0.0, seconds)));
  }
  /// A work cap worth `seconds` at `rate` units a second; none when the clock is what counts.
  [[nodiscard]] long cap(double seconds, double rate) const {
    if (!reproducible_) return std::numeric_limits<long>::max();
    return static_cast<long>(std::clamp(seconds * rate, 0.0, 0.5 * static_cast<double>(std::numeric_limits<long>::max())));
  }
  void spend(double work, double rate) { spent_s_ += work / rate; }

 private:
  Clock::time_point began_;
  double limit_s_;
  bool reproducible_;
  double spent_s_ = 0.0;
};

}  // namespace

double placement_value(int total_blocks, std::span<const PlacementServer> servers,
                       std::span<const int> starts) {
  return swarm_throughput(coverage(total_blocks, servers, starts));
}

double spacing_bound(int total_blocks, std::span<const PlacementServer> servers) {
  if (servers.empty()) return 0.0;
  double bound = 0.0;
  for (const auto& s : servers) bound += s.throughput * s.num_blocks;
  bound /= total_blocks;
  for (int gap = 2; gap < total_blocks; ++gap) {
    const int points = (total_blocks - 1) / gap + 1;  // blocks 0, gap, 2*gap, ...
    double sum = 0.0;
    for (const auto& s : servers) sum += s.throughput * std::min(points, (s.num_blocks - 1) / gap + 1);
    bound = std::min(bound, sum / points);
  }
  return bound;
}

namespace {

bool gap_open(double value, double bound, const PlacementOptions& options) {
  return bound - value > options.relative_gap * bound;
}

// Keeps `starts` (polished by best-response passes) if it beats `best`.
void keep_if_better(int total_blocks, std::span<const PlacementServer> servers, Candidate& best,
                    std::vector<int> starts, const char* method) {
  if (!valid_starts(total_blocks, servers, starts)) return;
  polish(total_blocks, servers, starts);
  const double v = placement_value(total_blocks, servers, starts);
  if (v > best.value) best = {std::move(starts), v, method};
}

// Petals' greedy, the two target sweeps and the caller's hints, each polished.
Candidate heuristics(int total_blocks, std::span<const PlacementServer> servers, double bound,
                     const std::vector<std::vector<int>>& hints) {
  Candidate best;
  keep_if_better(total_blocks, servers, best, greedy(total_blocks, servers), "greedy");
  std::vector<std::size_t> longest_first(servers.size());
  std::iota(longest_first.begin(), longest_first.end(), std::size_t{0});
  std::stable_sort(longest_first.begin(), longest_first.end(), [&](std::size_t a, std::size_t b) {
    if (servers[a].num_blocks != servers[b].num_blocks) return servers[a].num_blocks > servers[b].num_blocks;
    return servers[a].throughput > servers[b].throughput;
  });
  keep_if_better(total_blocks, servers, best, sweep(total_blocks, servers, longest_first, bound), "sweep");
  keep_if_better(total_blocks, servers, best, sweep(total_blocks, servers, by_weight(servers), bound), "sweep");
  for (const auto& hint : hints) keep_if_better(total_blocks, servers, best, hint, "hint");
  return best;
}

// The exact search on a projection (placement_projection.hpp), with what it has decided so far.
struct ProjectedSearch {
  detail::Projection swarm;
  detail::RelaxationCache relaxations;
  double reached = -1.0;
  double gave_up = -1.0;
  double gave_up_seconds = 0.0;
};

// What the phases share: the swarm, the best placement and the bound they improve, the budget
// they spend, and what one phase leaves the next.
struct PlacementRun {
  PlacementRun(int total_blocks, std::span<const PlacementServer> servers, const std::vector<ServerClass>& classes,
               const PlacementOptions& options, Clock::time_point began, Candidate best, double bound);
  PlacementRun(const PlacementRun&) = delete;
  PlacementRun& operator=(const PlacementRun&) = delete;

  [[nodiscard]] bool open() const { return gap_open(best.value, bound, options); }
  [[nodiscard]] double limit() const { return options.time_limit_s; }
  [[nodiscard]] double left(double end) const { return end - budget.elapsed(); }
  [[nodiscard]] std::span<const double> value_span() const {
    return values ? std::span<const double>(*values) : std::span<const double>{};
  }
  [[nodiscard]] long values_between(double lo, double hi) const {
    return std::upper_bound(values->begin(), values->end(), hi * (1 + 1e-12)) -
           std::upper_bound(values->begin(), values->end(), lo * (1 + 1e-12));
  }
  // The optimum is a coverage value: a bound rounds down to one.
  void round_bound() {
    if (!values) return;
    const auto it = std::upper_bound(values->begin(), values->end(), bound * (1 + 1e-12));
    if (it != values->begin()) bound = std::min(bound, *std::prev(it) * (1 + 1e-12));
  }
  void consider_class_starts(const std::vector<std::vector<int>>& class_starts, const char* method) {
    keep_if_better(total_blocks, servers, best, server_starts(servers.size(), classes, class_starts), method);
  }
  // Starts (one per server) class by class, as the search and the rounds take them.
  [[nodiscard]] std::vector<std::vector<int>> class_starts(const std::vector<int>& starts) const {
    std::vector<std::vector<int>> out(classes.size());
    for (std::size_t c = 0; c < classes.size(); ++c) {
      for (std::size_t m : classes[c].members) out[c].push_back(starts[m]);
    }
    return out;
  }

  const int total_blocks;
  const std::span<const PlacementServer> servers;
  const std::vector<ServerClass>& classes;
  const PlacementOptions& options;
  std::vector<detail::SearchClass> search_classes;
  std::optional<std::vector<double>> values;  // the coverage values, when few enough to list
  Candidate best;
  double bound;  // certified
  Budget budget;
  int threads;        // for the search and the rounds: one, whose work is counted, in reproducible runs
  double unit = 0.0;  // continuous targets' step
  // The exact search's state from one target to the next.
  detail::RelaxationCache relaxations;
  std::vector<std::unique_ptr<ProjectedSearch>> projections;
  double wide_left = 0.0;  // what wide searches may still spend
  // What the phases decide.
  Candidate first_round;    // the first tabu round's placement
  bool dense = false;       // the search is unlikely to refute near the optimum
  bool root_first = false;  // CBC's roots come before the main search
  bool rooted = false;      // and they ran
};

PlacementRun::PlacementRun(int total_blocks_, std::span<const PlacementServer> servers_,
                           const std::vector<ServerClass>& classes_, const PlacementOptions& options_,
                           Clock::time_point began, Candidate best_, double bound_)
    : total_blocks(total_blocks_),
      servers(servers_),
      classes(classes_),
      options(options_),
      best(std::move(best_)),
      bound(bound_),
      budget(began, options_.time_limit_s, options_.reproducible),
      threads(budget.reproducible() ? 1
              : options.threads > 0 ? options.threads
                                    : detail::usable_cpus()) {
  for (const auto& c : classes) {
    search_classes.push_back({c.throughput, c.num_blocks, static_cast<int>(c.members.size())});
  }
  values = detail::coverage_values(search_classes, bound);
  round_bound();
  unit = 0.5 * options.relative_gap * bound;
  for (auto& p : detail::tighter_projections(total_blocks, search_classes, kProjections)) {
    projections.push_back(std::make_unique<ProjectedSearch>());
    projections.back()->swarm = std::move(p);
  }
}

// Tabu search (placement_tabu.hpp) finds good placements where the exact search cannot decide
// (many distinct throughputs): one round until `stale` moves find nothing better, or (restart)
// rounds from perturbed copies until `seconds` are spent. With several workers, rounds that
// restart run one chain a worker, each from `from` on its own seed (worker 0's is `seed`), and
// the best of them counts.
void tabu_rounds(PlacementRun& run, const std::vector<int>& from, double seconds, bool restart, long stale,
                 unsigned long long seed) {
  if (!run.open()) return;
  const int chains = restart ? run.threads : 1;
  std::vector<std::vector<std::vector<int>>> class_starts(static_cast<std::size_t>(chains), run.class_starts(from));
  const detail::TabuLimits limits{.deadline = run.budget.deadline(seconds),
                                  .stale_iterations = stale,
                                  .restart = restart,
                                  .stop_at = run.bound,
                                  .unit = run.unit,
                                  .seed = seed,
                                  .max_work = run.budget.cap(seconds, Budget::kTabuEvaluationsPerSecond)};
  if (chains == 1) {
    const detail::TabuResult r =
        detail::improve_by_tabu(run.total_blocks, run.search_classes, run.value_span(), class_starts[0], limits);
    run.budget.spend(static_cast<double>(r.work), Budget::kTabuEvaluationsPerSecond);
  } else {  // by the clock: what the chains spend is not counted
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(chains));
    {
      std::vector<std::jthread> workers;
      for (int w = 0; w < chains; ++w) {
        workers.emplace_back([&, w] {
          try {
            auto own = limits;
            if (w > 0) own.seed = derive_seed(seed, std::string("chain ").append(std::to_string(w)));
            (void)detail::improve_by_tabu(run.total_blocks, run.search_classes, run.value_span(),
                                          class_starts[static_cast<std::size_t>(w)], own);
          } catch (...) {
            errors[static_cast<std::size_t>(w)] = std::current_exception();
          }
        });
      }
    }
    for (const auto& e : errors) {
      if (e) std::rethrow_exception(e);
    }
  }
  for (const auto& chain : class_starts) run.consider_class_starts(chain, "tabu");
}

// Large neighbourhoods (placement_neighbourhood.hpp): the exact search re-places up to 40
// servers around the others, which moves many servers at once where single moves stall.
void neighbourhood_rounds(PlacementRun& run, double seconds, unsigned long long seed) {
  if (!run.open()) return;
  std::vector<std::vector<int>> class_starts = run.class_starts(run.best.starts);
  const detail::NeighbourhoodResult r =
      detail::improve_by_neighbourhoods(run.total_blocks, run.search_classes, run.value_span(), class_starts,
                                        {.deadline = run.budget.deadline(seconds),
                                         .max_work = run.budget.cap(seconds, Budget::kSearchNodesPerSecond),
                                         .stop_at = run.bound,
                                         .unit = run.unit,
                                         .seed = seed,
                                         .threads = run.threads});
  run.budget.spend(static_cast<double>(r.work), Budget::kSearchNodesPerSecond);
  run.consider_class_starts(class_starts, "neighbourhood");
}

// One exact search of a target (placement_search.hpp). `reach`: the probe is after a placement
// (the bottom's, or the top's walk below a target that timed out), so the search restarts; the
// top's other probes and the projections are after refutations, which restarts do not speed up
// (docs/placement.md, "Tuned constants"). A search whose branching turns wide (many classes)
// rarely finishes: all of them together get `wide_left` (kWideShare, kWideShareDense).
detail::SearchResult search(PlacementRun& run, int blocks, std::span<const detail::SearchClass> swarm, double target,
                            double seconds, detail::RelaxationCache& cache, bool reach) {
  const double wide = std::clamp(run.wide_left, 0.0, seconds);
  const double began_search = run.budget.elapsed();
  // A node's work (its dominance check, its lookahead) grows with the blocks ahead
  // (docs/placement.md, "Reproducible mode").
  const double nodes_per_second = Budget::kSearchNodesPerSecond * run.total_blocks / blocks;
  const detail::SearchResult r = detail::reach_target(blocks, swarm, target, run.value_span(),
                                                      {.deadline = run.budget.deadline(seconds),
                                                       .wide_deadline = run.budget.deadline(wide),
                                                       .max_nodes = run.budget.cap(seconds, nodes_per_second),
                                                       .wide_max_nodes = run.budget.cap(wide, nodes_per_second),
                                                       .restart_work = reach ? detail::kRestartWork : 0,
                                                       .threads = run.threads,
                                                       .relaxations = &cache});
  run.budget.spend(static_cast<double>(r.work), nodes_per_second);
  if (r.wide) run.wide_left -= run.budget.elapsed() - began_search;
  return r;
}

// A target that no placement on a projection's points reaches is refuted
// (placement_projection.hpp); those points' search is far smaller, so it goes first, with
// kProjectionShare of the probe's time each. A projection is not asked below a target it
// reached (it reaches those too), nor below one it gave up on (refuting lower is no easier)
// unless offered twice the time.
bool refuted_by_projection(PlacementRun& run, double target, double seconds) {
  for (auto& p : run.projections) {
    if (target <= p->reached) continue;
    if (target <= p->gave_up && seconds < 2 * p->gave_up_seconds) continue;
    const detail::SearchResult r =
        search(run, p->swarm.total_blocks, p->swarm.classes, target, seconds, p->relaxations, false);
    if (r.outcome == detail::SearchOutcome::unreachable) return true;
    if (r.outcome == detail::SearchOutcome::reached) {
      p->reached = target;
    } else {
      p->gave_up = target;
      p->gave_up_seconds = seconds;
    }
  }
  return false;
}

// Targets between the best placement and the bound (placement_targets.cpp) until `end`:
// galloping up from the best, each reached (a better placement) or refuted (a lower bound), and
// down from the bound, where refutations come cheap.
void run_schedule(PlacementRun& run, double end) {
  detail::TargetSchedule schedule(run.value_span(), run.unit, run.best.value, run.bound, run.left(end) / kTopSlices);
  while (run.open() && run.budget.elapsed() < end) {
    const auto probe = schedule.next(run.left(end));
    if (!probe) break;
    const double began_probe = run.budget.elapsed();
    if (refuted_by_projection(run, probe->target, kProjectionShare * probe->seconds)) {
      schedule.unreachable();
      run.bound = schedule.bound();
      continue;
    }
    const double seconds = probe->seconds - (run.budget.elapsed() - began_probe);
    const bool reach = !probe->top || probe->walk;
    const detail::SearchResult r =
        search(run, run.total_blocks, run.search_classes, probe->target, seconds, run.relaxations, reach);
    if (r.outcome == detail::SearchOutcome::out_of_time) {
      schedule.timed_out(r.wide || run.dense);  // dense sums: as rarely decided as wide branching
    } else if (r.outcome == detail::SearchOutcome::unreachable) {
      schedule.unreachable();
    } else {
      std::vector<int> starts = server_starts(run.servers.size(), run.classes, r.starts);
      const double v = placement_value(run.total_blocks, run.servers, starts);
      if (v <= run.best.value) break;  // rounding: the search's sums said yes, the exact sum says no
      run.best = {std::move(starts), v, "search"};
      schedule.reached(v);
    }
    run.bound = schedule.bound();
  }
  run.bound = schedule.bound();  // it may have closed the gap without a probe
}

// The phases, each ending by `end` (seconds into the time limit, or of work when reproducible).

// One tabu round until it stalls, so that the search starts from a better placement at little
// cost; the last phase may restart from it.
void first_tabu_round(PlacementRun& run, double end) {
  tabu_rounds(run, run.best.starts, run.left(end), /*restart=*/false, kFirstRoundStale, 1);
  run.first_round = run.best;
}

// How the search will fare: where the swarm's sums lie dense between the best placement and the
// bound (many distinct throughputs: the appendix-E swarms) it refutes nothing near the optimum,
// and CBC's roots go first. Wide searches get kWideShareDense of the limit there, kWideShare
// where they do decide targets (few values between: five GPU classes, sums 100 apart).
void weigh_sums(PlacementRun& run, double /*end*/) {
  run.dense = !run.values || run.values_between(run.best.value, run.bound) > kDenseValues;
  run.root_first = run.dense && run.limit() >= kRootFirstLimit;
  run.wide_left = (run.dense ? kWideShareDense : kWideShare) * run.limit();
}

// Dense sums: a short search first, which proves small dense swarms in milliseconds.
void short_search(PlacementRun& run, double end) {
  if (run.root_first) run_schedule(run, end);
}

// Dense sums: the integer programme's root (its relaxation with cuts) is the bound, so it comes
// before the main search, whose later probes then start below it. Cold, since a start that
// depends on the clock (the tabu round's) would make the bound differ from run to run; in two
// formulations, the exact one and its relaxation where servers may stay out and tau is unbounded,
// whose cuts differ (neither cuts best), and the lower bound stands.
void milp_roots(PlacementRun& run, double end) {
  if (!run.root_first) return;
  for (const bool relaxed : {false, true}) {
    const double seconds = run.budget.reproducible() ? 1e9 : std::max(run.left(end), kRootShare * run.limit());
    run.bound = std::min(run.bound, solve_milp(run.total_blocks, run.servers, run.classes, seconds, 0,
                                               run.options.relative_gap, relaxed ? kUnbounded : run.bound,
                                               /*warm=*/false, run.best, relaxed));
  }
  run.round_bound();
  if (run.budget.reproducible()) run.budget.spend(kRootShare * run.limit(), 1.0);
  run.rooted = true;
}

// Exact search of targets between the best placement and the bound.
void exact_search(PlacementRun& run, double end) { run_schedule(run, end); }

// The integer programme, warm from the best placement, for its bound and the placements it
// finds: kMilpShare of what is left (CBC checks its clock between nodes, not during
// preprocessing or the root cuts, so it overruns). Where its roots went first, its tree did not
// lower their bound, but a root started warm cuts differently: the root again, warm. A
// reproducible run asks for the root only, since CBC's work is not predictable from its nodes.
void milp(PlacementRun& run, double end) {
  const double left = run.left(end);
  if (left <= kLeastMilpSeconds) return;
  const bool reproducible = run.budget.reproducible();
  const double seconds = reproducible ? 1e9 : (run.rooted ? kMilpShareRooted : kMilpShare) * left;
  const int nodes = reproducible || run.rooted ? 0 : -1;
  run.bound = std::min(run.bound, solve_milp(run.total_blocks, run.servers, run.classes, seconds, nodes,
                                             run.options.relative_gap, run.bound, /*warm=*/true, run.best));
  run.round_bound();
  if (reproducible) run.budget.spend(run.rooted ? kRootShare * run.limit() : kMilpShare * left, 1.0);
}

// Large-neighbourhood and tabu rounds alternate (each from the best placement), kFinalRounds of
// each in equal slices: each kind leaves the other a better start. Where the search or CBC found
// the best placement, a tabu round first restarts from the first round's placement, whose basin
// can be better for single moves than the search's (every server pushed right). Tabu rounds
// alone above kNeighbourhoodServers servers or below kNeighbourhoodSlice a slice.
void final_rounds(PlacementRun& run, double end) {
  const bool with_neighbourhoods =
      run.servers.size() <= kNeighbourhoodServers && run.left(end) >= 2 * kFinalRounds * kNeighbourhoodSlice;
  const int rounds = with_neighbourhoods ? kFinalRounds : 1;
  const double slice = run.left(end) / (2 * rounds);
  if (run.first_round.value < run.best.value) {
    tabu_rounds(run, run.first_round.starts, slice, /*restart=*/true, kRestartStale, 3);
  }
  for (int round = 0; round < rounds && run.open(); ++round) {
    if (with_neighbourhoods) neighbourhood_rounds(run, slice, 5 + round);
    const double seconds = round + 1 == rounds ? run.left(end) : slice;
    tabu_rounds(run, run.best.starts, seconds, /*restart=*/true, kRestartStale, 2 + 10 * round);
  }
}

struct Phase {
  const char* name;
  double share;  // of the time limit: the phase ends by share * time_limit_s (0: it spends nothing)
  void (*run)(PlacementRun&, double end);
};

// Run in order while the gap is open (docs/placement.md, "Tuned constants", for the shares).
constexpr Phase kPhases[] = {
    {"first tabu round", 0.05, first_tabu_round},
    {"weigh sums", 0.0, weigh_sums},
    {"short search", 0.07, short_search},          // dense sums only
    {"integer programme roots", 0.2, milp_roots},  // dense sums only
    {"exact search", 0.85, exact_search},
    {"integer programme", 1.0, milp},  // kMilpShare of what is left
    {"neighbourhood and tabu rounds", 1.0, final_rounds},
};

}  // namespace

Placement optimal_placement(int total_blocks, std::span<const PlacementServer> servers,
                            const PlacementOptions& options) {
  const auto began = Clock::now();
  if (total_blocks < 1) throw std::invalid_argument("total_blocks must be >= 1");
  for (std::size_t i = 0; i < servers.size(); ++i) {
    if (servers[i].num_blocks < 1 || servers[i].num_blocks > total_blocks) {
      throw std::invalid_argument("server " + std::to_string(i) + ": num_blocks " +
                                  std::to_string(servers[i].num_blocks) + " is outside 1.." +
                                  std::to_string(total_blocks));
    }
    if (!std::isfinite(servers[i].throughput) || servers[i].throughput < 0) {
      throw std::invalid_argument("server " + std::to_string(i) + ": throughput must be finite and >= 0");
    }
  }
  const auto finish = [&](Candidate best, double bound) {
    Placement p;
    p.value = best.value;
    p.bound = std::max(bound, best.value);
    p.optimal = p.bound - p.value <= options.relative_gap * p.bound;
    p.starts = std::move(best.starts);
    p.method = std::move(best.method);
    p.seconds = std::chrono::duration<double>(Clock::now() - began).count();
    return p;
  };
  if (servers.empty()) return finish({{}, 0.0, "closed_form"}, 0.0);

  const std::vector<ServerClass> classes = classify(servers);
  const double bound = spacing_bound(total_blocks, servers);

  // One class: a c-fold cover of a path by intervals splits into c single covers, and each
  // needs ceil(L/k) servers, so c = floor(n / ceil(L/k)) layers stacked end to end is optimal.
  if (classes.size() == 1) {
    const int k = classes[0].num_blocks;
    const std::size_t per_layer = static_cast<std::size_t>((total_blocks + k - 1) / k);
    std::vector<int> starts(servers.size());
    for (std::size_t i = 0; i < servers.size(); ++i) {
      const int slot = static_cast<int>(i % per_layer);
      starts[i] = std::min(slot * k, total_blocks - k);
    }
    const double v = placement_value(total_blocks, servers, starts);
    const double layers = std::floor(static_cast<double>(servers.size()) / per_layer);
    return finish({std::move(starts), v, "closed_form"}, layers * classes[0].throughput);
  }

  Candidate best = heuristics(total_blocks, servers, bound, options.hints);
  if (!gap_open(best.value, bound, options) || !(options.time_limit_s > 0)) return finish(std::move(best), bound);
  PlacementRun run(total_blocks, servers, classes, options, began, std::move(best), bound);
  for (const Phase& phase : kPhases) {
    if (!run.open()) break;
    phase.run(run, phase.share * options.time_limit_s);
  }
  return finish(std::move(run.best), run.bound);
}

}  // namespace swarm
