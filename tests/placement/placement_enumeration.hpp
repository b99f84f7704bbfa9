#pragma once
// Test helper: the optimum by enumeration, for the placement tests to check the search against.
#include <algorithm>
#include <cstddef>
#include <functional>
#include <vector>

#include "../../src/placement/placement_search.hpp"

namespace swarm::test_support {

// The best bottleneck the classes can make on top of `fixed` (one value per block; zeros for a
// swarm alone), by enumeration over classes: each class's starts as a nondecreasing sequence (its
// servers are interchangeable), so swarms of a dozen servers on a dozen blocks stay cheap.
inline double enumerate_on_top(const std::vector<double>& fixed, const std::vector<detail::SearchClass>& classes) {
  std::vector<double> coverage = fixed;
  const int total = static_cast<int>(fixed.size());
  double best = 0.0;
  std::function<void(std::size_t, int, int)> rec = [&](std::size_t c, int left, int from) {
    if (c == classes.size()) {
      best = std::max(best, *std::min_element(coverage.begin(), coverage.end()));
      return;
    }
    if (left == 0) {
      rec(c + 1, c + 1 < classes.size() ? classes[c + 1].count : 0, 0);
      return;
    }
    for (int s = from; s + classes[c].num_blocks <= total; ++s) {
      for (int b = s; b < s + classes[c].num_blocks; ++b) coverage[static_cast<std::size_t>(b)] += classes[c].throughput;
      rec(c, left - 1, s);
      for (int b = s; b < s + classes[c].num_blocks; ++b) coverage[static_cast<std::size_t>(b)] -= classes[c].throughput;
    }
  };
  rec(0, classes.empty() ? 0 : classes[0].count, 0);
  return best;
}

}  // namespace swarm::test_support
