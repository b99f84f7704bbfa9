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
// if the sweep fails everywhere, no placement reaches the target.
//
// Pruning: (1) the blocks still to come (all of them, or every g-th) need more coverage than
// the unused servers can bring at most (enough_left); (1') the unused area cannot pay for the
// deficits rounded up to coverage values (rounded_area_suffices); (2) a state (block, unused
// servers per class, coverage of the blocks to come) that failed once fails again: failures
// are memoised by a 128-bit hash.
//
// The search is a decision procedure; placement.cpp chooses the targets.
#include "placement_search.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <unordered_set>
#include <utility>
#include <vector>

namespace swarm::detail {
namespace {

struct Key {
  std::uint64_t a, b;
  friend bool operator==(const Key&, const Key&) = default;
};
struct KeyHash {
  std::size_t operator()(const Key& k) const { return k.a ^ (k.b * 0x9E3779B97F4A7C15ULL); }
};

// Spacings tried by the capacity pruning: enough to span the longest GPU spans of a model.
constexpr int kMaxSpacing = 40;
constexpr int kTriedSpacings = 6;
constexpr double kSlack = 1 + 1e-12;  // sums in another order may round a hair differently

class TargetSearch {
 public:
  TargetSearch(int total_blocks, std::span<const SearchClass> classes, double target,
               std::span<const double> coverage_values, const SearchLimits& limits)
      : total_(total_blocks),
        classes_(classes.begin(), classes.end()),
        target_(target * (1 - 1e-12)),  // sums in another order may round a hair lower
        values_(coverage_values),
        limits_(limits),
        coverage_(static_cast<std::size_t>(total_blocks), 0.0),
        unused_(classes.size()),
        starts_(classes.size()) {
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
    const bool ok = dfs(0);
    r.nodes = nodes_;
    if (ok) {
      r.outcome = SearchOutcome::reached;
      r.starts = starts_;
    } else {
      r.outcome = out_of_time_ ? SearchOutcome::out_of_time : SearchOutcome::unreachable;
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
    return {a, b};
  }

  // Every multiset of available servers whose sum reaches `deficit` and in which each member
  // is necessary, up to limits_.listed_options of them (false when there are more). With classes in
  // decreasing throughput, the last class used holds the smallest member, and it must take
  // exactly the count that first reaches the deficit.
  bool minimal_multisets(int block, double deficit, std::size_t oi, double sum, std::vector<int>& pick,
                         std::vector<std::vector<int>>& out, std::span<const double> reachable) const {
    if (oi == order_.size() || sum + reachable[oi] < deficit * (1 - 1e-12)) return true;
    const std::size_t c = order_[oi];
    if (!usable(c, block)) return minimal_multisets(block, deficit, oi + 1, sum, pick, out, reachable);
    const double t = classes_[c].throughput;
    const int reach = static_cast<int>(std::ceil((deficit - sum) / t - 1e-12));
    if (reach >= 1 && reach <= unused_[c]) {
      if (out.size() == limits_.listed_options) return false;
      pick[c] = reach;
      out.push_back(pick);
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
    if (!values_.empty() && !rounded_area_suffices()) return false;
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

  // Pruning (1'): every unused server will lie wholly in the blocks to come, and what it adds
  // to a block is a coverage value, so the unused area must pay for each deficit rounded up to
  // the next coverage value. Strong when the target leaves little slack: a block short by a
  // little still takes a whole server.
  [[nodiscard]] bool rounded_area_suffices() {
    double area = 0.0, rounded = 0.0;
    for (std::size_t c = 0; c < classes_.size(); ++c) {
      area += unused_[c] * classes_[c].throughput * classes_[c].num_blocks;
    }
    double last_deficit = -1.0, last_rounded = 0.0;
    for (double d : deficit_) {
      if (d <= 0.0) continue;
      if (d != last_deficit) {  // runs of equal deficits (untouched blocks) are common
        const auto it = std::lower_bound(values_.begin(), values_.end(), d * (1 - 1e-12));
        last_deficit = d;
        last_rounded = it == values_.end() ? d : std::max(d, *it);
      }
      rounded += last_rounded;
    }
    return rounded <= area * kSlack;
  }

  [[nodiscard]] bool spacing_coverable(int spacing) {
    for (int o = 0; o < spacing; ++o) {
      if (!points_coverable(o, spacing)) return false;
    }
    return true;
  }

  [[nodiscard]] bool points_coverable(int offset, int spacing) {
    double need = 0.0;
    points_.clear();
    for (int x = offset; x < static_cast<int>(deficit_.size()); x += spacing) {
      points_.push_back(deficit_[x]);
      need += deficit_[x];
    }
    double available = 0.0;
    for (std::size_t c = 0; c < classes_.size() && available * kSlack < need; ++c) {
      if (unused_[c] == 0) continue;
      const SearchClass& k = classes_[c];
      const std::size_t run = static_cast<std::size_t>((k.num_blocks - 1) / spacing + 1);
      double window = 0.0, best = 0.0;
      for (std::size_t j = 0; j < points_.size(); ++j) {
        window += std::min(points_[j], k.throughput);
        if (j >= run) window -= std::min(points_[j - run], k.throughput);
        best = std::max(best, window);
      }
      available += unused_[c] * best;
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
    const Key k = key(block, 0);
    if (failed_.contains(k)) return false;

    std::vector<double> reachable(order_.size() + 1, 0.0);  // what order_[i..] can add here
    for (std::size_t i = order_.size(); i-- > 0;) {
      const std::size_t c = order_[i];
      reachable[i] = reachable[i + 1] + (usable(c, block) ? unused_[c] * classes_[c].throughput : 0.0);
    }
    std::vector<std::vector<int>> options;
    std::vector<int> pick(classes_.size(), 0);
    if (!minimal_multisets(block, target_ - coverage_[block], 0, 0.0, pick, options, reachable)) {
      wide_ = true;
      return fail(k, choose(block, 0));
    }
    std::vector<std::pair<double, std::size_t>> ranked;
    for (std::size_t o = 0; o < options.size(); ++o) {
      double sum = 0.0, reach = 0.0;
      for (std::size_t c = 0; c < classes_.size(); ++c) {
        sum += options[o][c] * classes_[c].throughput;
        reach += options[o][c] * classes_[c].num_blocks;
      }
      ranked.emplace_back(sum - 1e-9 * reach, o);
    }
    std::sort(ranked.begin(), ranked.end());
    for (const auto& [score, o] : ranked) {
      for (std::size_t c = 0; c < classes_.size(); ++c) {
        if (options[o][c] > 0) place(c, block, options[o][c]);
      }
      if (dfs(block + 1)) return true;
      for (std::size_t c = classes_.size(); c-- > 0;) {
        if (options[o][c] > 0) unplace(c, block, options[o][c]);
      }
      if (out_of_time_) break;
    }
    return fail(k, false);
  }

  // Block `block` falls short; the classes before order position `oi` have had their say. Picks
  // how many servers of class order_[oi] start here: either exactly as many as first reach the
  // target (the multiset is complete and minimal: its smallest member is necessary) or fewer,
  // leaving the rest to the classes after it. Every partial choice is a node of its own, so the
  // pruning cuts a wide multiset before it is spelled out.
  bool choose(int block, std::size_t oi) {
    tick();
    if (out_of_time_) return false;
    const double deficit = target_ - coverage_[block];
    double reachable = 0.0;  // what the classes from oi on can still add here
    for (std::size_t i = oi; i < order_.size(); ++i) {
      if (usable(order_[i], block)) reachable += unused_[order_[i]] * classes_[order_[i]].throughput;
    }
    if (reachable < deficit * (1 - 1e-12) || !enough_left(block, false)) return false;
    const Key k = key(block, oi + 1);  // oi + 1: position 0 is branch()'s key
    if (failed_.contains(k)) return false;

    const std::size_t c = order_[oi];
    if (!usable(c, block)) return fail(k, choose(block, oi + 1));
    // This class's count is decided here, before the classes after it.
    const int reach = static_cast<int>(std::ceil(deficit / classes_[c].throughput - 1e-12));
    if (reach <= unused_[c]) {  // complete the multiset with this class
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
    return fail(k, false);
  }

  void tick() {
    if (++nodes_ >= (wide_ ? limits_.wide_max_nodes : limits_.max_nodes)) out_of_time_ = true;
    if ((nodes_ & 1023) != 0) return;
    if (std::chrono::steady_clock::now() > (wide_ ? limits_.wide_deadline : limits_.deadline)) out_of_time_ = true;
  }

  // Memoises a failure that was proven (not cut short by the clock).
  bool fail(const Key& k, bool ok) {
    if (!ok && !out_of_time_) {
      if (failed_.size() > 4'000'000) failed_.clear();  // bound the memory (~100 MB)
      failed_.insert(k);
    }
    return ok;
  }

  int total_;
  std::vector<SearchClass> classes_;
  double target_;
  std::span<const double> values_;
  SearchLimits limits_;
  bool wide_ = false;  // some block's minimal multisets were too many to list
  std::vector<double> coverage_;
  std::vector<double> deficit_;  // of the blocks from the current one on
  std::vector<double> points_;
  std::vector<int> spacings_;  // 1..kMaxSpacing, those that prune most often first
  std::size_t rotor_ = 0;
  std::vector<int> unused_;
  std::vector<std::vector<int>> starts_;
  std::vector<std::size_t> order_;
  std::unordered_set<Key, KeyHash> failed_;
  long nodes_ = 0;
  bool out_of_time_ = false;
};

}  // namespace

SearchResult reach_target(int total_blocks, std::span<const SearchClass> classes, double target,
                          std::span<const double> coverage_values, const SearchLimits& limits) {
  return TargetSearch(total_blocks, classes, target, coverage_values, limits).run();
}

}  // namespace swarm::detail
