#pragma once
// Internal to placement.cpp: relaxations of a placement question that are the same question,
// smaller, so that the exact search can decide them.
//
// Keep only the blocks r, r+g, r+2g, ... (the points). A span of k blocks holds a run of at most
// (k-1)/g+1 consecutive points, so every placement maps to a placement of the projected swarm
// (same throughputs, lengths (k-1)/g+1 clipped to the points; each server on the run its span
// holds, grown to that length) in which every point gets at least its block's throughput. So a
// target no projected placement reaches, no placement reaches. spacing_bound() is the area
// bound of these swarms (offset 0); the search on one sees the integrality that the averaging
// misses: `500:24, 900:24, 600:23, 2600:6` (16 each) on 80 blocks cannot reach 12,000, which
// the search on the 80 blocks did not decide in 60 s, nor CBC; on the 14 points of spacing 6
// (lengths 4, 4, 4, 1) it is refuted in about a second.
#include <span>
#include <vector>

#include "placement_search.hpp"

namespace swarm::detail {

struct Projection {
  int gap = 1;
  int offset = 0;
  int total_blocks = 0;  // the points
  std::vector<SearchClass> classes;  // servers of equal throughput and projected length merged
  double area_bound = 0.0;           // sum_c t_c * k_c * n_c / total_blocks
};

/// The distinct projections (gap >= 2) whose area bound is below the swarm's own
/// (sum t k n / L), lowest first, at most `max_count`: where the average over the points is
/// already tighter, the points' integrality is most likely to cut further.
[[nodiscard]] std::vector<Projection> tighter_projections(int total_blocks, std::span<const SearchClass> classes,
                                                          std::size_t max_count);

}  // namespace swarm::detail
