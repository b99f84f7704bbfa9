#pragma once
// Consistent hashing (Karger et al., STOC 1997) with virtual nodes, and the bounded-load
// assignment of Mirrokni, Thorup & Zadimoghaddam (SODA 2018). Pure data structure: the
// policies use it, and the tests check its defining properties on it directly.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "swarm/dispatch/types.hpp"

namespace swarm::dispatch {

/// SplitMix64's finaliser: a key's place on the ring (a bijection, so distinct sessions never
/// collide).
[[nodiscard]] std::uint64_t mix64(std::uint64_t x);

/// ceil((1 + eps) * balls / bins): the most keys a bucket may hold under bounded loads.
/// Throws std::invalid_argument unless eps > 0 and bins > 0.
[[nodiscard]] std::size_t bounded_load_cap(std::size_t balls, std::size_t bins, double eps);

class HashRing {
 public:
  /// Throws std::invalid_argument unless virtual_nodes >= 1.
  explicit HashRing(int virtual_nodes);

  /// Places `virtual_nodes` points for the bucket, at positions derived from its name only, so
  /// that a bucket has the same points in every view and every run. Throws if present. Points
  /// are merged into the ring at the next lookup, so that a thousand servers joining at once
  /// cost one sort, not a thousand merges (lookups are therefore not safe to run concurrently).
  void add(WorkerId bucket, std::string_view name);
  void remove(WorkerId bucket);  // no-op if absent

  [[nodiscard]] bool contains(WorkerId bucket) const;
  [[nodiscard]] std::size_t buckets() const { return buckets_.size(); }
  [[nodiscard]] bool empty() const { return buckets_.empty(); }
  [[nodiscard]] int virtual_nodes() const { return virtual_nodes_; }

  /// The bucket of the first point clockwise from the key (kNoWorker when empty).
  [[nodiscard]] WorkerId owner(std::uint64_t key) const;

  /// The key positions (mix64 of a key) that `bucket` owns, as closed intervals [first, last]:
  /// owner(key) == bucket exactly when mix64(key) lies in one. A joiner's arcs are where the
  /// keys that move to it come from, so nobody has to rehash every key.
  [[nodiscard]] std::vector<std::pair<std::uint64_t, std::uint64_t>> arcs(WorkerId bucket) const;

  /// Bounded loads: walk clockwise from the key and return the first bucket whose load is
  /// below `cap` (kNoWorker if none is). `load(bucket)` gives the current load.
  template <typename LoadFn>
  [[nodiscard]] WorkerId first_below(std::uint64_t key, std::size_t cap, LoadFn&& load) const {
    flush();
    if (points_.empty()) return kNoWorker;
    std::size_t i = successor(mix64(key));
    for (std::size_t step = 0; step < points_.size(); ++step, ++i) {
      const WorkerId b = points_[i % points_.size()].bucket;
      if (load(b) < cap) return b;
    }
    return kNoWorker;
  }

 private:
  struct Point {
    std::uint64_t position;
    WorkerId bucket;
  };
  [[nodiscard]] std::size_t successor(std::uint64_t position) const;
  void flush() const;  // merges pending_ into points_

  int virtual_nodes_;
  mutable std::vector<Point> points_;   // sorted by (position, bucket)
  mutable std::vector<Point> pending_;  // added, not merged yet
  std::vector<WorkerId> buckets_;       // sorted
  std::vector<std::vector<std::uint64_t>> positions_;  // by bucket id: its points
};

}  // namespace swarm::dispatch
