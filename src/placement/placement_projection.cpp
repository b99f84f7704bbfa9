#include "placement_projection.hpp"

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

namespace swarm::detail {

std::vector<Projection> tighter_projections(int total_blocks, std::span<const SearchClass> classes,
                                            std::size_t max_count) {
  double area = 0.0;
  for (const SearchClass& c : classes) area += c.throughput * c.num_blocks * c.count;
  area /= total_blocks;

  std::vector<Projection> found;
  for (int gap = 2; gap < total_blocks; ++gap) {
    // The offsets give at most two point counts, and the projected swarm depends on that only.
    for (int offset = 0; offset < gap; ++offset) {
      const int points = (total_blocks - offset + gap - 1) / gap;
      if (offset > 0 && points == (total_blocks - offset + gap) / gap) continue;  // as offset - 1
      Projection p{.gap = gap, .offset = offset, .total_blocks = points, .classes = {}, .area_bound = 0.0};
      std::map<std::pair<double, int>, int> merged;  // ordered: equal swarms compare equal below
      for (const SearchClass& c : classes) {
        merged[{c.throughput, std::min(p.total_blocks, (c.num_blocks - 1) / gap + 1)}] += c.count;
      }
      for (const auto& [key, count] : merged) {
        p.classes.push_back({key.first, key.second, count});
        p.area_bound += key.first * key.second * count;
      }
      p.area_bound /= p.total_blocks;
      if (p.area_bound < area * (1 - 1e-12)) found.push_back(std::move(p));
    }
  }
  const auto same_swarm = [](const Projection& a, const Projection& b) {
    if (a.total_blocks != b.total_blocks || a.classes.size() != b.classes.size()) return false;
    for (std::size_t c = 0; c < a.classes.size(); ++c) {
      const SearchClass& x = a.classes[c];
      const SearchClass& y = b.classes[c];
      if (std::tie(x.throughput, x.num_blocks, x.count) != std::tie(y.throughput, y.num_blocks, y.count)) return false;
    }
    return true;
  };
  std::stable_sort(found.begin(), found.end(),
                   [](const Projection& a, const Projection& b) { return a.area_bound < b.area_bound; });
  std::vector<Projection> distinct;
  for (Projection& p : found) {
    if (distinct.size() == max_count) break;
    const bool seen = std::any_of(distinct.begin(), distinct.end(), [&](const Projection& q) { return same_swarm(p, q); });
    if (!seen) distinct.push_back(std::move(p));
  }
  return distinct;
}

}  // namespace swarm::detail
