#pragma once
// Internal to placement_search.cpp: what the exact search remembers of the states that failed,
// shared by its workers. Pure data structures (no solver, no I/O), tested on their own.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <unordered_map>
#include <vector>

namespace swarm::detail {
// Internal linkage, as when these lived in placement_search.cpp: the compiler then inlines them
// as it did there (with external linkage the hard refutations ran 3-5% slower, same nodes). Each
// including file (the search, its tests) gets its own copy.
namespace {

// A state's 128-bit hash (TargetSearch::key: the block, the unused servers, the coverage ahead).
struct Key {
  std::uint64_t a, b;
  friend bool operator==(const Key&, const Key&) = default;
};

// The memo of failed states met again exactly (Dominance rules out those covering less): keys by
// open addressing with linear probing in one flat array (a node-based set spent 15% of a hard
// refutation in its lookups' cache misses). Keys have `a` odd
// (TargetSearch::key), so {0, 0} marks an empty slot.
class KeySet {
 public:
  [[nodiscard]] bool contains(const Key& k) const {
    if (slots_.empty()) return false;
    for (std::size_t i = slot(k);; i = (i + 1) & mask()) {
      if (slots_[i] == k) return true;
      if (slots_[i].a == 0) return false;
    }
  }
  /// Adds k; a set that would hold more than `max_size` starts again empty (bounds the memory).
  void insert(const Key& k, std::size_t max_size) {
    if (2 * (size_ + 1) > slots_.size()) {
      if (size_ + 1 > max_size && !slots_.empty()) {
        std::fill(slots_.begin(), slots_.end(), Key{0, 0});
        size_ = 0;
      } else {
        grow();
      }
    }
    for (std::size_t i = slot(k);; i = (i + 1) & mask()) {
      if (slots_[i] == k) return;
      if (slots_[i].a == 0) {
        slots_[i] = k;
        ++size_;
        return;
      }
    }
  }

 private:
  [[nodiscard]] std::size_t mask() const { return slots_.size() - 1; }
  [[nodiscard]] std::size_t slot(const Key& k) const { return static_cast<std::size_t>(k.a >> 7) & mask(); }
  void grow() {
    std::vector<Key> old(std::max<std::size_t>(1024, 2 * slots_.size()), Key{0, 0});
    old.swap(slots_);
    for (const Key& k : old) {
      if (k.a == 0) continue;
      std::size_t i = slot(k);
      while (slots_[i].a != 0) i = (i + 1) & mask();
      slots_[i] = k;
    }
  }
  std::vector<Key> slots_;
  std::size_t size_ = 0;
};

// A sweep state's block and unused servers per class (`state`: the block, then the counts),
// hashed to find its bucket of dominance profiles.
[[nodiscard]] inline std::uint64_t state_hash(std::span<const int> state) {
  std::uint64_t h = 1469598103934665603ULL;
  for (int v : state) h = (h ^ static_cast<std::uint64_t>(v)) * 1099511628211ULL;
  return h;
}

// Failed sweep states, for pruning by dominance: a state fails if a failed one at the same block
// with the same unused servers covers every block to come at least as well (coverage capped at
// the target, above which it makes no difference). Per (block, unused servers): up to
// kPerBucket coverage profiles, stored flat with their sums, which rule most of them out at once.
// A bucket holds its state itself, not only the hash: a proof must not rest on a collision of
// 64 bits between two of millions of states.
class Dominance {
 public:
  [[nodiscard]] bool dominated(std::uint64_t hash, std::span<const int> state, std::span<const double> profile) const {
    const auto it = buckets_.find(hash);
    if (it == buckets_.end()) return false;
    const Bucket& b = it->second;
    if (!std::ranges::equal(b.state, state)) return false;  // another state, the same hash
    const double sum = total(profile);
    for (std::size_t i = 0; i < b.sums.size(); ++i) {
      if (b.sums[i] < sum) continue;
      const double* q = &b.profiles[i * profile.size()];
      std::size_t x = 0;
      while (x < profile.size() && profile[x] <= q[x]) ++x;
      if (x == profile.size()) return true;
    }
    return false;
  }

  void add(std::uint64_t hash, std::span<const int> state, std::span<const double> profile, std::size_t max_profiles) {
    if (size_ > max_profiles) {  // bound the memory
      buckets_.clear();
      size_ = 0;
    }
    Bucket& b = buckets_[hash];
    if (!std::ranges::equal(b.state, state)) {  // new, or another state's: this one takes it over
      size_ -= b.sums.size();
      b = Bucket{};
      b.state.assign(state.begin(), state.end());
    }
    const std::size_t n = profile.size();
    // Padded up a little: the sums only rule out, and a profile equal to a stored one must not
    // be ruled out by a sum that rounds differently.
    const double sum = total(profile) * (1 + 1e-9) + 1e-9;
    // The new profile makes those it covers redundant; their places go to it (or, in a full
    // bucket, to the newest: the search tends to come back to states near its recent ones).
    std::size_t slot = b.sums.size();
    for (std::size_t i = 0; i < b.sums.size(); ++i) {
      if (b.sums[i] > sum) continue;  // more in all than the new one: not covered by it
      const double* q = &b.profiles[i * n];
      std::size_t x = 0;
      while (x < n && q[x] <= profile[x]) ++x;
      if (x == n) {
        slot = i;
        break;
      }
    }
    if (slot == b.sums.size() && slot == kPerBucket) slot = b.next++ % kPerBucket;
    if (slot == b.sums.size()) {
      b.sums.push_back(sum);
      b.profiles.insert(b.profiles.end(), profile.begin(), profile.end());
      ++size_;
    } else {
      b.sums[slot] = sum;
      std::copy(profile.begin(), profile.end(), b.profiles.begin() + static_cast<std::ptrdiff_t>(slot * n));
    }
  }

 private:
  static constexpr std::size_t kPerBucket = 64;
  struct Bucket {
    std::vector<int> state;
    std::vector<double> sums;
    std::vector<double> profiles;
    std::size_t next = 0;  // the slot a full bucket gives up next
  };
  static double total(std::span<const double> p) {
    double s = 0.0;
    for (double v : p) s += v;
    return s;
  }
  std::unordered_map<std::uint64_t, Bucket> buckets_;
  std::size_t size_ = 0;
};

// What the workers of one search share. A state's failure does not depend on the path to it,
// so every worker's proven failures prune every other's; sharded locks keep the workers from
// queueing on one another. Workers take the first short block's multisets one at a time.
class Shared {
 public:
  explicit Shared(bool split) : split_(split) {}

  [[nodiscard]] bool split() const { return split_; }
  [[nodiscard]] bool has_failed(const Key& k) {
    MemoShard& s = memo_[k.b % kShards];
    const std::lock_guard lock(s.mutex);
    return s.keys.contains(k);
  }
  void add_failure(const Key& k) {
    MemoShard& s = memo_[k.b % kShards];
    const std::lock_guard lock(s.mutex);
    s.keys.insert(k, kMaxFailures / kShards);
  }
  [[nodiscard]] bool dominated(std::span<const int> state, std::span<const double> profile) {
    const std::uint64_t hash = state_hash(state);
    DominanceShard& s = dominance_[hash % kShards];
    const std::lock_guard lock(s.mutex);
    return s.dominance.dominated(hash, state, profile);
  }
  void add_dominance(std::span<const int> state, std::span<const double> profile) {
    const std::uint64_t hash = state_hash(state);
    DominanceShard& s = dominance_[hash % kShards];
    const std::lock_guard lock(s.mutex);
    s.dominance.add(hash, state, profile, kMaxProfiles / kShards);  // ~100 MB at 80 blocks
  }
  /// The index of the next root multiset to try.
  std::size_t next_root_option() { return next_root_option_.fetch_add(1, std::memory_order_relaxed); }
  /// A worker reached the target, or failed (out of memory): the others stop, proving nothing.
  void stop_all() { stop_.store(true, std::memory_order_relaxed); }
  [[nodiscard]] bool stopping() const { return stop_.load(std::memory_order_relaxed); }
  /// A worker's round searched the whole tree alone and failed: the target is unreachable.
  void prove_unreachable() {
    unreachable_.store(true, std::memory_order_relaxed);
    stop_all();
  }
  [[nodiscard]] bool proven_unreachable() const { return unreachable_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t kShards = 64;
  static constexpr std::size_t kMaxFailures = 4'000'000;  // at most 128 MB of keys
  static constexpr std::size_t kMaxProfiles = 300'000;  // of ~40 blocks on average
  struct MemoShard {
    std::mutex mutex;
    KeySet keys;
  };
  struct DominanceShard {
    std::mutex mutex;
    Dominance dominance;
  };
  bool split_;
  std::array<MemoShard, kShards> memo_;
  std::array<DominanceShard, kShards> dominance_;
  std::atomic<std::size_t> next_root_option_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> unreachable_{false};
};

}  // namespace
}  // namespace swarm::detail
