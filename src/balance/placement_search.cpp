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
// Pruning: (1) the blocks still to come need sum max(0, target - coverage) more coverage than
// the unused servers can bring at most; (2) a state (block, unused servers per class, coverage
// of the blocks to come) that failed once fails again: failures are memoised by a 128-bit hash.
#include "placement_search.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <unordered_set>

namespace swarm::detail {
namespace {

struct Key {
  std::uint64_t a, b;
  friend bool operator==(const Key&, const Key&) = default;
};
struct KeyHash {
  std::size_t operator()(const Key& k) const { return k.a ^ (k.b * 0x9E3779B97F4A7C15ULL); }
};

// More minimal multisets than this at one block and the search gives up as inconclusive.
constexpr std::size_t kMaxOptions = 20000;

class TargetSearch {
 public:
  TargetSearch(int total_blocks, std::span<const SearchClass> classes, double target,
               std::chrono::steady_clock::time_point deadline)
      : total_(total_blocks),
        classes_(classes.begin(), classes.end()),
        target_(target * (1 - 1e-12)),  // sums in another order may round a hair lower
        deadline_(deadline),
        coverage_(static_cast<std::size_t>(total_blocks), 0.0),
        unused_(classes.size()),
        starts_(classes.size()) {
    for (std::size_t c = 0; c < classes_.size(); ++c) unused_[c] = classes_[c].count;
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

  Key key(int block) const {
    // Two independent FNV-style hashes over the block, the unused counts and the coverage ahead.
    std::uint64_t a = 1469598103934665603ULL, b = 0x84222325CBF29CE4ULL;
    const auto mix = [&](std::uint64_t v) {
      a = (a ^ v) * 1099511628211ULL;
      b = (b ^ (v + 0x9E3779B97F4A7C15ULL + (b << 6) + (b >> 2))) * 0xFF51AFD7ED558CCDULL;
    };
    mix(static_cast<std::uint64_t>(block));
    for (int u : unused_) mix(static_cast<std::uint64_t>(u));
    for (int x = block; x < total_; ++x) {
      std::uint64_t bits;
      std::memcpy(&bits, &coverage_[x], sizeof bits);
      mix(bits);
    }
    return {a, b};
  }

  // Every multiset of available servers whose sum reaches `deficit` and in which each member
  // is necessary. With classes in decreasing throughput, the last class used holds the
  // smallest member, and it must take exactly the count that first reaches the deficit.
  void minimal_multisets(int block, double deficit, std::size_t oi, double sum, std::vector<int>& pick,
                         std::vector<std::vector<int>>& out, std::span<const double> reachable, long& work) const {
    // Dead ends (the classes left cannot reach the deficit) are cut before they are walked, and
    // the walk itself is budgeted: too wide a branching makes the search inconclusive.
    if (oi == order_.size() || out.size() > kMaxOptions || ++work > 50 * static_cast<long>(kMaxOptions)) return;
    if (sum + reachable[oi] < deficit * (1 - 1e-12)) return;
    const std::size_t c = order_[oi];
    const SearchClass& k = classes_[c];
    if (!usable(c, block)) {
      minimal_multisets(block, deficit, oi + 1, sum, pick, out, reachable, work);
      return;
    }
    const int reach = static_cast<int>(std::ceil((deficit - sum) / k.throughput - 1e-12));
    if (reach >= 1 && reach <= unused_[c]) {
      pick[c] = reach;
      out.push_back(pick);
    }
    for (int n = 0; n < std::min(unused_[c] + 1, reach); ++n) {
      pick[c] = n;
      minimal_multisets(block, deficit, oi + 1, sum + n * k.throughput, pick, out, reachable, work);
    }
    pick[c] = 0;
  }

  // Whether class c can still start a server at `block`.
  [[nodiscard]] bool usable(std::size_t c, int block) const {
    return unused_[c] > 0 && total_ - classes_[c].num_blocks > block && classes_[c].throughput > 0;
  }

  // Pruning (1): a server of class c can fill at most min(deficit, t_c) of each block it
  // covers, so the unused servers together fill at most sum_c unused_c * (best window of
  // sum min(deficit, t_c)); and no block can take more than all unused servers give.
  bool enough_left(int block) {
    deficit_.assign(static_cast<std::size_t>(total_ - block), 0.0);
    double needed = 0.0, worst = 0.0, all = 0.0;
    for (int x = block; x < total_; ++x) {
      const double d = std::max(0.0, target_ - coverage_[x]);
      deficit_[x - block] = d;
      needed += d;
      worst = std::max(worst, d);
    }
    double available = 0.0;
    for (std::size_t c = 0; c < classes_.size(); ++c) {
      if (unused_[c] == 0) continue;
      const SearchClass& k = classes_[c];
      all += unused_[c] * k.throughput;
      const int len = std::min(k.num_blocks, total_ - block);
      double window = 0.0, best = 0.0;
      for (int x = 0; x < total_ - block; ++x) {
        window += std::min(deficit_[x], k.throughput);
        if (x >= len) window -= std::min(deficit_[x - len], k.throughput);
        best = std::max(best, window);
      }
      available += unused_[c] * best;
    }
    const double slack = 1 + 1e-12;
    return worst <= all * slack && needed <= available * slack;
  }

  bool dfs(int block) {
    // Walk over blocks that already reach the target, starting each class's leftovers at L - k.
    std::vector<std::pair<std::size_t, int>> forced;
    const auto undo_forced = [&] {
      for (auto it = forced.rbegin(); it != forced.rend(); ++it) {
        unplace(it->first, total_ - classes_[it->first].num_blocks, it->second);
      }
    };
    for (; block < total_; ++block) {
      for (std::size_t c = 0; c < classes_.size(); ++c) {
        if (total_ - classes_[c].num_blocks == block && unused_[c] > 0) {
          forced.emplace_back(c, unused_[c]);
          place(c, block, unused_[c]);
        }
      }
      if (coverage_[block] < target_) break;
    }
    if (block == total_) return true;

    if ((++nodes_ & 1023) == 0 && std::chrono::steady_clock::now() > deadline_) out_of_time_ = true;
    if (out_of_time_) {
      undo_forced();
      return false;
    }

    if (!enough_left(block)) {
      undo_forced();
      return false;
    }
    const Key k = key(block);
    if (failed_.contains(k)) {
      undo_forced();
      return false;
    }

    std::vector<std::vector<int>> options;
    std::vector<int> pick(classes_.size(), 0);
    // reachable[i]: what the classes from order position i on can still add at this block.
    std::vector<double> reachable(order_.size() + 1, 0.0);
    for (std::size_t i = order_.size(); i-- > 0;) {
      const std::size_t c = order_[i];
      reachable[i] = reachable[i + 1] + (usable(c, block) ? unused_[c] * classes_[c].throughput : 0.0);
    }
    long work = 0;
    minimal_multisets(block, target_ - coverage_[block], 0, 0.0, pick, options, reachable, work);
    if (options.size() > kMaxOptions || work > 50 * static_cast<long>(kMaxOptions)) {
      // Many classes and a deep deficit: the branching is too wide for an exhaustive search.
      out_of_time_ = true;
      undo_forced();
      return false;
    }
    // Smallest overshoot first, then the option covering furthest: finds reachable targets fast.
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
    if (!out_of_time_) {
      if (failed_.size() > 4'000'000) failed_.clear();  // bound the memory (~100 MB)
      failed_.insert(k);
    }
    undo_forced();
    return false;
  }

  int total_;
  std::vector<SearchClass> classes_;
  double target_;
  std::chrono::steady_clock::time_point deadline_;
  std::vector<double> coverage_;
  std::vector<double> deficit_;
  std::vector<int> unused_;
  std::vector<std::vector<int>> starts_;
  std::vector<std::size_t> order_;
  std::unordered_set<Key, KeyHash> failed_;
  long nodes_ = 0;
  bool out_of_time_ = false;
};

}  // namespace

SearchResult reach_target(int total_blocks, std::span<const SearchClass> classes, double target,
                          std::chrono::steady_clock::time_point deadline) {
  return TargetSearch(total_blocks, classes, target, deadline).run();
}

}  // namespace swarm::detail
