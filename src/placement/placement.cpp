#include "swarm/placement/placement.hpp"

#include <Cbc_C_Interface.h>  // pkg-config cbc: -I.../include/coin

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

#include "placement_neighbourhood.hpp"
#include "placement_projection.hpp"
#include "placement_search.hpp"
#include "placement_tabu.hpp"
#include "placement_targets.hpp"
#include "placement_values.hpp"
#include "swarm/random.hpp"
#include "swarm/rules.hpp"

namespace swarm {
namespace {

using Clock = std::chrono::steady_clock;

// Identical servers are interchangeable: the programme counts how many of a class start where.
struct ServerClass {
  double throughput;
  int num_blocks;
  std::vector<std::size_t> members;
};

std::vector<ServerClass> classify(std::span<const PlacementServer> servers) {
  std::map<std::pair<double, int>, std::size_t> index;
  std::vector<ServerClass> classes;
  for (std::size_t i = 0; i < servers.size(); ++i) {
    const auto key = std::make_pair(servers[i].throughput, servers[i].num_blocks);
    auto [it, fresh] = index.emplace(key, classes.size());
    if (fresh) classes.push_back({key.first, key.second, {}});
    classes[it->second].members.push_back(i);
  }
  return classes;
}

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

struct Candidate {
  std::vector<int> starts;
  double value = -1.0;
  std::string method;
};

struct CbcDeleter {
  void operator()(Cbc_Model* m) const { Cbc_deleteModel(m); }
};

constexpr double kUnbounded = 1e30;  // CBC reads bounds from 1e30 up as none
constexpr double kRootFirstLimit = 1.0;  // seconds: see `root_first`
constexpr int kFinalRounds = 3;  // large-neighbourhood and tabu rounds that end a placement, of each
constexpr std::size_t kNeighbourhoodServers = 80;  // twice the most an attempt frees: see the last phase
constexpr double kNeighbourhoodSlice = 0.5;  // seconds, about six attempts' whole work: see the last phase

// The integer programme over classes: y[c][s] = number of class-c servers starting at s.
//   max tau  s.t.  sum_c t_c * sum_{s covers b} y[c][s] - tau >= 0   for every block b
//                  sum_s y[c][s] = n_c                                for every class c
// Returns the proven bound; improves `best` when CBC finds a better placement, and starts from it
// when `warm`. `may_leave_out`: sum_s y[c][s] <= n_c, a relaxation with the same optimum (a server
// more never lowers a block), whose cuts differ.
double solve_milp(int total_blocks, std::span<const PlacementServer> servers,
                  const std::vector<ServerClass>& classes, double time_limit_s, int max_nodes,
                  double relative_gap, double upper, bool warm, Candidate& best, bool may_leave_out = false) {
  const int nblocks = total_blocks;
  std::vector<int> first_col(classes.size());
  int ncols = 0;
  for (std::size_t c = 0; c < classes.size(); ++c) {
    first_col[c] = ncols;
    ncols += nblocks - classes[c].num_blocks + 1;
  }
  const int tau = ncols++;
  const int nrows = nblocks + static_cast<int>(classes.size());

  // Column-major (CSC) matrix.
  std::vector<CoinBigIndex> col_start{0};
  std::vector<int> row_index;
  std::vector<double> value;
  std::vector<double> col_lo(ncols, 0.0), col_hi(ncols), obj(ncols, 0.0);
  for (std::size_t c = 0; c < classes.size(); ++c) {
    const int k = classes[c].num_blocks;
    for (int s = 0; s + k <= nblocks; ++s) {
      for (int b = s; b < s + k; ++b) {
        row_index.push_back(b);
        value.push_back(classes[c].throughput);
      }
      row_index.push_back(nblocks + static_cast<int>(c));
      value.push_back(1.0);
      col_start.push_back(static_cast<CoinBigIndex>(row_index.size()));
      col_hi[first_col[c] + s] = static_cast<double>(classes[c].members.size());
    }
  }
  for (int b = 0; b < nblocks; ++b) {
    row_index.push_back(b);
    value.push_back(-1.0);
  }
  col_start.push_back(static_cast<CoinBigIndex>(row_index.size()));
  col_hi[tau] = upper;
  obj[tau] = -1.0;  // CBC minimises: minimise -tau

  std::vector<double> row_lo(nrows, 0.0), row_hi(nrows, std::numeric_limits<double>::max());
  for (std::size_t c = 0; c < classes.size(); ++c) {
    row_lo[nblocks + c] = may_leave_out ? 0.0 : static_cast<double>(classes[c].members.size());
    row_hi[nblocks + c] = static_cast<double>(classes[c].members.size());
  }

  std::unique_ptr<Cbc_Model, CbcDeleter> model(Cbc_newModel());
  Cbc_loadProblem(model.get(), ncols, nrows, col_start.data(), row_index.data(), value.data(),
                  col_lo.data(), col_hi.data(), obj.data(), row_lo.data(), row_hi.data());
  for (int j = 0; j < tau; ++j) Cbc_setInteger(model.get(), j);
  Cbc_setLogLevel(model.get(), 0);
  Cbc_setMaximumSeconds(model.get(), time_limit_s);
  if (max_nodes >= 0) Cbc_setMaximumNodes(model.get(), max_nodes);
  Cbc_setAllowableFractionGap(model.get(), relative_gap);

  // Warm start with the best heuristic placement.
  if (warm) {
    std::vector<int> start_idx(ncols);
    std::vector<double> start_val(ncols, 0.0);
    std::iota(start_idx.begin(), start_idx.end(), 0);
    for (std::size_t c = 0; c < classes.size(); ++c) {
      for (std::size_t i : classes[c].members) start_val[first_col[c] + best.starts[i]] += 1.0;
    }
    start_val[tau] = best.value;
    Cbc_setMIPStartI(model.get(), ncols, start_idx.data(), start_val.data());
  }

  Cbc_solve(model.get());

  // A proven optimum is its own bound (CBC leaves the best-possible value stale when the
  // cutoff from the warm start makes the relaxation infeasible).
  double bound = Cbc_isProvenOptimal(model.get()) ? -Cbc_getObjValue(model.get())
                                                  : -Cbc_getBestPossibleObjValue(model.get());
  if (!std::isfinite(bound) || bound > upper) bound = upper;
  const double* x = Cbc_getColSolution(model.get());
  if (x != nullptr && Cbc_getObjValue(model.get()) < 1e300) {
    std::vector<int> starts(servers.size(), -1);
    bool complete = true;
    for (std::size_t c = 0; c < classes.size() && complete; ++c) {
      std::size_t m = 0;
      const int k = classes[c].num_blocks;
      for (int s = 0; s + k <= nblocks; ++s) {
        const long count = std::lround(x[first_col[c] + s]);
        for (long r = 0; r < count && m < classes[c].members.size(); ++r) {
          starts[classes[c].members[m++]] = s;
        }
      }
      complete = m == classes[c].members.size();
    }
    if (complete) {
      const double v = placement_value(total_blocks, servers, starts);
      if (v > best.value) best = {std::move(starts), v, "milp"};
    }
  }
  return bound;
}

// Per-class starts (as the search and the tabu search give them) back in the servers' order.
std::vector<int> server_starts(std::size_t num_servers, const std::vector<ServerClass>& classes,
                               const std::vector<std::vector<int>>& class_starts) {
  std::vector<int> starts(num_servers);
  for (std::size_t c = 0; c < classes.size(); ++c) {
    for (std::size_t m = 0; m < classes[c].members.size(); ++m) starts[classes[c].members[m]] = class_starts[c][m];
  }
  return starts;
}

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
  double bound = spacing_bound(total_blocks, servers);

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

  Candidate best;
  const auto consider = [&](std::vector<int> starts, const char* method) {
    if (!valid_starts(total_blocks, servers, starts)) return;
    polish(total_blocks, servers, starts);
    const double v = placement_value(total_blocks, servers, starts);
    if (v > best.value) best = {std::move(starts), v, method};
  };
  consider(greedy(total_blocks, servers), "greedy");
  std::vector<std::size_t> longest_first(servers.size());
  std::iota(longest_first.begin(), longest_first.end(), std::size_t{0});
  std::stable_sort(longest_first.begin(), longest_first.end(), [&](std::size_t a, std::size_t b) {
    if (servers[a].num_blocks != servers[b].num_blocks) return servers[a].num_blocks > servers[b].num_blocks;
    return servers[a].throughput > servers[b].throughput;
  });
  consider(sweep(total_blocks, servers, longest_first, bound), "sweep");
  consider(sweep(total_blocks, servers, by_weight(servers), bound), "sweep");
  for (const auto& hint : options.hints) consider(hint, "hint");

  const auto open = [&] { return bound - best.value > options.relative_gap * bound; };
  if (open() && options.time_limit_s > 0) {
    // Exact search first: targets between the best placement and the bound, each either reached
    // (a better placement) or proven unreachable (a lower bound), until they meet or time is up.
    Budget budget(began, options.time_limit_s, options.reproducible);
    const auto until = [&](double fraction) { return fraction * options.time_limit_s - budget.elapsed(); };
    std::vector<detail::SearchClass> search_classes;
    for (const auto& c : classes) {
      search_classes.push_back({c.throughput, c.num_blocks, static_cast<int>(c.members.size())});
    }
    const auto values = detail::coverage_values(search_classes, bound);
    const std::span<const double> value_span = values ? std::span<const double>(*values) : std::span<const double>{};
    // The optimum is a coverage value: a bound rounds down to one (the first bound here, CBC's
    // after it).
    const auto round_bound = [&] {
      if (!values) return;
      const auto it = std::upper_bound(values->begin(), values->end(), bound * (1 + 1e-12));
      if (it != values->begin()) bound = std::min(bound, *std::prev(it) * (1 + 1e-12));
    };
    round_bound();
    const double unit = 0.5 * options.relative_gap * bound;  // continuous targets' step
    const auto values_between = [&](double lo, double hi) {
      return std::upper_bound(values->begin(), values->end(), hi * (1 + 1e-12)) -
             std::upper_bound(values->begin(), values->end(), lo * (1 + 1e-12));
    };
    // Workers for the search, the neighbourhood and the tabu rounds: one, whose work is counted,
    // in reproducible runs.
    const int threads = budget.reproducible() ? 1
                        : options.threads > 0 ? options.threads
                                              : detail::usable_cpus();
    // Tabu search finds good placements where the exact search cannot decide (many distinct
    // throughputs). One round (until it stalls) comes first, so that the search starts from a
    // better placement at little cost; rounds from perturbed copies of the best placement end
    // the time limit, unless the search proved the optimum. With several workers, the rounds
    // that restart run one chain a worker, each from `from` on its own seed (worker 0's is
    // `seed`), and the best of them counts.
    const auto local_search = [&](const std::vector<int>& from, double seconds, bool restart, long stale,
                                  unsigned long long seed) {
      if (!open()) return;
      const int chains = restart ? threads : 1;
      std::vector<std::vector<int>> start(classes.size());
      for (std::size_t c = 0; c < classes.size(); ++c) {
        for (std::size_t m : classes[c].members) start[c].push_back(from[m]);
      }
      std::vector<std::vector<std::vector<int>>> class_starts(static_cast<std::size_t>(chains), start);
      const detail::TabuLimits limits{.deadline = budget.deadline(seconds), .stale_iterations = stale,
                                      .restart = restart, .stop_at = bound, .unit = unit, .seed = seed,
                                      .max_work = budget.cap(seconds, Budget::kTabuEvaluationsPerSecond)};
      if (chains == 1) {
        const detail::TabuResult r = detail::improve_by_tabu(total_blocks, search_classes, value_span, class_starts[0], limits);
        budget.spend(static_cast<double>(r.work), Budget::kTabuEvaluationsPerSecond);
      } else {  // by the clock: what the chains spend is not counted
        std::vector<std::exception_ptr> errors(static_cast<std::size_t>(chains));
        {
          std::vector<std::jthread> workers;
          for (int w = 0; w < chains; ++w) {
            workers.emplace_back([&, w] {
              try {
                auto own = limits;
                if (w > 0) own.seed = derive_seed(seed, "chain " + std::to_string(w));
                (void)detail::improve_by_tabu(total_blocks, search_classes, value_span,
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
      for (const auto& chain : class_starts) consider(server_starts(servers.size(), classes, chain), "tabu");
    };
    local_search(best.starts, until(0.05), /*restart=*/false, 300, 1);
    const Candidate first_round = best;
    // Large neighbourhoods (placement_neighbourhood.hpp): the exact search re-places up to 40
    // servers around the others, which moves many servers at once where single moves stall.
    const auto neighbourhoods = [&](double seconds, unsigned long long seed) {
      if (!open()) return;
      std::vector<std::vector<int>> class_starts(classes.size());
      for (std::size_t c = 0; c < classes.size(); ++c) {
        for (std::size_t m : classes[c].members) class_starts[c].push_back(best.starts[m]);
      }
      const detail::NeighbourhoodResult r = detail::improve_by_neighbourhoods(
          total_blocks, search_classes, value_span, class_starts,
          {.deadline = budget.deadline(seconds), .max_work = budget.cap(seconds, Budget::kSearchNodesPerSecond),
           .stop_at = bound, .unit = unit, .seed = seed, .threads = threads});
      budget.spend(static_cast<double>(r.work), Budget::kSearchNodesPerSecond);
      consider(server_starts(servers.size(), classes, class_starts), "neighbourhood");
    };
    // Sums too dense for the search to refute near the optimum: see the integer programme's root
    // below. Its roots take 0.1-0.3 s at 64 x 80, so a limit under a second (the simulator's
    // per-period placements: 0.3 s) leaves them to the one root at the end, as before.
    const bool dense = !values || values_between(best.value, bound) > 64;
    const bool root_first = dense && options.time_limit_s >= kRootFirstLimit;
    const double search_end = 0.85 * options.time_limit_s;
    // A search whose branching turns wide (many classes) rarely finishes: it stops early and
    // leaves the time to the integer programme and the tabu rounds, which do better there: wide
    // searches (top and bottom probes together) get 5% of the limit. Where few coverage values
    // lie between the best placement and the bound (five GPU classes, sums 100 apart; not the
    // appendix-E swarms, whose relayed throughputs make sums a few apart) they do decide
    // targets, and get 20%: `2500:22, 2400:40, 3000:33, 2500:5, 1200:36` then ends at 47,500
    // with bound 47,600, against 47,100 and 47,700 (60% starves the tabu rounds; 20% for an
    // appendix-E swarm cost CBC's bound 0.1-0.3%).
    double wide_left = (dense ? 0.05 : 0.2) * options.time_limit_s;
    // Targets between the best placement and the bound (placement_targets.cpp): galloping up
    // from the best, each reached (a better placement) or refuted (a lower bound), and down from
    // the bound, where refutations come cheap.
    detail::RelaxationCache relaxations;  // warm from one target to the next
    // `reach`: the probe is after a placement (the bottom's, or the top's walk below a target that
    // timed out), so the search restarts (a poor early choice held 47,300 of a five-class swarm
    // 6.5 s, against 0.1 s with restarts, two workers). The top's other probes and the
    // projections are after refutations, which restarts do not speed up (and with several
    // workers each early round searches the whole tree, not a share of it).
    const auto search = [&](int blocks, std::span<const detail::SearchClass> swarm, double target, double seconds,
                            detail::RelaxationCache& cache, bool reach) {
      const double wide = std::clamp(wide_left, 0.0, seconds);
      const double began_search = budget.elapsed();
      // A node's work (its dominance check, its lookahead) grows with the blocks ahead: measured
      // 1.5e6 nodes a second on a 14-point projection against 2.5e5 on its 80 blocks.
      const double nodes_per_second = Budget::kSearchNodesPerSecond * total_blocks / blocks;
      const detail::SearchResult r = detail::reach_target(
          blocks, swarm, target, value_span,
          {.deadline = budget.deadline(seconds), .wide_deadline = budget.deadline(wide),
           .max_nodes = budget.cap(seconds, nodes_per_second),
           .wide_max_nodes = budget.cap(wide, nodes_per_second),
           .restart_work = reach ? detail::kRestartWork : 0,
           .threads = threads,
           .relaxations = &cache});
      budget.spend(static_cast<double>(r.work), nodes_per_second);
      if (r.wide) wide_left -= budget.elapsed() - began_search;
      return r;
    };
    // A target that no placement on a projection's points reaches is refuted
    // (placement_projection.hpp); those points' search is far smaller, so it goes first, with a
    // quarter of the probe's time each. A projection is not asked below a target it reached (it
    // reaches those too), nor below one it gave up on (refuting lower is no easier) unless
    // offered twice the time.
    struct ProjectedSearch {
      detail::Projection swarm;
      detail::RelaxationCache relaxations;
      double reached = -1.0;
      double gave_up = -1.0;
      double gave_up_seconds = 0.0;
    };
    std::vector<std::unique_ptr<ProjectedSearch>> projections;
    for (auto& p : detail::tighter_projections(total_blocks, search_classes, 2)) {
      projections.push_back(std::make_unique<ProjectedSearch>());
      projections.back()->swarm = std::move(p);
    }
    const auto refuted_by_projection = [&](double target, double seconds) {
      for (auto& p : projections) {
        if (target <= p->reached) continue;
        if (target <= p->gave_up && seconds < 2 * p->gave_up_seconds) continue;
        const detail::SearchResult r =
            search(p->swarm.total_blocks, p->swarm.classes, target, seconds, p->relaxations, false);
        if (r.outcome == detail::SearchOutcome::unreachable) return true;
        if (r.outcome == detail::SearchOutcome::reached) {
          p->reached = target;
        } else {
          p->gave_up = target;
          p->gave_up_seconds = seconds;
        }
      }
      return false;
    };
    const auto run_schedule = [&](double end) {
      detail::TargetSchedule schedule(value_span, unit, best.value, bound, (end - budget.elapsed()) / 16);
      while (open() && budget.elapsed() < end) {
        const auto probe = schedule.next(end - budget.elapsed());
        if (!probe) break;
        const double began_probe = budget.elapsed();
        if (refuted_by_projection(probe->target, 0.25 * probe->seconds)) {
          schedule.unreachable();
          bound = schedule.bound();
          continue;
        }
        const double seconds = probe->seconds - (budget.elapsed() - began_probe);
        const bool reach = !probe->top || probe->walk;
        const detail::SearchResult r = search(total_blocks, search_classes, probe->target, seconds, relaxations, reach);
        if (r.outcome == detail::SearchOutcome::out_of_time) {
          schedule.timed_out(r.wide || dense);  // dense sums: as rarely decided as wide branching
        } else if (r.outcome == detail::SearchOutcome::unreachable) {
          schedule.unreachable();
        } else {
          std::vector<int> starts = server_starts(servers.size(), classes, r.starts);
          const double v = placement_value(total_blocks, servers, starts);
          if (v <= best.value) break;  // rounding: the search's sums said yes, the exact sum says no
          best = {std::move(starts), v, "search"};
          schedule.reached(v);
        }
        bound = schedule.bound();
      }
      bound = schedule.bound();  // it may have closed the gap without a probe
    };
    // Where the swarm's sums lie dense (many distinct throughputs: the appendix-E swarms) the
    // search refutes nothing near the optimum on 64 servers, and the integer programme's root
    // (its relaxation with cuts, a few tenths of a second) is the bound. It comes after a short
    // search (which proves small dense swarms in milliseconds) and before the rest, so that the
    // later probes start below it and the bound does not hang on the time the search leaves over
    // (it did: an appendix-E swarm ended with bound 49,857 at 60 s against 49,676 at 10 s). It
    // starts cold, since CBC's cuts change with its start and a start that depends on the clock
    // (the tabu round's) would make the bound differ from run to run. Its cuts change with the
    // formulation too, and no one formulation cuts best: the exact one (bound 57,406 on one
    // appendix-E swarm, 43,175 on another) and its relaxation where servers may stay out and tau
    // is unbounded (57,148 and 43,193) both run, and the lower bound stands.
    bool rooted = false;
    if (root_first) {
      run_schedule(0.07 * options.time_limit_s);
      if (open()) {
        for (const bool relaxed : {false, true}) {
          const double seconds = budget.reproducible() ? 1e9 : std::max(until(0.2), 0.05 * options.time_limit_s);
          bound = std::min(bound, solve_milp(total_blocks, servers, classes, seconds, 0, options.relative_gap,
                                             relaxed ? kUnbounded : bound, /*warm=*/false, best, relaxed));
        }
        round_bound();
        if (budget.reproducible()) budget.spend(0.05 * options.time_limit_s, 1.0);
        rooted = true;
      }
    }
    run_schedule(search_end);
    // The integer programme gets half of what is left, for its bound and for the placements it
    // finds (CBC checks its clock between nodes, not during preprocessing or the root cuts, so
    // it overruns: half, not all); the last phase (neighbourhood and tabu rounds) uses the rest.
    // Where its root went first (dense sums), its tree never lowered that bound on the
    // appendix-E swarms and took the tabu rounds' time, but a root started warm, from the best
    // placement, cuts differently (an appendix-E swarm: 43,174 against 43,422 cold): the root
    // again, warm.
    const double left = budget.left();
    if (open() && left > 0.01) {
      // CBC's work is not predictable from its nodes (its root alone may take most of a second
      // or a hundredth), so a reproducible run asks it for its root only: the relaxation with
      // its cuts, and what its heuristics find there.
      const double seconds = budget.reproducible() ? 1e9 : (rooted ? 0.25 : 0.5) * left;
      const int nodes = budget.reproducible() || rooted ? 0 : -1;
      const double proven =
          solve_milp(total_blocks, servers, classes, seconds, nodes, options.relative_gap, bound, /*warm=*/true, best);
      bound = std::min(bound, proven);
      round_bound();
      if (budget.reproducible()) budget.spend((rooted ? 0.05 * options.time_limit_s : 0.5 * left), 1.0);
    }
    // The last phase alternates large-neighbourhood rounds and tabu rounds (each restarting from
    // the best placement), three of each in equal slices: each kind leaves the other a better
    // start (measured on the ten appendix-E swarms of bench_placement, reproducible: mean gap
    // 0.186% with tabu rounds alone, 0.164% with neighbourhoods for the first half, 0.124%
    // alternating in three or six slices). When the search or CBC found the best placement, a
    // tabu round first starts from its own first placement: the search's placements (every
    // server pushed right) can sit in a poorer basin for moves of one server than a lower one the
    // tabu search reached itself (an appendix-E swarm ended 0.8% lower from the search's).
    // The phase is tabu rounds alone above kNeighbourhoodServers, where rounds that free at most
    // 40 servers lost to the tabu rounds they replaced (200 appendix-E servers in 3 s), and where
    // its slices would be short of kNeighbourhoodSlice, where they did too (the simulator's 0.3 s
    // placements of 26-70 appendix-E servers: 9,153 against 9,306 with tabu rounds alone).
    const bool with_neighbourhoods = servers.size() <= kNeighbourhoodServers &&
                                     budget.left() >= 2 * kFinalRounds * kNeighbourhoodSlice;
    const int rounds = with_neighbourhoods ? kFinalRounds : 1;
    const double slice = budget.left() / (2 * rounds);
    if (open() && first_round.value < best.value) local_search(first_round.starts, slice, true, 100, 3);
    for (int round = 0; round < rounds && open(); ++round) {
      if (with_neighbourhoods) neighbourhoods(slice, 5 + round);
      local_search(best.starts, round + 1 == rounds ? budget.left() : slice, /*restart=*/true, 100, 2 + 10 * round);
    }
  }
  return finish(std::move(best), bound);
}

}  // namespace swarm
