#include "placement_values.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>

namespace swarm::detail {
namespace {

// Throughputs on a grid g: the sums are multiples of g up to `upper`, found by a bounded
// knapsack over the multiples (reachable[q]: q * g is a sum), whatever the number of classes.
std::vector<double> grid_values(std::span<const SearchClass> classes, double g, std::size_t top) {
  std::vector<char> reachable(top + 1, 0), next(top + 1, 0);
  reachable[0] = 1;
  for (const SearchClass& c : classes) {
    if (c.throughput <= 0 || c.count <= 0) continue;
    const auto q = static_cast<std::size_t>(std::llround(c.throughput / g));
    if (q > top) continue;
    // next[v]: some reachable[v - m * q] with m <= count; the nearest one in v's residue
    // class decides, so one pass per residue class.
    for (std::size_t r = 0; r < q; ++r) {
      std::size_t last = 0;
      bool any = false;
      for (std::size_t v = r; v <= top; v += q) {
        if (reachable[v]) {
          last = v;
          any = true;
        }
        next[v] = any && (v - last) / q <= static_cast<std::size_t>(c.count);
      }
    }
    reachable.swap(next);
  }
  std::vector<double> values;
  for (std::size_t v = 0; v <= top; ++v) {
    if (reachable[v]) values.push_back(static_cast<double>(v) * g);
  }
  return values;
}

}  // namespace

double throughput_grid(std::span<const SearchClass> classes) {
  for (double scale = 1; scale <= 1e6; scale *= 10) {
    std::int64_t g = 0;
    bool whole = true;
    for (const SearchClass& c : classes) {
      if (c.throughput <= 0) continue;
      const double x = c.throughput * scale;
      if (x > 1e15 || std::abs(x - std::round(x)) > 1e-9 * std::max(1.0, x)) {
        whole = false;
        break;
      }
      g = std::gcd(g, static_cast<std::int64_t>(std::llround(x)));
    }
    if (whole) return static_cast<double>(g) / scale;
  }
  return 0.0;
}

std::optional<std::vector<double>> coverage_values(std::span<const SearchClass> classes, double upper,
                                                   std::size_t cap) {
  const double limit = upper * (1 + 1e-9);
  const double g = throughput_grid(classes);
  if (g > 0 && limit / g < static_cast<double>(cap)) {
    return grid_values(classes, g, static_cast<std::size_t>(std::floor(limit / g)));
  }
  // Off any grid: the sums themselves, level by level, unless their count blows up.
  double combinations = 1;
  for (const SearchClass& c : classes) combinations *= static_cast<double>(c.count + 1);
  if (combinations > 64.0 * static_cast<double>(cap)) return std::nullopt;  // dense anyway
  std::vector<double> values{0.0};
  for (const SearchClass& c : classes) {
    if (c.throughput <= 0) continue;
    std::vector<double> next;
    for (double v : values) {
      for (int m = 0; m <= c.count; ++m) {
        const double x = v + static_cast<double>(m) * c.throughput;
        if (x > limit) break;
        next.push_back(x);
        if (next.size() > 4 * cap) return std::nullopt;
      }
    }
    std::sort(next.begin(), next.end());
    // Sums that differ only by rounding are one value.
    std::size_t kept = 0;
    for (double x : next) {
      if (kept == 0 || x > next[kept - 1] * (1 + 1e-12) + 1e-300) next[kept++] = x;
    }
    next.resize(kept);
    if (next.size() > cap) return std::nullopt;
    values = std::move(next);
  }
  return values;
}

}  // namespace swarm::detail
