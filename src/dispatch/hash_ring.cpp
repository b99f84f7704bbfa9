// Consistent hashing with virtual nodes (Karger, Lehman, Leighton, Panigrahy, Levine & Lewin,
// STOC 1997) and the cap of bounded loads (Mirrokni, Thorup & Zadimoghaddam, SODA 2018).
#include "swarm/dispatch/hash_ring.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <stdexcept>
#include <string>

#include "option_error.hpp"
#include "swarm/util/random.hpp"

namespace swarm::dispatch {

std::uint64_t mix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

std::size_t bounded_load_cap(std::size_t balls, std::size_t bins, double eps) {
  if (!(eps > 0.0)) {
    detail::reject_option("hash.eps", eps, "bounded loads need eps > 0");
  }
  if (bins == 0) throw std::invalid_argument("bounded_load_cap: no bins");
  // The cap is ceil((1 + eps) m / n). Computed in doubles (exact for any realistic m), with a
  // tolerance so that (1 + 0.25) * 8 / 2 = 5 does not become 6 by rounding.
  const double c = (1.0 + eps) * static_cast<double>(balls) / static_cast<double>(bins);
  const auto cap = static_cast<std::size_t>(std::ceil(c - 1e-9 * std::max(1.0, c)));
  return std::max<std::size_t>(cap, 1);
}

HashRing::HashRing(int virtual_nodes) : virtual_nodes_(virtual_nodes) {
  if (virtual_nodes < 1) {
    detail::reject_option("hash.virtual_nodes", virtual_nodes, "a bucket needs at least one point on the ring");
  }
}

void HashRing::add(WorkerId bucket, std::string_view name) {
  const auto it = std::lower_bound(buckets_.begin(), buckets_.end(), bucket);
  if (it != buckets_.end() && *it == bucket) {
    throw std::invalid_argument("HashRing::add: bucket " + std::to_string(bucket) + " is present");
  }
  buckets_.insert(it, bucket);
  // Point r of a bucket sits at derive_seed(r, name): a function of the name alone, so every
  // client that knows the bucket places it identically (the "views" of the CS 294-8 lecture).
  if (positions_.size() <= bucket) positions_.resize(static_cast<std::size_t>(bucket) + 1);
  positions_[bucket].clear();
  for (int r = 0; r < virtual_nodes_; ++r) {
    const std::uint64_t position = derive_seed(static_cast<std::uint64_t>(r), name);
    positions_[bucket].push_back(position);
    pending_.push_back({position, bucket});
  }
}

void HashRing::flush() const {
  if (pending_.empty()) return;
  const auto less = [](const Point& a, const Point& b) {
    return a.position != b.position ? a.position < b.position : a.bucket < b.bucket;
  };
  std::sort(pending_.begin(), pending_.end(), less);
  std::vector<Point> merged;
  merged.reserve(points_.size() + pending_.size());
  std::merge(points_.begin(), points_.end(), pending_.begin(), pending_.end(), std::back_inserter(merged), less);
  points_ = std::move(merged);
  pending_.clear();
}

void HashRing::remove(WorkerId bucket) {
  const auto it = std::lower_bound(buckets_.begin(), buckets_.end(), bucket);
  if (it == buckets_.end() || *it != bucket) return;
  buckets_.erase(it);
  std::erase_if(points_, [bucket](const Point& p) { return p.bucket == bucket; });
  std::erase_if(pending_, [bucket](const Point& p) { return p.bucket == bucket; });
  positions_[bucket].clear();
}

bool HashRing::contains(WorkerId bucket) const {
  return std::binary_search(buckets_.begin(), buckets_.end(), bucket);
}

std::size_t HashRing::successor(std::uint64_t position) const {
  const auto it = std::lower_bound(points_.begin(), points_.end(), position,
                                   [](const Point& p, std::uint64_t x) { return p.position < x; });
  return it == points_.end() ? 0 : static_cast<std::size_t>(it - points_.begin());
}

WorkerId HashRing::owner(std::uint64_t key) const {
  flush();
  if (points_.empty()) return kNoWorker;
  return points_[successor(mix64(key))].bucket;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> HashRing::arcs(WorkerId bucket) const {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  if (!contains(bucket)) return out;
  flush();
  for (const std::uint64_t p : positions_[bucket]) {
    // This point's index in the ring; a point sharing its predecessor's position owns nothing
    // (lookups stop at the first of equal positions).
    const auto it = std::lower_bound(points_.begin(), points_.end(), Point{p, bucket}, [](const Point& a, const Point& b) {
      return a.position != b.position ? a.position < b.position : a.bucket < b.bucket;
    });
    const auto i = static_cast<std::size_t>(it - points_.begin());
    if (i > 0) {
      if (points_[i - 1].position != p) out.emplace_back(points_[i - 1].position + 1, p);
      continue;
    }
    // The first point also owns the wrap-around: everything after the last point.
    out.emplace_back(0, p);
    const std::uint64_t last = points_.back().position;
    if (last != p && last != UINT64_MAX) out.emplace_back(last + 1, UINT64_MAX);
  }
  return out;
}

}  // namespace swarm::dispatch
