// Exact decision procedure for the optimal placement: can every block reach a target?
//
// Canonical form. Take any placement that reaches the target and shift a server one block to
// the right whenever its first block still reaches the target without it. Starts only grow, so
// this ends, and in the end every server either
//   (a) starts at a block that would fall short without it ("necessary" there), or
//   (b) starts at its last possible block, L - k.
// So a sweep from block 0 only has to decide, at each block that falls short, which minimal
// multiset of servers starts there (every one of them necessary), and puts all servers still
// unused of a class at L - k once the sweep reaches that block (starting there covers the most
// of what is left). Trying every minimal multiset at every short block is therefore exhaustive:
// if the sweep fails everywhere, no placement reaches the target. Servers held where they are
// (fixed_coverage) only add coverage, before the sweep: the argument is about the free ones.
//
// Pruning: (1) the blocks still to come (all of them, or every g-th) need more coverage than
// the unused servers can bring at most (enough_left); (1') the unused area cannot pay for the
// deficits rounded up to sums of the unused servers (rounded_area_suffices); (1'') the same
// argument as (1), made once per short block for all its multisets at once, drops a multiset
// before its node is built (Lookahead); (2) a state (block, unused servers per class, coverage
// of the blocks to come) fails if one with the same block and unused servers and at least as
// much coverage everywhere failed before (Dominance); (3) the linear relaxation of what is left
// (fractional servers, placement_lp.hpp) cannot fill the deficits: its dual weights the blocks
// ahead, and the weighted form of (1) fails. Weights that pruned are kept per block and tried
// first at the next states there, which they prune far more often than a fresh solve would
// (one solve's weights typically prune thousands of states). Partial multisets are memoised
// exactly, by a 128-bit hash.
//
// The search is a decision procedure; placement.cpp chooses the targets.
#include "placement_search.hpp"

#include "placement_lp.hpp"
#include "placement_values.hpp"
#include "placement_memo.hpp"

#ifdef __linux__
#include <sched.h>
#endif

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace swarm::detail {
namespace {

// The search's tuned constants: docs/placement.md, "Tuned constants", gives the measurement
// behind each.
constexpr int kMaxSpacing = 40;  // spacings the capacity pruning may use
constexpr int kTriedSpacings = 1;  // each node tries the first (those that pruned most), and one more in rotation
// Residual sums are listed on a grid up to the target; beyond this many multiples (throughputs
// far finer than the target) the swarm's coverage values round instead.
constexpr double kMaxGridMultiples = 1 << 16;
constexpr std::size_t kLookaheadSpacings = 3;  // spacings of the lookahead
constexpr double kSlack = 1 + 1e-12;  // sums in another order may round a hair differently
// The relaxation (pruning 3). A block whose solve did not prune skips the next 1, 2, 4, ...
// chances, up to kMaxRelaxationSkip.
constexpr long kMaxRelaxationSkip = 1024;
constexpr std::size_t kKeptWeights = 32;  // per block, and at most kKeptValues values in all
constexpr std::size_t kKeptValues = 4'000'000;
// A programme beyond this many coefficients (long models and spans: it grows as L^2) costs more
// per solve than its prunes save, and memory per worker: the search then goes without it.
constexpr double kMaxRelaxationCoefficients = 2e6;
// A warm solve's work: kNodesPerRelaxation nodes, plus per simplex iteration 2 us + 7.7 ns per
// column (a node ~4 us).
constexpr long kNodesPerRelaxation = 32;
[[nodiscard]] long relaxation_iterations_work(long iterations, long columns) {
  return iterations * (columns + 260) / 520;
}
constexpr long kListingStepsPerNode = 32;  // a listing step ~0.14 us
// The lookahead also takes the first kLookaheadWeights kept weights of each of the next
// kLookaheadBlocks blocks.
constexpr int kLookaheadBlocks = 8;
constexpr std::size_t kLookaheadWeights = 2;
// Restarts (SearchLimits::restart_work). A short block's multisets are listed, and checked
// against the lookahead rows (which take the relaxation weights kept at the blocks ahead), when
// the sweep first gets there; what the search learns below them (failures, dominance profiles,
// weights) prunes them only when they are listed again, so a round that starts over skips whole
// subtrees its predecessor had to enter. Each round's work grows by kRestartGrowth.
constexpr double kRestartGrowth = 1.5;
// Rounds before the last: from 10 k work they add up to 490 k. In them every worker searches the
// whole tree (the memo shares what each refutes), which refutes more slowly than the last round's
// split.
constexpr int kRestartRounds = 8;

// Points ahead that still fall short, for the capacity checks: `at` orders them (a block, or
// a point's index among points spaced g apart), `weight` scales what filling them is worth.
struct Weighed {
  int at;
  double weight, deficit;
};

// The most a server of throughput t fills of `points` (sorted by `at`) within `width`
// consecutive positions, each point filled up to t and weighed. Points without a deficit (or
// weight) are left out by the callers: they add nothing, and were most of the work.
double best_window(std::span<const Weighed> points, int width, double t) {
  double window = 0.0, best = 0.0;
  for (std::size_t j = 0, first = 0; j < points.size(); ++j) {
    window += points[j].weight * std::min(t, points[j].deficit);
    for (; points[first].at + width <= points[j].at; ++first) {
      window -= points[first].weight * std::min(t, points[first].deficit);
    }
    best = std::max(best, window);
  }
  return best;
}

// What a server of throughput t starting at position 0 fills of `points` (its first `width`
// positions), each point filled up to t and weighed.
double first_window(std::span<const Weighed> points, int width, double t) {
  double here = 0.0;
  for (std::size_t j = 0; j < points.size() && points[j].at < width; ++j) {
    here += points[j].weight * std::min(t, points[j].deficit);
  }
  return here;
}

// A relaxation's weights on the blocks ahead of the block it was solved at (`at` counts from
// there), those above zero only: they are the duals of the few blocks that bind, and every check
// with them used to run over all the blocks ahead (a quarter of a hard refutation's time).
struct Weight {
  int at;
  double weight;
};
using Weights = std::vector<Weight>;

class TargetSearch {
 public:
  TargetSearch(int total_blocks, std::span<const SearchClass> classes, double target,
               std::span<const double> coverage_values, std::span<const double> fixed_coverage,
               const SearchLimits& limits, Shared& shared, int worker)
      : shared_(shared),
        worker_(worker),
        total_(total_blocks),
        classes_(classes.begin(), classes.end()),
        target_(target * (1 - 1e-12)),  // sums in another order may round a hair lower
        values_(coverage_values),
        limits_(limits),
        coverage_(fixed_coverage.empty() ? std::vector<double>(static_cast<std::size_t>(total_blocks), 0.0)
                                         : std::vector<double>(fixed_coverage.begin(), fixed_coverage.end())),
        unused_(classes.size()),
        starts_(classes.size()),
        frames_(static_cast<std::size_t>(total_blocks)),
        relaxation_(static_cast<std::size_t>(total_blocks)),
        kept_per_block_(std::clamp<std::size_t>(kKeptValues / (static_cast<std::size_t>(total_blocks) * static_cast<std::size_t>(total_blocks)), 2, kKeptWeights)) {
    double coefficients = 0.0;
    for (const SearchClass& c : classes) {
      coefficients += static_cast<double>(total_blocks - c.num_blocks + 1) * (c.num_blocks + 1);
    }
    relaxation_affordable_ = coefficients <= kMaxRelaxationCoefficients;
    // The least sum of at least a deficit d is below d + max t (drop any of its servers and it
    // falls short of d), so sums up to the target plus the largest throughput round every deficit.
    double largest = 0.0;
    for (const SearchClass& c : classes) largest = std::max(largest, c.throughput);
    grid_ = limits.round_by_unused_sums ? throughput_grid(classes) : 0.0;
    if (grid_ > 0) sum_bits_ = (target + largest) / grid_ + 2;
    if (grid_ > 0 && sum_bits_ > kMaxGridMultiples) grid_ = 0.0;
    for (std::size_t c = 0; c < classes_.size(); ++c) unused_[c] = classes_[c].count;
    for (int g = 1; g <= kMaxSpacing; ++g) spacings_.push_back(g);
    // Larger throughput first: the enumeration of minimal multisets relies on this order.
    order_.resize(classes_.size());
    for (std::size_t c = 0; c < order_.size(); ++c) order_[c] = c;
    std::sort(order_.begin(), order_.end(), [&](std::size_t x, std::size_t y) {
      if (classes_[x].throughput != classes_[y].throughput) return classes_[x].throughput > classes_[y].throughput;
      return classes_[x].num_blocks > classes_[y].num_blocks;
    });
  }

  SearchResult run() {
    SearchResult r;
    bool ok = false;
    long budget = limits_.restart_work;
    for (int round = 0;; ++round) {
      // The last round has no budget, and with several workers shares the first short block's
      // multisets; in the earlier ones each worker searches the whole tree. Wide searches, whose
      // partial multisets are nodes of their own (pruned as they are built), go straight to it.
      const bool last = budget <= 0 || round == kRestartRounds || wide();
      round_end_ = last ? std::numeric_limits<long>::max() : work() + budget;
      first_short_block_ = last && shared_.split() ? FirstShortBlock::shared
                           : !last && worker_ > 0   ? FirstShortBlock::rotated
                                                    : FirstShortBlock::own;
      ok = dfs(0);
      if (ok || stopped_) break;
      if (!out_of_time_) {  // this worker's round failed on the whole tree: a proof
        if (!last && shared_.split()) shared_.prove_unreachable();  // not just this worker's share
        break;
      }
      out_of_time_ = false;  // the round's budget ran out: restart
      ++restarts_;
      budget = static_cast<long>(static_cast<double>(budget) * kRestartGrowth);
    }
    r.nodes = nodes_;
    r.work = work();
    r.dominated = dominated_;
    r.looked_ahead = looked_ahead_;
    r.relaxations = relaxations_;
    r.by_weights = by_weights_;
    r.restarts = restarts_;
    r.wide = wide();
    if (ok) {
      shared_.stop_all();
      r.outcome = SearchOutcome::reached;
      r.starts = starts_;
    } else {
      r.outcome = stopped_ ? SearchOutcome::out_of_time : SearchOutcome::unreachable;
    }
    return r;
  }

 private:
  void place(std::size_t c, int start, int count) {
    const SearchClass& k = classes_[c];
    for (int b = start; b < start + k.num_blocks; ++b) coverage_[b] += k.throughput * count;
    unused_[c] -= count;
    for (int i = 0; i < count; ++i) starts_[c].push_back(start);
  }
  void unplace(std::size_t c, int start, int count) {
    const SearchClass& k = classes_[c];
    for (int b = start; b < start + k.num_blocks; ++b) coverage_[b] -= k.throughput * count;
    unused_[c] += count;
    starts_[c].resize(starts_[c].size() - static_cast<std::size_t>(count));
  }

  Key key(int block, std::size_t oi) const {
    // Two independent FNV-style hashes over the block, the unused counts and the coverage ahead.
    std::uint64_t a = 1469598103934665603ULL, b = 0x84222325CBF29CE4ULL;
    const auto mix = [&](std::uint64_t v) {
      a = (a ^ v) * 1099511628211ULL;
      b = (b ^ (v + 0x9E3779B97F4A7C15ULL + (b << 6) + (b >> 2))) * 0xFF51AFD7ED558CCDULL;
    };
    mix(static_cast<std::uint64_t>(block));
    mix(static_cast<std::uint64_t>(oi));
    for (int u : unused_) mix(static_cast<std::uint64_t>(u));
    for (int x = block; x < total_; ++x) {
      std::uint64_t bits;
      std::memcpy(&bits, &coverage_[x], sizeof bits);
      mix(bits);
    }
    return {a | 1, b};  // odd: KeySet's empty slots are {0, 0}
  }

  // Every multiset of available servers whose sum reaches `deficit`, in which each member is
  // necessary, and which passes the lookahead rows of `block`, up to limits_.listed_options of
  // them (false when there are more, or when listing takes more than limits_.listing_steps).
  // With classes in decreasing throughput, the last class used holds the smallest member, and
  // it must take exactly the count that first reaches the deficit. A row's losses are never
  // negative, so a partial multiset that already fails the row that failed last has no
  // completion that passes: on the hard refutations most multisets fail the lookahead, and
  // listing them cost as much as checking them.
  bool minimal_multisets(int block, double deficit, std::size_t oi, double sum, std::vector<int>& pick,
                         std::vector<int>& out, std::span<const double> reachable) {
    if (oi == order_.size() || sum + reachable[oi] < deficit * (1 - 1e-12)) return true;
    if (++listing_steps_ > limits_.listing_steps) return false;
    if (listing_steps_ % 4096 == 0 && past_deadline()) {
      stop();  // a listing may take milliseconds, and tick() looks every 1024 nodes
      return false;
    }
    if (oi > 0 && fails_last_failed_row(block, pick, deficit - sum, oi)) return true;
    const std::size_t c = order_[oi];
    if (!usable(c, block)) return minimal_multisets(block, deficit, oi + 1, sum, pick, out, reachable);
    const double t = classes_[c].throughput;
    const int reach = static_cast<int>(std::ceil((deficit - sum) / t - 1e-12));
    if (reach >= 1 && reach <= unused_[c]) {
      pick[c] = reach;
      if (!lookahead_passes(block, pick)) {
        ++looked_ahead_;
      } else {
        if (out.size() == limits_.listed_options * pick.size()) return false;
        out.insert(out.end(), pick.begin(), pick.end());
      }
    }
    for (int n = 0; n < std::min(unused_[c] + 1, reach); ++n) {
      pick[c] = n;
      if (!minimal_multisets(block, deficit, oi + 1, sum + n * t, pick, out, reachable)) return false;
    }
    pick[c] = 0;
    return true;
  }

  // Whether class c can still start a server at `block`.
  [[nodiscard]] bool usable(std::size_t c, int block) const {
    return unused_[c] > 0 && total_ - classes_[c].num_blocks > block && classes_[c].throughput > 0;
  }

  // Pruning (1): take the blocks to come at spacing g (block + o, block + o + g, ...). A server
  // of class c covers at most m = (k_c - 1) / g + 1 consecutive ones of them and fills at most
  // min(deficit, t_c) of each, so the unused servers together fill at most
  // sum_c unused_c * (best run of m points); that must cover the points' deficits. g = 1 is the
  // area argument; larger g catch long spans that cannot be cut to fit, which is what proves
  // most targets unreachable early. No block can take more than all unused servers give.
  // `spaced` = false checks only the latter (cheap, for the partial multisets).
  bool enough_left(int block, bool spaced) {
    const int n = total_ - block;
    deficit_.assign(static_cast<std::size_t>(n), 0.0);
    double worst = 0.0, all = 0.0;
    for (int x = 0; x < n; ++x) {
      deficit_[x] = std::max(0.0, target_ - coverage_[block + x]);
      worst = std::max(worst, deficit_[x]);
    }
    for (std::size_t c = 0; c < classes_.size(); ++c) all += unused_[c] * classes_[c].throughput;
    if (worst > all * kSlack) return false;
    if (!spaced) return true;
    if ((!values_.empty() || grid_ > 0) && !rounded_area_suffices()) return false;
    // Most nodes pass, so trying all spacings at each would dominate the run time. The few
    // that prune in a given instance (its span lengths and their divisors) rise to the front
    // by transposition; each node tries the first kTriedSpacings and one more in rotation.
    const int limit = std::min(kMaxSpacing, std::max(1, n - 1));
    int tried = 0;
    for (std::size_t i = 0; i < spacings_.size() && tried < kTriedSpacings; ++i) {
      if (spacings_[i] > limit) continue;
      ++tried;
      if (spacing_prunes(i)) return false;
    }
    rotor_ = (rotor_ + 1) % spacings_.size();
    return spacings_[rotor_] > limit || !spacing_prunes(rotor_);
  }

  // Whether the i-th spacing proves the blocks ahead uncoverable; if so it moves up one place.
  [[nodiscard]] bool spacing_prunes(std::size_t i) {
    if (spacing_coverable(spacings_[i])) return false;
    if (i > 0) std::swap(spacings_[i], spacings_[i - 1]);
    return true;
  }

  // Pruning (1'): every unused server will lie wholly in the blocks to come, so what it adds to
  // a block is a sum of unused servers' throughputs, and the unused area must pay for each
  // deficit rounded up to the next such sum. Strong when the target leaves little slack: a block
  // short by a little still takes a whole server. On a grid the sums of the unused servers
  // themselves are listed (a bitset knapsack, a few words); deep in a search few servers are
  // left and their sums are far sparser than the swarm's coverage values (four GPU classes:
  // with only 1000-servers left, a deficit of 2,200 takes 3,000, not 2,300). Off a grid, the
  // swarm's coverage values (a superset) round.
  [[nodiscard]] bool rounded_area_suffices() {
    double area = 0.0, rounded = 0.0;
    for (std::size_t c = 0; c < classes_.size(); ++c) {
      area += unused_[c] * classes_[c].throughput * classes_[c].num_blocks;
    }
    if (grid_ > 0) unused_sums();
    double last_deficit = -1.0, last_rounded = 0.0;
    for (double& d : deficit_) {
      if (d <= 0.0) continue;
      if (d != last_deficit) {  // runs of equal deficits (untouched blocks) are common
        last_deficit = d;
        last_rounded = grid_ > 0 ? next_unused_sum(d) : next_coverage_value(d);
        if (last_rounded < 0) return false;  // more than all unused servers bring
      }
      d = last_rounded;
      rounded += last_rounded;
    }
    return rounded <= area * kSlack;
  }

  [[nodiscard]] double next_coverage_value(double d) const {
    const auto it = std::lower_bound(values_.begin(), values_.end(), d * (1 - 1e-12));
    return it == values_.end() ? d : std::max(d, *it);
  }

  // sums_ bit q: q grid steps are a sum of unused servers (bounded knapsack by binary splitting
  // of each class's count, as shifts of the bitset). A piece that shifts past the end stops its
  // class: the pieces before it make every count that stays below the end.
  void unused_sums() {
    const auto bits = static_cast<std::size_t>(sum_bits_);
    sums_.assign((bits + 63) / 64, 0);
    sums_[0] = 1;
    for (std::size_t c = 0; c < classes_.size(); ++c) {
      const auto q = static_cast<std::size_t>(std::llround(classes_[c].throughput / grid_));
      if (q == 0) continue;
      for (int left = unused_[c], piece = 1; left > 0; left -= piece, piece *= 2) {
        const std::size_t shift = q * static_cast<std::size_t>(std::min(piece, left));
        if (shift >= bits) break;
        const std::size_t words = shift / 64, within = shift % 64;
        for (std::size_t w = sums_.size(); w-- > words;) {
          std::uint64_t moved = sums_[w - words] << within;
          if (within > 0 && w > words) moved |= sums_[w - words - 1] >> (64 - within);
          sums_[w] |= moved;
        }
      }
    }
  }

  // The least sum of unused servers of at least d, or -1 when they all add up to less.
  [[nodiscard]] double next_unused_sum(double d) const {
    // Tolerances as for the coverage values: sums in another order round a hair differently.
    std::size_t q = static_cast<std::size_t>(std::max(0.0, std::ceil(d * (1 - 1e-12) / grid_ - 1e-9)));
    for (std::size_t w = q / 64; w < sums_.size(); ++w) {
      std::uint64_t word = sums_[w];
      if (w == q / 64) word &= ~std::uint64_t{0} << (q % 64);
      if (word != 0) {
        return std::max(d, static_cast<double>(w * 64 + static_cast<std::size_t>(std::countr_zero(word))) * grid_);
      }
    }
    return -1.0;
  }

  [[nodiscard]] bool spacing_coverable(int spacing) {
    for (int o = 0; o < spacing; ++o) {
      if (!points_coverable(o, spacing)) return false;
    }
    return true;
  }

  [[nodiscard]] bool points_coverable(int offset, int spacing) {
    const double need = gather_points(offset, spacing, 0);
    double available = 0.0;
    for (std::size_t c = 0; c < classes_.size() && available * kSlack < need; ++c) {
      if (unused_[c] == 0) continue;
      const SearchClass& k = classes_[c];
      available += unused_[c] * best_window(weighed_, (k.num_blocks - 1) / spacing + 1, k.throughput);
    }
    return need <= available * kSlack;
  }

  // Sweeps to the next block that falls short of the target, then decides what starts there.
  bool dfs(int block) {
    // Walk over blocks that already reach the target, starting each class's leftovers at L - k.
    std::vector<std::pair<std::size_t, int>> forced;
    for (; block < total_; ++block) {
      for (std::size_t c = 0; c < classes_.size(); ++c) {
        if (total_ - classes_[c].num_blocks == block && unused_[c] > 0) {
          forced.emplace_back(c, unused_[c]);
          place(c, block, unused_[c]);
        }
      }
      if (coverage_[block] < target_) break;
    }
    const bool ok = block == total_ || branch(block);
    if (!ok) {
      for (auto it = forced.rbegin(); it != forced.rend(); ++it) {
        unplace(it->first, total_ - classes_[it->first].num_blocks, it->second);
      }
    }
    return ok;
  }

  // Block `block` falls short. When its minimal multisets are few, tries them all, smallest
  // overshoot first (then the one covering furthest): that finds reachable targets fast.
  // Otherwise (many classes, deep deficit) decides them class by class in choose().
  bool branch(int block) {
    tick();
    if (out_of_time_ || !enough_left(block, true)) return false;
    // Kept weights before the memo: cheaper than its probe, and a state they prune needs no
    // record (they would prune it again).
    if (limits_.prune_by_relaxation && kept_weights_prune(block)) {
      ++by_weights_;
      return false;
    }
    const Key k = key(block, 0);
    if (shared_.has_failed(k)) return false;
    if (limits_.prune_by_dominance) {
      state(block);
      profile(block);
      if (shared_.dominated(state_, profile_)) {
        ++dominated_;
        return false;
      }
    }
    if (limits_.prune_by_relaxation && relaxation_prunes(block)) {
      ++by_weights_;
      return state_fails(k, block);
    }

    // The first short block of a split search: its multisets go to the workers one at a time,
    // and none of them may record the block as failed (the others may still reach the target).
    const FirstShortBlock first = std::exchange(first_short_block_, FirstShortBlock::own);
    const bool split = first == FirstShortBlock::shared;

    // Scratch of this block: a block is on the stack once at most, so its buffers are free.
    Frame& f = frames_[static_cast<std::size_t>(block)];
    const std::size_t classes = classes_.size();
    f.reachable.assign(order_.size() + 1, 0.0);  // what order_[i..] can add here
    for (std::size_t i = order_.size(); i-- > 0;) {
      const std::size_t c = order_[i];
      f.reachable[i] = f.reachable[i + 1] + (usable(c, block) ? unused_[c] * classes_[c].throughput : 0.0);
    }
    f.options.clear();
    f.pick.assign(classes, 0);
    lookahead(block);
    listing_steps_ = 0;
    const bool listed = minimal_multisets(block, target_ - coverage_[block], 0, 0.0, f.pick, f.options, f.reachable);
    extra_work_ += listing_steps_ / kListingStepsPerNode;  // thousands of steps with many classes
    if (!listed) {
      wide_ = true;
      if (split) {
        // The workers walk this block's choices alike and share its complete multisets.
        split_block_ = block;
        return choose(block, 0);
      }
      return choose(block, 0) || state_fails(k, block);
    }
    f.ranked.clear();
    for (std::size_t o = 0; o < f.options.size() / classes; ++o) {
      const std::span<const int> m(&f.options[o * classes], classes);
      double sum = 0.0, reach = 0.0;
      for (std::size_t c = 0; c < classes; ++c) {
        sum += m[c] * classes_[c].throughput;
        reach += m[c] * classes_[c].num_blocks;
      }
      f.ranked.emplace_back(sum - 1e-9 * reach, o);
    }
    std::sort(f.ranked.begin(), f.ranked.end());
    // Before the last round, worker w tries the first short block's multisets from the w-th on
    // (then the ones before it), so that the workers start apart as in the last round's split.
    if (first == FirstShortBlock::rotated && !f.ranked.empty()) {
      std::rotate(f.ranked.begin(), f.ranked.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(worker_) % f.ranked.size()), f.ranked.end());
    }
    for (std::size_t i = 0;; ++i) {
      const std::size_t r = split ? shared_.next_root_option() : i;
      if (r >= f.ranked.size()) break;
      const int* m = &f.options[f.ranked[r].second * classes];
      for (std::size_t c = 0; c < classes; ++c) {
        if (m[c] > 0) place(c, block, m[c]);
      }
      if (dfs(block + 1)) return true;
      for (std::size_t c = classes; c-- > 0;) {
        if (m[c] > 0) unplace(c, block, m[c]);
      }
      if (out_of_time_) break;
    }
    return !split && state_fails(k, block);
  }

  // Block `block` falls short; the classes before order position `oi` have had their say. Picks
  // how many servers of class order_[oi] start here: either exactly as many as first reach the
  // target (the multiset is complete and minimal: its smallest member is necessary) or fewer,
  // leaving the rest to the classes after it. Every partial choice is a node of its own, so the
  // pruning cuts a wide multiset before it is spelled out.
  //
  // At a split search's first short block (split_block_) every worker walks these choices alike,
  // without the memo (which the others fill, so what it skips would differ between workers),
  // and takes the complete multisets one at a time (take_shared_multiset); nothing partial is
  // recorded as failed there, since its other multisets are other workers' to try.
  bool choose(int block, std::size_t oi) {
    ++partial_nodes_;
    tick();
    if (out_of_time_) return false;
    const bool shared_block = block == split_block_;
    const double deficit = target_ - coverage_[block];
    double reachable = 0.0;  // what the classes from oi on can still add here
    for (std::size_t i = oi; i < order_.size(); ++i) {
      if (usable(order_[i], block)) reachable += unused_[order_[i]] * classes_[order_[i]].throughput;
    }
    if (reachable < deficit * (1 - 1e-12) || !enough_left(block, false)) return false;
    const Key k = key(block, oi + 1);  // oi + 1: position 0 is branch()'s key
    if (!shared_block && shared_.has_failed(k)) return false;
    const auto failed = [&](bool ok) { return shared_block ? ok : fail(k, ok); };

    const std::size_t c = order_[oi];
    if (!usable(c, block)) return failed(choose(block, oi + 1));
    // This class's count is decided here, before the classes after it.
    const int reach = static_cast<int>(std::ceil(deficit / classes_[c].throughput - 1e-12));
    if (reach <= unused_[c] && (!shared_block || take_shared_multiset())) {  // complete it with this class
      place(c, block, reach);
      if (dfs(block + 1)) return true;
      unplace(c, block, reach);
    }
    // Fewer of this class, most first: larger servers first keeps overshoots small.
    for (int n = std::min(unused_[c], reach - 1); n >= 0 && !out_of_time_; --n) {
      if (n > 0) place(c, block, n);
      if (choose(block, oi + 1)) return true;
      if (n > 0) unplace(c, block, n);
    }
    return failed(false);
  }

  // Whether the next complete multiset of the shared block is this worker's: each worker counts
  // them in the same order and holds a ticket, the index of the next one it takes.
  bool take_shared_multiset() {
    if (ticket_ < 0) ticket_ = static_cast<long>(shared_.next_root_option());
    if (shared_multisets_++ != ticket_) return false;
    ticket_ = static_cast<long>(shared_.next_root_option());
    return true;
  }

  // The state's coverage of the blocks to come, capped at the target (what more there is
  // changes nothing), into profile_.
  void profile(int block) {
    profile_.resize(static_cast<std::size_t>(total_ - block));
    for (int x = block; x < total_; ++x) profile_[x - block] = std::min(coverage_[x], target_);
  }

  // The state's block and unused servers per class, into state_ (Dominance's buckets).
  void state(int block) {
    state_.assign(1, block);
    state_.insert(state_.end(), unused_.begin(), unused_.end());
  }

  // Records that the whole state at `block` fails, unless the search was cut short: exactly, and
  // by its profile for dominance (both taken again: the nodes below overwrote them). False.
  bool state_fails(const Key& k, int block) {
    fail(k, false);
    if (!out_of_time_ && limits_.prune_by_dominance) {
      state(block);
      profile(block);
      shared_.add_dominance(state_, profile_);
    }
    return false;
  }

  // Pruning (1''). For the best-pruning spacings g and each offset o, the points o, o + g, ...
  // after `block` need `need` more coverage. Placing multiset m at `block` and the other unused
  // servers wherever they fit, a server of class c brings at most `best_c` (its best run, as in
  // points_coverable) and a server that starts here only `here_c` (the run from `block`), so a
  // child can pass (1) only if need <= sum_c unused_c * best_c - sum_c m_c * (best_c - here_c).
  // One row [slack, loss_0..loss_{C-1}] per (g, o): each multiset then costs C multiply-adds a
  // row. The child's own check is stronger (its deficits are lower), but building the child
  // (placing, walking, hashing, checking all spacings) costs far more, and most multisets fail.
  // Rows of the same form come from the relaxation's weights kept at the next blocks.
  void lookahead(int block) {
    std::vector<double>& rows = frames_[static_cast<std::size_t>(block)].lookahead;
    rows.clear();
    const int n = total_ - block;
    const std::size_t classes = classes_.size();
    for (std::size_t i = 0; i < std::min<std::size_t>(kLookaheadSpacings, spacings_.size()); ++i) {
      const int g = spacings_[i];
      if (g > std::max(1, n - 1)) continue;
      for (int o = 0; o < g; ++o) {
        const std::size_t row = rows.size();
        rows.resize(row + 1 + classes);
        const double need = gather_points(o, g, 1);  // the multiset covers `block` itself
        double cap = 0.0;
        for (std::size_t c = 0; c < classes; ++c) {
          const SearchClass& k = classes_[c];
          const double best = best_window(weighed_, (k.num_blocks - 1) / g + 1, k.throughput);
          // A server starting at `block` holds the points o, o + g, ... below its k blocks.
          const int held = o < k.num_blocks ? (k.num_blocks - o + g - 1) / g : 0;
          cap += unused_[c] * best;
          rows[row + 1 + c] = best - first_window(weighed_, held, k.throughput);
        }
        rows[row] = cap - need / kSlack;
      }
    }
    // The same argument with the weights kept at the blocks just ahead, where the children
    // will stand (zero weight on the blocks before theirs).
    if (!limits_.prune_by_relaxation) return;
    for (int ahead = 1; ahead <= kLookaheadBlocks && block + ahead < total_; ++ahead) {
      const auto& kept = relaxation_[static_cast<std::size_t>(block + ahead)].kept;
      for (std::size_t i = 0; i < std::min(kLookaheadWeights, kept.size()); ++i) {
        const std::size_t row = rows.size();
        rows.resize(row + 1 + classes);
        const double need = weigh(kept[i], ahead);  // the weights count from block + ahead
        double cap = 0.0;
        for (std::size_t c = 0; c < classes; ++c) {
          const SearchClass& k = classes_[c];
          const double best = best_window(weighed_, k.num_blocks, k.throughput);
          cap += unused_[c] * best;
          rows[row + 1 + c] = best - first_window(weighed_, k.num_blocks, k.throughput);
        }
        rows[row] = cap - need / kSlack;
      }
    }
  }

  // Whether every completion of partial multiset m (the classes from order position oi on
  // still at zero) fails the row that failed last, which most multisets fail too: the classes
  // from oi on must still bring `rest`, at a loss of at least rest * (their least loss per unit
  // of throughput).
  [[nodiscard]] bool fails_last_failed_row(int block, std::span<const int> m, double rest, std::size_t oi) const {
    const std::vector<double>& rows = frames_[static_cast<std::size_t>(block)].lookahead;
    const std::size_t width = classes_.size() + 1, count = rows.size() / width;
    if (count == 0) return false;
    const double* row = &rows[(lookahead_first_ % count) * width];
    double loss = 0.0, least = std::numeric_limits<double>::infinity();
    for (std::size_t c = 0; c < classes_.size(); ++c) loss += m[c] * row[1 + c];
    for (std::size_t i = oi; i < order_.size(); ++i) {
      const std::size_t c = order_[i];
      if (usable(c, block)) least = std::min(least, row[1 + c] / classes_[c].throughput);
    }
    return loss + std::max(0.0, rest) * least > row[0];
  }

  // Whether multiset m at `block` passes every row; the row that failed last is tried first.
  [[nodiscard]] bool lookahead_passes(int block, std::span<const int> m) {
    const std::vector<double>& rows = frames_[static_cast<std::size_t>(block)].lookahead;
    const std::size_t width = classes_.size() + 1, count = rows.size() / width;
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t r = (lookahead_first_ + i) % count;
      const double* row = &rows[r * width];
      double loss = 0.0;
      for (std::size_t c = 0; c < classes_.size(); ++c) loss += m[c] * row[1 + c];
      if (loss > row[0]) {
        lookahead_first_ = r;
        return false;
      }
    }
    return true;
  }

  // Pruning (3), with the weights that pruned at this block before (deficit_ is this state's).
  bool kept_weights_prune(int block) {
    std::vector<Weights>& kept = relaxation_[static_cast<std::size_t>(block)].kept;
    for (std::size_t i = 0; i < kept.size(); ++i) {
      if (weights_prune(kept[i])) {
        if (i > 0) std::swap(kept[i], kept[i - 1]);  // the useful ones rise to the front
        return true;
      }
    }
    return false;
  }

  // Pruning (3) by a solve of the relaxation (unless this block is skipping), whose weights are
  // kept if they prune.
  bool relaxation_prunes(int block) {
    Relaxation& r = relaxation_[static_cast<std::size_t>(block)];
    if (r.skip > 0) {
      --r.skip;
      return false;
    }
    if (!relaxation_affordable_) return false;
    std::unique_ptr<ResidualLp>& lp =
        limits_.relaxations != nullptr ? limits_.relaxations->per_worker[static_cast<std::size_t>(worker_)] : lp_;
    if (!lp) lp = std::make_unique<ResidualLp>(total_, classes_, target_);
    ++relaxations_;
    nodes_ += kNodesPerRelaxation;
    const bool infeasible = lp->infeasible(block, deficit_, unused_, weights_);
    extra_work_ += relaxation_iterations_work(lp->last_iterations(), lp->columns());
    if (infeasible) {
      Weights w;
      for (std::size_t x = 0; x < weights_.size(); ++x) {
        if (weights_[x] > 0) w.push_back({static_cast<int>(x), weights_[x]});
      }
      if (weights_prune(w)) {
        r.kept.insert(r.kept.begin(), std::move(w));
        if (r.kept.size() > kept_per_block_) r.kept.pop_back();
        r.backoff = 0;
        return true;
      }
    }
    r.backoff = std::min(kMaxRelaxationSkip, std::max(1L, 2 * r.backoff));
    r.skip = r.backoff;
    return false;
  }

  // The check of pruning (1) with any weights w >= 0 on the blocks ahead: a server of class c
  // fills at most min(t_c, d_x) of block x, so it brings at most its best window of k_c blocks
  // of w_x * min(t_c, d_x); the unused servers together must bring sum_x w_x d_x. (Pruning (1)
  // is this with w = 1 on every g-th block, computed on those blocks alone.)
  //
  // Only blocks with both a weight and a deficit count, so they are gathered once and each
  // class's windows run over them alone (a quarter of the blocks ahead on the hard refutations,
  // where this check took a sixth of the time).
  [[nodiscard]] bool weights_prune(const Weights& w) {
    const double need = weigh(w, 0);
    double available = 0.0;
    for (std::size_t c = 0; c < classes_.size() && available * kSlack < need; ++c) {
      if (unused_[c] == 0) continue;
      available += unused_[c] * best_window(weighed_, classes_[c].num_blocks, classes_[c].throughput);
    }
    return need > available * kSlack * (1 + 1e-9);
  }

  // Gathers into weighed_ the points offset, offset + spacing, ... of the blocks ahead that have
  // a deficit, from the `from`-th block on (`at`: a point's index among all of them); returns
  // their deficits' sum.
  double gather_points(int offset, int spacing, int from) {
    double need = 0.0;
    weighed_.clear();
    for (int x = offset, j = 0; x < static_cast<int>(deficit_.size()); x += spacing, ++j) {
      if (x < from || deficit_[x] <= 0) continue;
      weighed_.push_back({j, 1.0, deficit_[x]});
      need += deficit_[x];
    }
    return need;
  }

  // Gathers into weighed_ the blocks ahead that have both a weight in w (whose `at` counts from
  // block `from` of deficit_) and a deficit; returns what they need, sum_x w_x d_x.
  double weigh(const Weights& w, int from) {
    double need = 0.0;
    weighed_.clear();
    for (const Weight& x : w) {
      const double d = deficit_[static_cast<std::size_t>(x.at + from)];
      if (d > 0) {
        need += x.weight * d;
        weighed_.push_back({x.at + from, x.weight, d});
      }
    }
    return need;
  }

  // The search is wide while most of its nodes are partial multisets: many classes, wide at
  // every block (the appendix-E swarms), where it rarely finishes. Wide at the first short block
  // alone, whose deficit is the whole target, it decides as well as any (five GPU classes:
  // 31,400 of `2800:31, 1200:38, 1800:15, 1200:19, 600:31` is refuted in 3 M nodes, a few
  // thousand of them partial).
  [[nodiscard]] bool wide() const { return wide_ && 2 * partial_nodes_ > nodes_; }

  // What the caps count: nodes, and what solves and listings cost beyond them.
  [[nodiscard]] long work() const { return nodes_ + extra_work_; }

  void tick() {
    ++nodes_;
    if (work() >= round_end_) out_of_time_ = true;  // unwinds to a restart
    if (work() >= (wide() ? limits_.wide_max_nodes : limits_.max_nodes)) stop();
    if (shared_.stopping()) stop();  // another worker decided
    if (work() < next_clock_check_) return;  // not a multiple of 1024: solves add more at once
    next_clock_check_ = work() + 1024;
    if (past_deadline()) stop();
  }

  // Unwinds the search for good (out of time, or another worker decided), proving nothing.
  void stop() {
    out_of_time_ = true;
    stopped_ = true;
  }

  [[nodiscard]] bool past_deadline() const {
    return std::chrono::steady_clock::now() > (wide() ? limits_.wide_deadline : limits_.deadline);
  }

  // Memoises a failure that was proven (not cut short by the clock).
  bool fail(const Key& k, bool ok) {
    if (!ok && !out_of_time_) {
      shared_.add_failure(k);
    }
    return ok;
  }

  Shared& shared_;  // failures (exact for partial multisets, by dominance for whole states)
  int worker_;
  // How this round takes the first short block's multisets: all of them in order, from the
  // worker's index on (early rounds), or one at a time from those the workers share (last round).
  enum class FirstShortBlock { own, rotated, shared };
  FirstShortBlock first_short_block_ = FirstShortBlock::own;  // consumed by the first branch()
  int split_block_ = -1;    // that block, when its multisets are decided class by class
  long shared_multisets_ = 0;  // complete multisets of split_block_ counted so far
  long ticket_ = -1;           // the index of the next one this worker takes
  int total_;
  std::vector<SearchClass> classes_;
  double target_;
  std::span<const double> values_;
  SearchLimits limits_;
  bool wide_ = false;  // some block's minimal multisets were too many (or too long) to list
  long listing_steps_ = 0;  // calls of minimal_multisets at the block being listed
  long partial_nodes_ = 0;  // nodes of choose(): partial multisets of such blocks
  long extra_work_ = 0;     // the nodes' worth of solves and listings beyond what nodes_ counts
  std::vector<double> coverage_;
  std::vector<double> deficit_;  // of the blocks from the current one on
  double grid_ = 0.0;  // the throughputs' grid (throughput_grid), 0: none, or too fine to list
  double sum_bits_ = 0.0;            // grid multiples unused_sums() lists
  std::vector<std::uint64_t> sums_;  // unused_sums()
  std::vector<int> spacings_;  // 1..kMaxSpacing, those that prune most often first
  std::size_t rotor_ = 0;
  std::vector<int> unused_;
  std::vector<std::vector<int>> starts_;
  std::vector<std::size_t> order_;
  std::vector<int> state_;  // state()
  std::vector<double> profile_;
  struct Frame {
    std::vector<double> reachable;
    std::vector<int> pick;
    std::vector<int> options;  // the minimal multisets, classes_.size() counts each
    std::vector<std::pair<double, std::size_t>> ranked;
    std::vector<double> lookahead;
  };
  std::vector<Frame> frames_;  // per block
  struct Relaxation {
    std::vector<Weights> kept;  // weights that pruned here, most useful first
    long skip = 0;                          // chances to let pass before the next solve
    long backoff = 0;
  };
  std::vector<Relaxation> relaxation_;  // per block
  std::size_t kept_per_block_;          // kKeptWeights, fewer on long models
  bool relaxation_affordable_ = true;
  std::unique_ptr<ResidualLp> lp_;      // built at the first solve: many searches need none
  std::vector<double> weights_;
  std::vector<Weighed> weighed_;  // the capacity checks' scratch
  long relaxations_ = 0;
  long by_weights_ = 0;
  std::size_t lookahead_first_ = 0;
  long dominated_ = 0;
  long looked_ahead_ = 0;
  long nodes_ = 0;
  long next_clock_check_ = 1024;
  bool out_of_time_ = false;  // unwinding, proving nothing: the round's budget ran out, or stop()
  bool stopped_ = false;      // stop(): no more rounds
  long round_end_ = std::numeric_limits<long>::max();  // the work at which this round restarts
  long restarts_ = 0;
};

}  // namespace

int usable_cpus() {
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
}

RelaxationCache::RelaxationCache() = default;
RelaxationCache::~RelaxationCache() = default;

SearchResult reach_target(int total_blocks, std::span<const SearchClass> classes, double target,
                          std::span<const double> coverage_values, const SearchLimits& limits,
                          std::span<const double> fixed_coverage) {
  if (!fixed_coverage.empty() && fixed_coverage.size() != static_cast<std::size_t>(total_blocks)) {
    throw std::invalid_argument("reach_target: fixed_coverage has " + std::to_string(fixed_coverage.size()) +
                                " blocks, the model " + std::to_string(total_blocks));
  }
  const int threads = std::max(1, limits.threads);
  if (limits.relaxations != nullptr && limits.relaxations->per_worker.size() < static_cast<std::size_t>(threads)) {
    limits.relaxations->per_worker.resize(static_cast<std::size_t>(threads));  // before any worker starts
  }
  if (threads == 1) {
    Shared shared(/*split=*/false);
    return TargetSearch(total_blocks, classes, target, coverage_values, fixed_coverage, limits, shared, 0).run();
  }
  Shared shared(/*split=*/true);
  std::vector<SearchResult> results(static_cast<std::size_t>(threads));
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(threads));
  {
    std::vector<std::jthread> workers;
    for (int w = 0; w < threads; ++w) {
      workers.emplace_back([&, w] {
        try {
          results[w] = TargetSearch(total_blocks, classes, target, coverage_values, fixed_coverage, limits, shared, w).run();
        } catch (...) {
          errors[w] = std::current_exception();
          shared.stop_all();
        }
      });
    }
  }
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  // Reached if any worker reached; unreachable if one worker's round failed on the whole tree,
  // or every worker exhausted its share of the last round.
  SearchResult all;
  all.outcome = SearchOutcome::unreachable;
  for (auto& r : results) {
    all.nodes += r.nodes;
    all.work += r.work;
    all.dominated += r.dominated;
    all.looked_ahead += r.looked_ahead;
    all.relaxations += r.relaxations;
    all.by_weights += r.by_weights;
    all.restarts += r.restarts;
    all.wide = all.wide || r.wide;
    if (r.outcome == SearchOutcome::reached && all.outcome != SearchOutcome::reached) {
      all.outcome = SearchOutcome::reached;
      all.starts = std::move(r.starts);
    } else if (r.outcome == SearchOutcome::out_of_time && all.outcome == SearchOutcome::unreachable) {
      all.outcome = SearchOutcome::out_of_time;
    }
  }
  if (all.outcome == SearchOutcome::out_of_time && shared.proven_unreachable()) all.outcome = SearchOutcome::unreachable;
  return all;
}

}  // namespace swarm::detail
